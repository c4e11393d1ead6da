"""The lens: autofocus on fractional soft limits, on replayed sweeps with one mistyped
position, randomized AF rigs (limits, start, backlash, missed steps), and ``kill -9`` in the
middle of state-file writes.

Held, for AF: the run ends (status 0 in focus, 3 gate failed, or 2 refused with one line)
within its bound, every commanded position lies inside the soft limits and the result's
frames are within :func:`pifocus.autofocus.engine.frame_limit`.  For kills: the state file
is whole JSON, and a position it calls settled is one the lens really reached.
"""

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import List

from .harness import Case, ChildResult, cli_case, failure_of, run_forked

SIZE = ["--size", "160x120"]
STRATEGIES = ("model", "sweep", "blur")


def _af_post(lo: float, hi: float):
    """A post-check of ``autofocus --json``: the curve and final position inside lo..hi."""
    def post(res: ChildResult):
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        if res.rc not in (0, 3) or not lines:
            return None
        d = json.loads(lines[-1])
        eps = 1e-6
        xs = [c[0] for c in d.get("curve", [])] + [d["final_position"]]
        out = [x for x in xs if not lo - eps <= x <= hi + eps]
        if out:
            return "wrong", f"positions outside the soft limits {lo:g}..{hi:g}: {out[:5]}"
        return None
    return post


def limits_cases(work: Path) -> List[Case]:
    """Fractional soft limits (the issue's 50:224.87 first) on the sim drive, every strategy."""
    rng = random.Random(14)
    rigs = [(50.0, 224.87, 321.0)]
    while len(rigs) < 40:
        lo = round(rng.uniform(0, 600), rng.choice([0, 1, 2, 3]))
        hi = round(min(1000.0, lo + rng.uniform(2.5, 700)), rng.choice([1, 2, 3]))
        rigs.append((lo, hi, round(rng.uniform(0, 1000), 1)))
    cases = []
    for i, (lo, hi, focus) in enumerate(rigs):
        for strategy in STRATEGIES:
            cid = f"limits/{lo:g}:{hi:g} focus {focus:g} {strategy}"
            argv = ["autofocus", "--drive", "sim", "--no-cnn", *SIZE, "--limits", f"{lo!r}:{hi!r}",
                    "--sim-focus", f"{focus!r}", "--strategy", strategy, "--json"]
            cases.append(Case(cid, "limits", lambda a=argv, c=cid, l=lo, h=hi: cli_case(
                a, False, ok_codes=(0, 3), timeout_s=60, label=c, post=_af_post(l, h)),
                quick=i < 3 and strategy == "model"))
    return cases


def make_sweep(folder: Path, positions) -> Path:
    """A recorded sweep (frames + sweep.csv) of the sim lens at ``positions``."""
    import cv2
    from pifocus.sources.simulated import SimulatedSource

    folder.mkdir(parents=True, exist_ok=True)
    src = SimulatedSource(width=160, height=120, focus_position=430.0)
    rows = ["file,position"]
    with src:
        for i, p in enumerate(positions):
            cv2.imwrite(str(folder / f"f{i:03d}.png"), src.render(p))
            rows.append(f"f{i:03d}.png,{p:g}")
    (folder / "sweep.csv").write_text("\n".join(rows) + "\n")
    return folder


def _mutate(text: str, i: int, value: str) -> str:
    lines = text.splitlines()
    name = lines[i + 1].split(",")[0]
    lines[i + 1] = f"{name},{value}"
    return "\n".join(lines) + "\n"


def sweepcsv_cases(work: Path) -> List[Case]:
    """A 21-frame sweep with one position mistyped (x100, negative, nan, ...), rows out of
    order, duplicated, too few; every strategy, replayed as the lens."""
    base = make_sweep(work / "sweep-base", [float(p) for p in range(0, 1001, 50)])
    text = (base / "sweep.csv").read_text()
    lines = text.splitlines()
    muts = {"x100": _mutate(text, 3, "15000"), "negative": _mutate(text, 7, "-350"),
            "nan": _mutate(text, 5, "nan"), "inf": _mutate(text, 5, "inf"), "huge": _mutate(text, 9, "1e300"),
            "text": _mutate(text, 4, "two hundred"), "empty": _mutate(text, 4, ""),
            "duplicate": _mutate(text, 6, "250"), "fraction": _mutate(text, 8, "400.0001"),
            "reversed": "\n".join([lines[0]] + lines[1:][::-1]) + "\n",
            "all-same": "\n".join([lines[0]] + [ln.split(",")[0] + ",500" for ln in lines[1:]]) + "\n",
            "two-rows": "\n".join(lines[:3]) + "\n", "one-row": "\n".join(lines[:2]) + "\n",
            "missing-file": text.replace("f010.png", "nope.png"),
            "outside-folder": text.replace("f010.png", "../../../../etc/passwd"),
            "no-position-column": text.replace("file,position", "file,pos")}
    cases = []
    for k, (name, csv) in enumerate(muts.items()):
        folder = work / f"sweep-{name}"
        folder.mkdir(exist_ok=True)
        for f in base.glob("*.png"):
            if not (folder / f.name).exists():
                os.link(f, folder / f.name)
        (folder / "sweep.csv").write_text(csv)
        for strategy in STRATEGIES:
            cid = f"sweepcsv/{name} {strategy}"
            argv = ["autofocus", "--drive", f"replay:{folder}", "--no-cnn", "--strategy", strategy, "--json"]
            cases.append(Case(cid, "sweepcsv", lambda a=argv, c=cid: cli_case(
                a, True, [], accept_ok=True, ok_codes=(0, 3), timeout_s=60, label=c),
                quick=strategy == "model" and k % 3 == 0))
    return cases


def _random_af_target(rig: dict, state: str):
    """A forkable AF run on a random sim rig; status 10 (reason on stderr) when it breaks a rule."""
    def target() -> int:
        import math
        import sys
        from pifocus.autofocus import AutofocusParams, autofocus
        from pifocus.autofocus.engine import frame_limit
        from pifocus.drive import open_drive
        from pifocus.focus import AnalysisParams, FocusAnalyzer

        lo, hi = rig["lo"], rig["hi"]
        d = open_drive("sim", width=160, height=120, min_position=lo, max_position=hi,
                       focus_position=rig["focus"], seed=rig["seed"], backlash_steps=rig["backlash"],
                       backlash=rig["backlash"] if rig["compensate"] else 0.0,
                       missed_step_rate=rig["missed_rate"], missed_step_max=rig["missed_max"], state_file=state)
        commanded = []
        d.on_move = lambda drv, a, b: commanded.append(b)
        params = AutofocusParams(strategy=rig["strategy"])
        with d:
            d.move_to(rig["start"])
            r = autofocus(d, FocusAnalyzer(AnalysisParams(use_cnn=False)), params)
            budget = frame_limit(d, params)
            final = d.position
        eps = 1e-9
        problems = []
        if r.frames_used > budget:
            problems.append(f"{r.frames_used} frames > budget {budget}")
        outside = [x for x in commanded if not lo - eps <= x <= hi + eps]
        if outside or not (math.isfinite(r.final_position) and lo - eps <= r.final_position <= hi + eps):
            problems.append(f"commanded outside {lo:g}..{hi:g}: {outside[:3]} final {r.final_position}")
        saved = json.loads(Path(state).read_text())
        if not (saved["moving"] or saved.get("uncertain") or saved["position"] == final):
            problems.append(f"state says settled at {saved['position']} but the lens is at {final}")
        if problems:
            print("RULE: " + "; ".join(problems), file=sys.stderr)
            return 10
        return 0
    return target


def randomaf_cases(work: Path, n: int = 106) -> List[Case]:
    """``n`` random rigs (seeded): the frame budget, the soft limits and an honest state file."""
    rng = random.Random(1414)
    cases = []
    for i in range(n):
        lo = rng.choice([float(rng.randint(0, 600)), rng.uniform(0, 600)])
        hi = min(1000.0, lo + rng.choice([float(rng.randint(4, 1000)), rng.uniform(2.5, 1000)]))
        rig = dict(lo=lo, hi=hi, start=rng.uniform(lo, hi), focus=rng.uniform(0, 1000),
                   backlash=rng.choice([0.0, 3.0, 12.5, 40.0]), compensate=rng.random() < 0.5,
                   missed_rate=rng.choice([0.0, 0.1, 0.5]), missed_max=rng.randint(0, 6),
                   seed=rng.randint(0, 1000), strategy=rng.choice(["model", "sweep", "blur", "continuous"]))
        cid = f"randomaf/{i:03d} {rig['strategy']} {lo:.2f}:{hi:.2f}"
        state = str(work / "randomaf" / f"{i:03d}.json")
        os.makedirs(os.path.dirname(state), exist_ok=True)

        def fn(r=rig, s=state, c=cid):
            res = run_forked(_random_af_target(r, s), timeout_s=60, label=c)
            bad = failure_of(res)
            if bad:
                return bad
            if res.rc == 10:
                return "wrong", res.stderr.strip().splitlines()[-1][:200]
            return ("held", f"ok in {res.seconds:.1f} s") if res.rc == 0 else ("wrong", f"status {res.rc}")
        cases.append(Case(cid, "randomaf", fn, quick=i % 30 == 0))
    return cases


# -- kill -9 during state writes -----------------------------------------------------------------
def _mover(state: str, wfd: int, seed: int):
    """A forkable loop: a stepper on mock pins moving to random targets, reporting
    ``B target`` before and ``E position`` after each move on ``wfd``."""
    def target() -> int:
        from gpiozero.pins.mock import MockFactory
        from pifocus.drive import open_drive

        rng = random.Random(seed)
        d = open_drive("stepper", pin_factory=MockFactory(), state_file=state, speed=4000.0,
                       acceleration=0.0, assume_position=1000.0)
        with d:
            for _ in range(10_000):
                t = float(rng.randint(100, 1900))
                os.write(wfd, f"B {t:g}\n".encode())
                pos = d.move_to(t)
                os.write(wfd, f"E {pos:g}\n".encode())
        return 0
    return target


def _judge_state(state: Path, log: List[str]):
    """``(outcome, detail)`` of a state file left by a killed mover."""
    if not state.exists():
        return "held", "killed before the first write"
    try:
        st = json.loads(state.read_text())
    except ValueError as e:
        return "data-loss", f"torn state file: {e}"
    if st.get("moving") or st.get("uncertain"):
        return "held", f"marked moving at {st.get('position')} -> {st.get('target')}"
    ends = [float(x.split()[1]) for x in log if x.startswith("E ")]
    begins = [float(x.split()[1]) for x in log if x.startswith("B ")]
    ok = set(ends[-1:]) | set(begins[-1:]) | ({1000.0} if not ends else set())
    if st["position"] not in ok:
        return "data-loss", f"state says settled at {st['position']}, last reached {ends[-1:]}, going to {begins[-1:]}"
    return "held", f"settled at {st['position']:g} ({len(ends)} moves done)"


def kill_cases(work: Path, n: int = 50) -> List[Case]:
    """``n`` kills at random moments of a moving stepper; then a reopen must see the truth."""
    cases = []
    for i in range(n):
        cid = f"kill/mover-{i:02d}"

        def fn(i=i, c=cid):
            state = work / "kills" / f"{i:02d}.json"
            state.parent.mkdir(parents=True, exist_ok=True)
            if state.exists():
                state.unlink()
            r, w = os.pipe()
            delay = random.Random(i).uniform(0.15, 1.2)
            pid = os.fork()
            if pid == 0:
                os.close(r)
                try:
                    _mover(str(state), w, i)()
                finally:
                    os._exit(0)
            os.close(w)
            time.sleep(delay)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            with os.fdopen(r, "rb") as f:
                log = f.read().decode().splitlines()
            outcome, detail = _judge_state(state, log)
            leftovers = list(state.parent.glob(".tmp-*"))
            for p in leftovers:
                p.unlink()
            if outcome == "held" and state.exists():
                st = json.loads(state.read_text())
                res = run_forked(_reopen_check(str(state), bool(st.get("moving") or st.get("uncertain"))),
                                 timeout_s=20, label=c)
                bad = failure_of(res)
                if bad or res.rc:
                    return "data-loss", f"reopen: {bad or res.stderr.strip()[-200:]}"
            return outcome, detail + (f"; {len(leftovers)} temp file(s) left" if leftovers else "")
        cases.append(Case(cid, "kill", fn, quick=i < 2, slow=i >= 2))
    return cases


def _reopen_check(state: str, uncertain: bool):
    def target() -> int:
        from gpiozero.pins.mock import MockFactory
        from pifocus.drive import open_drive
        from pifocus.exc import DriveError

        d = open_drive("stepper", pin_factory=MockFactory(), state_file=state, speed=4000.0, acceleration=0.0)
        with d:
            if d.position_uncertain != uncertain:
                print(f"reopened uncertain={d.position_uncertain}, the file says {uncertain}")
                return 10
            if uncertain:
                try:
                    d.move_by(1)
                except DriveError:
                    return 0
                print("an uncertain position was trusted for a move")
                return 10
        return 0
    return target
