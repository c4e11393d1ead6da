"""The service and the disk: SIGHUP reloads with bad configs, and a full disk.

Reloads run in one forked child holding a real :class:`pifocus.service.Service` (sim
source, sim drive, outputs on mock pins, no web): each bad config is written over the config
file and reloaded; held when the reload is refused with a clear error, the running config is
kept, frames keep flowing, and a good config reloads afterwards.

Full-disk cases mount a small tmpfs in a private mount namespace of the forked case
(``unshare(CLONE_NEWNS)``: nothing is visible outside it, and it vanishes with the child),
fill it, and run ``record``, ``autofocus`` (state file and ``--plot``) and ``score
--heatmap`` there; stdout on the full device is a separate case.  Held: one ``pifocus:
error:`` line saying disk full with the path, no partial file, the old state file whole.
"""

import ctypes
import json
import os
import time
from pathlib import Path
from typing import List

from . import harness
from .harness import Case, cli_target, failure_of, judge_cli, run_forked
from .inputs import dump_toml, reference_tables

CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18


def _reload_texts(n_bad: int = 40):
    """``[(name, toml text)]``: bad configs for the reload, spread over every table."""
    import math
    base = reference_tables()
    for t in base.values():
        t.pop("token", None)
    base["web"] = {"enabled": False}
    base["drive"]["name"] = "sim"
    base["source"]["realtime"] = True
    base["source"]["fps"] = 20.0
    out = []
    keys = [(t, k) for t, kv in base.items() for k, v in kv.items() if isinstance(v, (int, float))
            and not isinstance(v, bool) and (t, k) not in (("source", "width"), ("source", "height"))]
    step = max(1, len(keys) // n_bad)
    for i, (t, k) in enumerate(keys[::step][:n_bad]):
        t2 = {a: dict(b) for a, b in base.items()}
        t2[t][k] = [math.nan, -1e12, "text", 1e12][i % 4]
        out.append((f"{t}.{k}={['nan', 'neg-huge', 'text', 'huge'][i % 4]}", dump_toml(t2)))
    good = dump_toml(base)
    out += [("syntax", good + "\n[web\n"), ("binary", "\x00\xff" * 100), ("empty-source-table", "source = 1\n"),
            ("unknown-table", good + "\n[sauce]\n"), ("shared-pin", good.replace("led_pin = 17", "led_pin = 20")
                                                            .replace('name = "sim"\non_limit', 'name = "stepper"\non_limit')),
            ("missing", None)]
    return base, out


def _reload_batch(work: Path, wanted):
    """A forkable target: one Service, the ``wanted`` reload cases, one JSON line per case on stdout."""
    def target() -> int:
        from pifocus import config as cfgmod
        from pifocus.service import SdNotifier, Service

        base, texts = _reload_texts()
        path = work / "reload" / "pifocus.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        good = dump_toml(base)
        path.write_text(good)
        os.chdir(path.parent)
        svc = Service(cfgmod.load(path), notifier=SdNotifier(""), web_enabled=False)
        svc.start()
        try:
            if not svc.wait_ready(30):
                print(json.dumps({"case": "*", "outcome": "crash", "detail": "service not ready"}))
                return 0
            for name, text in texts:
                if name not in wanted:
                    continue
                before_cfg, before_frames = svc.cfg, svc.pipeline.frames
                if text is None:
                    path.unlink()
                else:
                    path.write_text(text, errors="surrogateescape")
                t0 = time.monotonic()
                ok = svc.reload()
                err = svc.reload_error or ""
                time.sleep(0.15)
                frames = svc.pipeline.frames
                if ok:
                    outcome, detail = "wrong", "a bad config was accepted"
                elif svc.cfg is not before_cfg:
                    outcome, detail = "wrong", "the running config changed"
                elif "unexpected" in err:
                    outcome, detail = "unexpected", err[:200]
                elif frames <= before_frames:
                    outcome, detail = "hang", "no frames after the failed reload"
                else:
                    outcome, detail = "held", f"kept the old config in {time.monotonic() - t0:.2f} s: {err[:140]}"
                print(json.dumps({"case": name, "outcome": outcome, "detail": detail}), flush=True)
            path.write_text(good.replace("rows = 6", "rows = 5"))
            ok = svc.reload()
            print(json.dumps({"case": "good-after-bad", "outcome": "held" if ok and svc.cfg.analysis.rows == 5
                              else "wrong", "detail": svc.reload_error or "reloaded"}), flush=True)
        finally:
            svc.shutdown()
        return 0
    return target


def reload_cases(work: Path) -> List[Case]:
    """The reload cases; they share one forked service (run on the first case's call)."""
    _, texts = _reload_texts()
    names = [n for n, _ in texts] + ["good-after-bad"]
    shared = {}

    def run_all():
        wanted = {n for n in names if not harness.SELECTED or f"reload/{n}" in harness.SELECTED}
        res = run_forked(_reload_batch(work, wanted), timeout_s=40 + 5 * len(wanted), label="reload")
        results = {}
        for ln in res.stdout.splitlines():
            try:
                d = json.loads(ln)
            except ValueError:
                continue
            results[d["case"]] = (d["outcome"], d["detail"])
        bad = failure_of(res)
        shared["results"], shared["fail"] = results, bad or ("hang", "the batch ended early")

    def fn(name):
        if "results" not in shared:
            run_all()
        return shared["results"].get(name, shared["fail"])
    return [Case(f"reload/{n}", "reload", lambda n=n: fn(n), quick=i % 4 == 0 or n == "good-after-bad")
            for i, n in enumerate(names)]


# -- full disk ------------------------------------------------------------------------------------
def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    return libc


def tmpfs_available() -> bool:
    """True when a private tmpfs can be mounted (root, or a user namespace)."""
    def target() -> int:
        _private_tmpfs("/tmp", 65536)
        return 0
    res = run_forked(target, timeout_s=10, label="tmpfs-probe")
    return res.rc == 0


def _private_tmpfs(where: str, size: int) -> None:
    """In the calling (forked) process: a private mount namespace with a ``size``-byte tmpfs on ``where``."""
    libc = _libc()
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    if libc.mount(b"none", where.encode(), b"tmpfs", 0, f"size={size}".encode()) != 0:
        raise OSError(ctypes.get_errno(), f"mount tmpfs on {where}")


def _fill(where: str, leave: int) -> None:
    """Fill the filesystem at ``where`` up to ``leave`` free bytes."""
    st = os.statvfs(where)
    free = st.f_bavail * st.f_frsize
    with open(os.path.join(where, "filler"), "wb") as f:
        f.write(b"\x00" * max(0, free - leave))


def _on_full_disk(argv_of, size: int, leave: int, prepare=None, check=None):
    """A forkable target: tmpfs of ``size`` at a fresh folder, filled to ``leave`` free bytes,
    then ``pifocus argv_of(mount)``; ``check(mount)`` after it (prints a problem, status 10)."""
    def target() -> int:
        import tempfile
        mnt = tempfile.mkdtemp(prefix="pifocus-full-")
        _private_tmpfs(mnt, size)
        if prepare:
            prepare(mnt)
        _fill(mnt, leave)
        rc = cli_target(argv_of(mnt))()
        problem = check(mnt) if check else None
        if problem:
            print(f"pifocus-matrix: {problem}")
            return 10
        return rc
    return target


def _no_partials(mnt: str):
    bad = []
    for root, _, files in os.walk(mnt):
        bad += [f for f in files if f.endswith((".part", ".tmp")) or (f.startswith(".") and f != ".")]
    return f"partial files left: {bad}" if bad else None


def _state_prepare(mnt):
    Path(mnt, "s.json").write_text(json.dumps({"position": 400.0, "moving": False, "drive": "sim"}))


def _state_check(mnt):
    try:
        st = json.loads(Path(mnt, "s.json").read_text())
    except ValueError as e:
        return f"state file torn: {e}"
    return _no_partials(mnt) if st.get("position") is not None else "state file lost its position"


def _recording_check(mnt):
    import csv
    import cv2
    out = Path(mnt, "rec")
    if not out.is_dir():
        return None
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return None   # nothing could be written at all: an empty folder, no partial file
    if "sweep.csv" not in names:
        return f"no sweep.csv next to {len(names)} frame(s)"
    with open(out / "sweep.csv", newline="") as f:
        listed = [r[0] for r in list(csv.reader(f))[1:]]
    broken = [n for n in listed if cv2.imread(str(out / n), cv2.IMREAD_UNCHANGED) is None]
    unlisted = [n for n in names if n != "sweep.csv" and n not in listed]
    if broken or unlisted:
        return f"broken {broken[:3]} / unlisted {unlisted[:3]}"
    return _no_partials(mnt)


def disk_cases(work: Path) -> List[Case]:
    """record, the state file, --plot and --heatmap on a full tmpfs; stdout on a full device."""
    from .files import _small_png
    img = _small_png(work / "ok.png")
    sim = ["--source", "sim", "--size", "320x240", "--no-cnn"]
    rec = ["--source", "sim", "--size", "320x240"]
    specs = [
        ("record-frames", lambda m: ["record", *rec, "--frames", "40", "--out", f"{m}/rec"], 4 << 20, 300_000,
         None, _recording_check, ["disk full"]),
        ("record-no-room", lambda m: ["record", *rec, "--frames", "5", "--out", f"{m}/rec"], 1 << 20, 0,
         None, _recording_check, ["disk full"]),
        ("state-file", lambda m: ["autofocus", "--drive", "sim", "--source", "sim", "--size", "160x120", "--no-cnn",
                                  "--state-file", f"{m}/s.json", "--strategy", "sweep"], 1 << 20, 0,
         _state_prepare, _state_check, ["state file"]),
        ("plot", lambda m: ["autofocus", "--drive", "sim", "--source", "sim", "--size", "160x120", "--no-cnn",
                            "--strategy", "sweep", "--plot", f"{m}/af.png"], 1 << 20, 1000, None, _no_partials,
         ["--plot"]),
        ("heatmap", lambda m: ["score", str(img), "--no-cnn", "--heatmap", f"{m}/hm"], 1 << 20, 0, None, _no_partials,
         ["disk full"]),
    ]
    cases = []
    for name, argv_of, size, leave, prep, check, needles in specs:
        cid = f"disk/{name}"

        def fn(a=argv_of, s=size, lv=leave, p=prep, c=check, nd=needles, cid=cid):
            res = run_forked(_on_full_disk(a, s, lv, p, c), timeout_s=90, label=cid)
            if res.rc == 10:
                return "data-loss", [ln for ln in res.stdout.splitlines() if ln.startswith("pifocus-matrix")][-1]
            return judge_cli(res, True, nd, accept_ok=False)
        cases.append(Case(cid, "disk", fn, slow=True))
    full = work / "special" / "full-dev"
    for name, argv in (("stdout-run", ["run", *sim, "--frames", "3"]),
                       ("stdout-score", ["score", str(img), "--no-cnn", "--json"])):
        cid = f"disk/{name}-to-full-device"

        def fn(a=argv, cid=cid):
            if not full.exists():
                return "held", "skipped: no device clone (not root)"

            def target():
                fd = os.open(full, os.O_WRONLY)
                os.dup2(fd, 1)
                return cli_target(a)()
            res = run_forked(target, timeout_s=60, label=cid)
            return judge_cli(res, True, ["no space"])
        cases.append(Case(cid, "disk", fn, quick=True))
    return cases
