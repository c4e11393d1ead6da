#!/usr/bin/env python3
"""Sweep fit: how much more defocused is each frame of a sweep than its judged sharpest one?

A physical cross-check of the judged truth (``tests/data/sweep_truth.json``) and a measure of
how fine the stills target is.  For every frame of a sweep, the disk (pillbox) PSF radius that
best turns the judged sharpest frame into this one is fitted over the subject region
(:func:`relative_defocus`: the sharpest frame's region blurred by each radius and correlated
with the frame's; the best-correlating radius wins).  This is the
*additional* defocus of the frame, in sensor pixels, independent of the scene's texture and
of the lens's own softness at best focus -- what a single-frame estimator has to resolve to
tell an accepted frame from a ``near`` one.

    python tools/sweep_fit.py                       # every judged sweep, one line each + summary
    python tools/sweep_fit.py --sweeps beetle_mandibles_macro canon-36 --json

Per frame: the fitted radius and its correlation; a frame that matches no blurred copy
well (another plane sharp, focus breathing, a moving subject) reads ``-`` (None).  The summary gives,
over all sweeps, the fitted radii of the accepted, ``near`` and remaining frames.  Exit status
0 (also without the data: nothing to measure).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))


#: Disk radii tried (sensor pixels): finer than the dataset's fit below 1.5 px, where the
#: accepted range ends.
RADII = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0)
#: Pixels left out at the region's border (the blurred copy's filter reflects there).
BORDER_PX = 8
#: A fit counts only when its best correlation is at least this: a frame whose region matches
#: no blurred copy of the sharpest one (another plane sharp, focus breathing, a moving
#: subject) has no relative defocus to speak of.
MIN_CORR = 0.9


def relative_defocus(sharp: np.ndarray, blurry: np.ndarray, radii: Sequence[float] = RADII,
                     border_px: int = BORDER_PX, min_corr: float = MIN_CORR) -> Dict[str, Optional[float]]:
    """The disk-PSF radius (px) that best turns ``sharp`` into ``blurry``.

    Both are the same region (2-D arrays, same shape).  ``sharp`` is blurred by every radius
    in ``radii`` (:func:`pifocus.sources.simulated.defocus`) and correlated with ``blurry``
    (Pearson, so gain- and offset-invariant) inside a ``border_px`` margin; the best radius
    wins.  A whole region, not windows: on small windows the top octave that tells 0.75 px
    from 1 px is buried in noise and registration error.

    Returns ``{"radius_px": the best radius (None when its correlation is below
    ``min_corr``), "corr": that correlation}``.

    Raises:
        ValueError: the two arrays differ in shape, or leave nothing inside the border.
    """
    from pifocus.sources.simulated import defocus

    s = np.asarray(sharp, np.float32)
    b = np.asarray(blurry, np.float64)
    if s.shape != b.shape or s.ndim != 2:
        raise ValueError(f"relative_defocus: sharp {s.shape} and blurry {b.shape} must be the same 2-D shape")
    m = int(border_px)
    if min(s.shape) <= 2 * m + 2:
        raise ValueError(f"relative_defocus: region {s.shape} leaves nothing inside border_px={m}")
    y = b[m:-m, m:-m] - b[m:-m, m:-m].mean()
    corrs = []
    for r in radii:
        d = defocus(s, float(r)).astype(np.float64)[m:-m, m:-m]
        x = d - d.mean()
        den = float(np.sqrt((x * x).sum() * (y * y).sum()))
        corrs.append(float((x * y).sum()) / den if den > 0 else 0.0)
    k = int(np.argmax(corrs))
    return {"radius_px": float(radii[k]) if corrs[k] >= min_corr else None, "corr": corrs[k]}


def register(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """``moving`` warped onto ``reference`` (affine, OpenCV's ECC on both smoothed): focus
    breathing changes the magnification from frame to frame, and a shift of a pixel costs the
    correlation more than a pixel of blur.  Returns ``moving`` unchanged when ECC does not
    converge."""
    import cv2
    ref = cv2.GaussianBlur(np.asarray(reference, np.float32), (0, 0), 1.5)
    mov = cv2.GaussianBlur(np.asarray(moving, np.float32), (0, 0), 1.5)
    warp = np.eye(2, 3, dtype=np.float32)
    try:
        _, warp = cv2.findTransformECC(ref, mov, warp, cv2.MOTION_AFFINE,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5), None, 1)
    except cv2.error:
        return np.asarray(moving)
    h, w = reference.shape
    return cv2.warpAffine(np.asarray(moving, np.float32), warp, (w, h),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)


def fit_sweep(name: str, truth: dict, data: Path, registered: bool = True) -> dict:
    """Every frame of one sweep against its judged sharpest frame (the judged region),
    each frame first registered onto it (:func:`register`) unless ``registered`` is False."""
    from verdict_bench import roi_crops
    t = truth["sweeps"][name]
    roi = tuple(t.get("roi", truth["region"]))
    crops = roi_crops(data / "focus-sweeps" / name, roi)
    ref = crops[t["sharpest"]]
    frames = []
    for i, c in enumerate(crops):
        f = relative_defocus(ref, register(ref, c) if registered and i != t["sharpest"] else c)
        a0, a1 = t["acceptable"]
        cls = ("accepted" if a0 <= i <= a1 else "near" if i in t.get("near", [])
               else "other_plane" if i in t.get("other_planes", []) else "soft")
        frames.append({"frame": i, "class": cls, **f})
    return {"sweep": name, "sharpest": t["sharpest"], "acceptable": t["acceptable"], "frames": frames}


def summarize(results: List[dict]) -> Dict[str, List[float]]:
    """Fitted radii of all sweeps' frames by class (accepted, near, soft within three frames
    of the accepted range), frames without a fit left out."""
    out: Dict[str, List[float]] = {"accepted": [], "near": [], "soft_within_3": []}
    for res in results:
        a0, a1 = res["acceptable"]
        for f in res["frames"]:
            if f["radius_px"] is None or f["frame"] == res["sharpest"]:
                continue
            if f["class"] == "accepted":
                out["accepted"].append(f["radius_px"])
            elif f["class"] == "near":
                out["near"].append(f["radius_px"])
            elif f["class"] == "soft" and min(abs(f["frame"] - a0), abs(f["frame"] - a1)) <= 3:
                out["soft_within_3"].append(f["radius_px"])
    return out


def main(argv=None) -> int:
    from verdict_bench import load_truth
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--sweeps", nargs="*", help="only these sweeps (default: every judged sweep)")
    p.add_argument("--json", action="store_true", help="one JSON object per sweep, then the summary")
    p.add_argument("--no-register", action="store_true", help="fit the frames as they are (no ECC registration)")
    a = p.parse_args(argv)
    if not (a.data / "focus-sweeps").is_dir():
        print(f"no focus sweeps under {a.data}: nothing to measure")
        return 0
    truth = load_truth()
    results = []
    for name in a.sweeps or sorted(truth["sweeps"]):
        res = fit_sweep(name, truth, a.data, not a.no_register)
        results.append(res)
        if a.json:
            print(json.dumps(res), flush=True)
            continue
        marks = {"accepted": "A", "near": "n", "other_plane": "o", "soft": "."}
        cells = [f"{f['frame']}{marks[f['class']]}:" + ("-" if f["radius_px"] is None else f"{f['radius_px']:g}")
                 for f in res["frames"]]
        print(f"{name:24s} sharpest {res['sharpest']:2d}  " + " ".join(cells), flush=True)
    s = summarize(results)

    def rng(v):
        return "none" if not v else f"{min(v):g}..{max(v):g} px (median {float(np.median(v)):g}, n {len(v)})"
    summary = {"summary": True, **{k: sorted(v) for k, v in s.items()}}
    print(json.dumps(summary) if a.json else
          "fitted defocus radius relative to the judged sharpest frame:\n"
          f"  accepted (not the sharpest)    {rng(s['accepted'])}\n"
          f"  near                           {rng(s['near'])}\n"
          f"  soft, within 3 frames of range {rng(s['soft_within_3'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
