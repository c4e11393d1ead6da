"""Files that are not what they claim: special files (devices, FIFOs, sockets, folders,
symlinks) wherever pifocus reads or writes a path, decompression bombs in every image
format it decodes, and corrupt model files.

Device nodes are *clones* made with ``mknod`` in the scratch folder (the null, zero and full
devices' numbers), never the real ``/dev`` entries: a regression that renames over one
replaces the clone, and the case reports it as ``data-loss``.
"""

import hashlib
import json
import os
import shutil
import socket
import stat
import struct
import zlib
from pathlib import Path
from typing import List

from .harness import Case, cli_case

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "focus_cnn_int8.tflite"


def _small_png(path: Path) -> Path:
    import cv2
    import numpy as np
    img = (np.indices((96, 128)).sum(0) % 9 * 28).astype(np.uint8)
    cv2.imwrite(str(path), img)
    return path


def make_special(work: Path) -> dict:
    """``{kind: path}`` of special files in ``work/special`` (made once)."""
    d = work / "special"
    if d.is_dir():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    out = {}
    if os.geteuid() == 0:
        for name, minor in (("null-dev", 3), ("zero-dev", 5), ("full-dev", 7)):
            p = d / name
            os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, minor))
            out[name] = p
    else:  # without root, only reading the real nodes is safe (writes are refused by the checks)
        out["zero-dev"] = Path("/dev/zero")
    fifo = d / "fifo"
    os.mkfifo(fifo)
    out["fifo"] = fifo
    out["directory"] = d / "a-dir"
    out["directory"].mkdir()
    sock = d / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    s.close()
    out["socket"] = sock
    link = d / "link-to-zero"
    os.symlink(out["zero-dev"], link)
    out["symlink-zero"] = link
    return out


def _kind_of(path: Path) -> str:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    for test, name in ((stat.S_ISCHR, "chr"), (stat.S_ISFIFO, "fifo"), (stat.S_ISDIR, "dir"),
                       (stat.S_ISSOCK, "sock"), (stat.S_ISLNK, "link"), (stat.S_ISREG, "file")):
        if test(st.st_mode):
            return name
    return "other"


def _unchanged(path: Path):
    """A post-check: ``path`` is still the same kind of file (not replaced by a regular one)."""
    before = _kind_of(path)

    def post(_res):
        after = _kind_of(path)
        if after != before:
            return "data-loss", f"{path.name} was a {before}, now a {after} (replaced)"
        return None
    return post


def special_cases(work: Path) -> List[Case]:
    """Every special file as config, state file, model, metadata, image, scene, folder,
    sweep.csv, output folder and plot file."""
    img = _small_png(work / "ok.png")
    sp = make_special(work)
    cases = []
    uses = {
        "config": (lambda p: ["run", "--config", str(p), "--frames", "1"], True, ["config"]),
        "state-file": (lambda p: ["autofocus", "--drive", "sim", "--no-cnn", "--size", "160x120",
                                  "--state-file", str(p), "--strategy", "sweep"], True, ["state"]),
        "model": (lambda p: ["score", str(img), "--model", str(p)], True, ["model"]),
        "score-path": (lambda p: ["score", str(p), "--no-cnn"], True, []),
        "sim-scene": (lambda p: ["run", "--source", f"sim:{p}", "--frames", "1", "--no-cnn"], True, []),
        "source-path": (lambda p: ["run", "--source", str(p), "--frames", "1", "--no-cnn"], True, []),
        "record-out": (lambda p: ["record", "--source", "sim", "--size", "160x120", "--frames", "2",
                                  "--out", str(p)], True, []),
        "heatmap-dir": (lambda p: ["score", str(img), "--no-cnn", "--heatmap", str(p)], True, []),
        "plot-file": (lambda p: ["autofocus", "--drive", "sim", "--no-cnn", "--size", "160x120",
                                 "--strategy", "sweep", "--plot", str(p)], True, []),
    }
    for use, (argv_of, refuse, needles) in uses.items():
        for kind, path in sp.items():
            if use == "score-path" and kind == "directory":
                continue  # an empty folder is covered by the score tests
            cid = f"special/{use}={kind}"
            cases.append(Case(cid, "special", lambda a=argv_of(path), r=refuse, nd=needles, c=cid, p=path:
                              cli_case(a, r, nd, accept_ok=True, ok_codes=(0, 3), timeout_s=30, label=c,
                                       post=_unchanged(p), cwd=str(work)),
                              quick=kind == "fifo"))
    # sweep.csv (and the model metadata) as a special file beside good data
    for kind in ("fifo", "zero-dev", "directory"):
        folder = work / f"sweepcsv-{kind}"
        folder.mkdir(exist_ok=True)
        shutil.copy(img, folder / "f000.png")
        target = folder / "sweep.csv"
        if not target.exists() and not target.is_symlink():
            os.symlink(sp[kind], target)
        cid = f"special/sweep.csv={kind}"
        cases.append(Case(cid, "special", lambda f=folder, c=cid: cli_case(
            ["score", str(f), "--no-cnn"], True, ["sweep.csv"], accept_ok=True, timeout_s=30, label=c),
            quick=kind == "fifo"))
        mdir = work / f"meta-{kind}"
        mdir.mkdir(exist_ok=True)
        shutil.copy(MODEL, mdir / "m.tflite")
        meta = mdir / "m.json"
        if not meta.exists() and not meta.is_symlink():
            os.symlink(sp[kind], meta)
        cid = f"special/model-metadata={kind}"
        cases.append(Case(cid, "special", lambda m=mdir / "m.tflite", c=cid: cli_case(
            ["score", str(img), "--model", str(m)], True, ["metadata"], timeout_s=30, label=c)))
    return cases


# -- decompression bombs -----------------------------------------------------------------------
def _png(w, h):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    idat = zlib.compress(b"\x00" * (w + 1) * 16, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _jpeg(w, h):
    import cv2
    import numpy as np
    ok, buf = cv2.imencode(".jpg", np.zeros((16, 16), np.uint8))
    data = bytearray(buf.tobytes())
    i = 2
    while i < len(data):  # patch the SOF0 size
        if data[i] == 0xFF and data[i + 1] == 0xC0:
            data[i + 5:i + 9] = struct.pack(">HH", h, w)
            break
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return bytes(data)


def _bmp(w, h):
    header = struct.pack("<2sIHHI", b"BM", 54 + 64, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, 0, 2835, 2835, 0, 0)
    return header + info + b"\x00" * 64


def _tiff(w, h):
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, w * h)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\x00" * 4
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 256


def _webp(w, h):
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (w - 1).to_bytes(3, "little") + \
        (h - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _pgm(w, h):
    return f"P5\n{w} {h}\n255\n".encode() + b"\x00" * 1024


BOMBS = {"png": (_png, 30000, 30000), "jpg": (_jpeg, 65000, 65000), "bmp": (_bmp, 30000, 30000),
         "tif": (_tiff, 40000, 40000), "webp": (_webp, 16384, 16384), "pgm": (_pgm, 40000, 40000)}


def bomb_cases(work: Path) -> List[Case]:
    """Each bomb format through score, run (folder), bench (folder), sim:IMAGE; a video above
    the configured cap.  Held: a clean refusal (or the bomb skipped), peak RSS under the bound."""
    d = work / "bombs"
    d.mkdir(exist_ok=True)
    cases = []
    for ext, (make, w, h) in BOMBS.items():
        folder = d / ext
        folder.mkdir(exist_ok=True)
        bomb = folder / f"bomb.{ext}"
        bomb.write_bytes(make(w, h))
        mixed = d / f"{ext}-mixed"
        mixed.mkdir(exist_ok=True)
        shutil.copy(bomb, mixed / f"a-bomb.{ext}")
        _small_png(mixed / "b-ok.png")
        for use, argv in (("score", ["score", str(bomb), "--no-cnn"]),
                          ("score-mixed", ["score", str(mixed), "--no-cnn", "--json"]),
                          ("run", ["run", "--source", str(mixed), "--no-cnn"]),
                          ("bench", ["bench", "--source", str(mixed), "--frames", "3", "--warmup", "0", "--no-cnn"]),
                          ("sim-scene", ["run", "--source", f"sim:{bomb}", "--frames", "1", "--no-cnn"])):
            cid = f"bomb/{use}={ext}"
            cases.append(Case(cid, "bomb", lambda a=argv, c=cid: cli_case(
                a, True, [], accept_ok=True, timeout_s=60, label=c), quick=ext == "png", slow=ext != "png"))
    # a real video, above a configured cap
    import cv2
    import numpy as np
    video = d / "v.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240), False)
    for i in range(3):
        vw.write(np.full((240, 320), 60 * i, np.uint8))
    vw.release()
    cfg = d / "cap.toml"
    cfg.write_text('[source]\nmax_pixels = 10000\n\n[analysis]\nuse_cnn = false\n')
    for use, argv in (("run", ["run", "--config", str(cfg), "--source", str(video)]),
                      ("bench", ["bench", "--config", str(cfg), "--source", str(video), "--frames", "2"])):
        cid = f"bomb/video-{use}"
        cases.append(Case(cid, "bomb", lambda a=argv, c=cid: cli_case(a, True, ["max_pixels"], timeout_s=60, label=c),
                          quick=True))
    return cases


# -- corrupt models ----------------------------------------------------------------------------
def _variants(data: bytes):
    n = len(data)
    for cut in (0, 1, 8, 64, 1024, 16384, n // 2, n - 1):
        yield f"truncated-{cut}", data[:cut]
    for frac in (0.0005, 0.002, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.97, 0.999):
        i = int(frac * n)
        b = bytearray(data)
        b[i] ^= 0x40
        yield f"bitflip-{i}", bytes(b)
    b = bytearray(data)
    b[4096:8192] = b"\x00" * 4096
    yield "zeroed-4k", bytes(b)
    yield "random", hashlib.sha256(b"seed").digest() * (n // 32)
    yield "text", b"this is not a model\n" * 100
    yield "png", _png(64, 64)
    yield "doubled", data + data


def model_cases(work: Path) -> List[Case]:
    """Corrupt .tflite files, each with the original metadata (the checksum must catch it)
    and with metadata re-signed for the corrupt bytes (the interpreter must not crash)."""
    d = work / "models"
    d.mkdir(exist_ok=True)
    data = MODEL.read_bytes()
    meta = json.loads(MODEL.with_suffix(".json").read_text())
    img = _small_png(work / "ok.png")
    cases = []
    k = 0
    for name, blob in _variants(data):
        for signed in (False, True):
            sub = d / f"{name}-{'signed' if signed else 'orig'}"
            sub.mkdir(exist_ok=True)
            (sub / "m.tflite").write_bytes(blob)
            m = dict(meta)
            if signed:
                m["sha256"] = hashlib.sha256(blob).hexdigest()
            (sub / "m.json").write_text(json.dumps(m))
            cid = f"model/{name}{'+resigned' if signed else ''}"
            # a re-signed model that still loads is legal (e.g. a flip in unused padding)
            cases.append(Case(cid, "model", lambda p=sub / "m.tflite", s=signed, c=cid: cli_case(
                ["score", str(img), "--model", str(p)], True, ["model"], accept_ok=s, timeout_s=60, label=c),
                quick=k % 6 == 0))
            k += 1
    for name, text in (("metadata-not-json", "{nope"), ("metadata-bad-sha", '{"sha256": "xyz"}'),
                       ("metadata-huge", '{"a": "' + "x" * (2 * 1024 * 1024) + '"}'),
                       ("metadata-array", "[1, 2, 3]"), ("metadata-bad-tile", json.dumps(dict(meta, tile_px=-5)))):
        sub = d / name
        sub.mkdir(exist_ok=True)
        shutil.copy(MODEL, sub / "m.tflite")
        (sub / "m.json").write_text(text)
        cid = f"model/{name}"
        cases.append(Case(cid, "model", lambda p=sub / "m.tflite", c=cid: cli_case(
            ["score", str(img), "--model", str(p)], True, ["metadata"], timeout_s=60, label=c), quick=True))
    sub = d / "no-metadata"
    sub.mkdir(exist_ok=True)
    shutil.copy(MODEL, sub / "m.tflite")
    cases.append(Case("model/no-metadata", "model", lambda p=sub / "m.tflite": cli_case(
        ["score", str(img), "--model", str(p)], True, ["json"], timeout_s=60, label="model/no-metadata"), quick=True))
    return cases
