#!/usr/bin/env python3
"""``pifocus cull`` end to end on a card: ``python tools/cull_bench.py card`` (or this file
with the same options).  Prints what it found; asserts nothing."""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from cull_bench import FAULTS, to_u8  # noqa: E402
from pifocus.focus.blurest import dead_leaves  # noqa: E402


def cmd_card(args) -> int:
    """A card of synthetic photos with known faults, unreadable files and a foreign sidecar,
    through ``pifocus cull`` itself (the CLI, --json): keep/reject against the known faults,
    every sidecar read back by exiftool (rating, label, darktable colour label against the
    JSON rows; the foreign sidecar's own fields kept), originals byte-identical (SHA-256),
    unreadable files skipped, counted and named in the summary."""
    import contextlib, hashlib, io, json, shutil, subprocess  # noqa: E401
    import cv2
    from pifocus.cli import main as cli
    if args.scratch:
        os.makedirs(args.scratch, exist_ok=True)
    d = tempfile.mkdtemp(prefix="cull_card_", dir=args.scratch)
    rng = np.random.default_rng(1)
    want, t = {}, 1_700_000_000
    for k in range(args.scenes):
        scene = dead_leaves(args.size, seed=500 + k, n_discs=max(500, args.size * 4))
        for name, (verdict, make) in FAULTS.items():
            fn = f"s{k}_{name}.{'png' if k % 2 else 'jpg'}"
            cv2.imwrite(os.path.join(d, fn), make(scene, rng), [] if k % 2 else [cv2.IMWRITE_JPEG_QUALITY, 95])
            want[fn] = verdict
    ok, jpg = cv2.imencode(".jpg", to_u8(dead_leaves(256, seed=9), rng))
    bad = {"empty.jpg": b"", "truncated.jpg": jpg.tobytes()[:len(jpg) // 2],
           "garbage.png": b"\x89PNG\r\n\x1a\n garbage", "text.jpg": b"not a photo at all"}
    for fn, data in bad.items():
        with open(os.path.join(d, fn), "wb") as fh:
            fh.write(data)
    for fn in sorted(os.listdir(d)):  # 10 s apart: no bursts across the unrelated scenes
        t += 10
        os.utime(os.path.join(d, fn), (t, t))
    first = sorted(want)[0]
    foreign = os.path.join(d, first + ".xmp")
    with open(foreign, "w") as fh:
        fh.write('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                 '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
                 'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="3"><dc:subject><rdf:Bag><rdf:li>holiday'
                 '</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>')

    def hashes():
        return {f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
                for f in sorted(os.listdir(d)) if not f.endswith(".xmp")}

    before = hashes()
    buf = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        rc = cli(["cull", d, "--json", "--jobs", str(args.jobs), "--reject-rating", str(args.reject_rating)])
    dt = time.perf_counter() - t0
    lines = [json.loads(x) for x in buf.getvalue().splitlines() if x.strip()]
    rows = {os.path.basename(r["path"]): r for r in lines if "path" in r}
    summary = next(x["summary"] for x in lines if "summary" in x)
    print(f"card: {len(want)} photos + {len(bad)} unreadable files in {d}; pifocus cull exit {rc}, {dt:.1f} s "
          f"with --jobs {args.jobs}")
    right = sum(rows.get(f, {}).get("verdict") == v for f, v in want.items())
    for f, v in sorted(want.items()):
        got = rows.get(f, {}).get("verdict")
        if got != v:
            print(f"  wrong: {f}: want {v}, got {got}: {rows.get(f, {}).get('reason')}")
    print(f"keep/reject correct: {right}/{len(want)} = {100.0 * right / len(want):.1f} %")
    named = set(os.path.basename(p) for p in summary["unreadable_files"])
    print(f"unreadable: counted {summary['unreadable']} (want {len(bad)}), named {sorted(named)}: "
          f"{'OK' if summary['unreadable'] == len(bad) and named == set(bad) else 'MISMATCH'}")
    after = hashes()
    same = sum(before[f] == after.get(f) for f in before)
    print(f"originals byte-identical (SHA-256): {same}/{len(before)}")
    if shutil.which("exiftool") is None:
        print("exiftool not installed (apt: libimage-exiftool-perl): sidecars not read back")
        return 0
    sides = sorted(os.path.join(d, f + ".xmp") for f in rows)
    out = subprocess.run(["exiftool", "-j", "-XMP:Rating", "-XMP:Label", "-XMP-darktable:all", "-XMP-dc:Subject"]
                         + sides, capture_output=True, text=True, timeout=300)
    read = {os.path.basename(x["SourceFile"])[:-4]: x for x in json.loads(out.stdout or "[]")}
    colours = {"keep": 2, "maybe": 1, "reject": 0}
    agree = 0
    for f, r in rows.items():
        x = read.get(f, {})
        label = {"keep": "Select", "reject": "Reject"}.get(r["verdict"])
        agree += (x.get("Rating") == r["rating"] and x.get("Label") == label
                  and x.get("Colorlabels") == colours[r["verdict"]])
    print(f"exiftool {out.returncode == 0 and 'read' or 'FAILED on'} {len(read)}/{len(rows)} sidecars; rating, label and "
          f"darktable colour label as the JSON says: {agree}/{len(rows)}")
    kept = read.get(first, {}).get("Subject")
    print(f"foreign sidecar {first}.xmp: dc:subject {kept!r} kept, rating {read.get(first, {}).get('Rating')} "
          f"(was 3, the cull's {rows[first]['rating']})")
    return 0


def add_arguments(c) -> None:
    """The options of ``card`` (shared with ``tools/cull_bench.py card``)."""
    c.add_argument("--scenes", type=int, default=4, help="dead-leaves scenes, one photo per fault each [4]")
    c.add_argument("--size", type=int, default=800, help="photo side (px) [800]")
    c.add_argument("--jobs", type=int, default=2, help="pifocus cull --jobs [2]")
    c.add_argument("--reject-rating", type=int, default=1, choices=(1, -1), help="pifocus cull --reject-rating [1]")
    c.add_argument("--scratch", help="folder for the card [a temporary folder]")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    add_arguments(ap)
    sys.exit(cmd_card(ap.parse_args()))
