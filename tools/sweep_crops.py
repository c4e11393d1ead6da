#!/usr/bin/env python3
"""Enlarged crops of the central region of every focus sweep, for judging by eye.

Writes one PNG per sweep (every frame's central region side by side, labelled with its
frame index, enlarged with nearest-neighbour so pixels stay pixels) plus a 1:1 detail crop
sheet for large frames.  The region is the one recorded in ``tests/data/sweep_judgements.json``
(``region``: x, y, w, h as fractions of the frame).  No focus measure is computed: the crops
are for a person to look at, and the judged frame goes into that JSON file.

    python tools/sweep_crops.py --data ../shared/data --out build/sweep_crops
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from dataset import read_gray, sweep_frames  # noqa: E402

JUDGEMENTS = ROOT / "tests" / "data" / "sweep_judgements.json"
DEFAULT_REGION = (0.3, 0.3, 0.4, 0.4)


def region_box(shape, region):
    """Pixel box (y0, y1, x0, x1) of a fractional region (x, y, w, h) in a frame of ``shape``."""
    h, w = shape[:2]
    x, y, rw, rh = region
    return int(round(y * h)), int(round((y + rh) * h)), int(round(x * w)), int(round((x + rw) * w))


def sheet(crops, labels, zoom, cols):
    import cv2
    h, w = crops[0].shape
    ch, cw = h * zoom + 24, w * zoom + 6
    rows = (len(crops) + cols - 1) // cols
    out = np.full((rows * ch, cols * cw), 30, np.uint8)
    for k, (c, lab) in enumerate(zip(crops, labels)):
        r, q = divmod(k, cols)
        y, x = r * ch, q * cw
        big = cv2.resize(c, (w * zoom, h * zoom), interpolation=cv2.INTER_NEAREST)
        out[y + 21:y + 21 + h * zoom, x + 3:x + 3 + w * zoom] = big
        cv2.putText(out, lab, (x + 4, y + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1, cv2.LINE_AA)
    return out


def main(argv=None) -> int:
    import cv2
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "sweep_crops")
    p.add_argument("--detail", type=int, default=96, help="side of the 1:1 detail crop (px) for large frames")
    a = p.parse_args(argv)
    region = DEFAULT_REGION
    if JUDGEMENTS.is_file():
        region = tuple(json.loads(JUDGEMENTS.read_text())["region"])
    a.out.mkdir(parents=True, exist_ok=True)
    for folder in sorted(d for d in (a.data / "focus-sweeps").iterdir() if d.is_dir()):
        files = sweep_frames(folder)
        frames = [read_gray(f) for f in files]
        y0, y1, x0, x1 = region_box(frames[0].shape, region)
        crops = [f[y0:y1, x0:x1] for f in frames]
        labels = [f"{i}: {f.name}" for i, f in enumerate(files)]
        ch, cw = crops[0].shape
        zoom = max(1, int(round(520 / max(ch, cw))))
        if max(ch, cw) > 520:  # downsample the overview of large regions
            crops_o = [cv2.resize(c, (cw * 520 // max(ch, cw), ch * 520 // max(ch, cw)),
                                  interpolation=cv2.INTER_AREA) for c in crops]
            zoom = 1
        else:
            crops_o = crops
        cols = 4 if len(crops) <= 12 else 6
        cv2.imwrite(str(a.out / f"{folder.name}_overview.png"), sheet(crops_o, labels, zoom, cols))
        if max(ch, cw) > 2 * a.detail:  # 1:1 detail crops at the centre, enlarged 3x
            cy, cx = ch // 2, cw // 2
            d = a.detail // 2
            det = [c[cy - d:cy + d, cx - d:cx + d] for c in crops]
            cv2.imwrite(str(a.out / f"{folder.name}_detail.png"), sheet(det, labels, 3, 5))
        print(f"{folder.name}: {len(files)} frames, region {x1 - x0}x{y1 - y0} px -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
