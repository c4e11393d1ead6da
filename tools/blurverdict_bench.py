"""Blur-source experiment for the verdict (issue 9, parts 1 and 3): does the model-free
defocus estimate (:mod:`pifocus.focus.blurest`) make the in-focus verdict tighter on the
real shared sweeps than the binary CNN's in-focus vote?

One pass per sweep and sampling through the shipped analyzer (as ``tools/verdict_bench.py``:
the live pull 1 -> N -> 1 first, then every frame as a still); for every frame it records the
CNN's in-focus fraction and the ROI's ``blur_px`` from :func:`~pifocus.focus.blurest.estimate_blur`
run on the judged ROI at the analyzer's analysis scale (and, with ``--tiles``, on each tile of
the 6 x 8 grid).  The verdict variants are then replayed on those numbers, for every
``--coc`` value:

* ``cnn``        -- the analyzer as shipped (current main);
* ``edges``      -- in focus when the ROI's blur_px <= coc_px;
* ``edges+cnn``  -- both: the ROI's blur_px <= coc_px and the CNN's vote;
* ``tiles``      -- (``--tiles``) the weighted share of tiles with blur_px <= coc_px >= on_fraction.

Stills: precision / recall of the in-focus set against ``tests/data/sweep_truth.json``; pull:
the variant's fraction through a fresh :class:`~pifocus.focus.verdict.Verdict` (the default
hysteresis and dwell) in pull order: ok when it lit at least once and never more than 1 frame
outside the judged range.

    python tools/blurverdict_bench.py --upsample 1 2 --tiles --coc 0.5 0.75 1.0 1.5 --dump runs.json
    python tools/blurverdict_bench.py --load runs.json --tiles --coc 1.0   # replay, no measuring
    python tools/blurverdict_bench.py --cost 40 --cost-max-pixels 65000 250000 1000000

Summary lines per sampling and variant: sweeps with precision >= 0.9, recall >= 0.67, both,
pull ok; sweeps never lit as stills; and, summed over the sweeps, stills lit outside the
judged range and accepted frames lit.
"""

import argparse
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from verdict_bench import load_truth, precision_recall, sweep_luma  # noqa: E402

from pifocus.focus import AnalysisParams, FocusAnalyzer  # noqa: E402
from pifocus.focus import blur as b  # noqa: E402
from pifocus.focus.levels import reduce_luma  # noqa: E402
from pifocus.focus.blurest import estimate_blur  # noqa: E402
from pifocus.focus.measures import roi_pixels  # noqa: E402
from pifocus.focus.verdict import Verdict, VerdictParams  # noqa: E402
from pifocus.frames import Frame  # noqa: E402


def frame_record(an: FocusAnalyzer, luma: np.ndarray, i: int, k: int, track: bool, tiles: bool) -> dict:
    """The analyzer's report of one frame plus blurest on its judged ROI (analysis scale)."""
    rep = an.analyze(Frame(luma=luma, index=k, lens_position=float(i), timestamp_ns=int(k * 1e9 / 30)), track=track,
                     still=not track)
    s = int(rep.analysis_scale)
    x, y, w, h = roi_pixels(an.params.effective_roi, luma.shape[1], luma.shape[0])
    roi = reduce_luma(np.ascontiguousarray(luma[y:y + h, x:x + w]), s)
    noise = rep.noise_sigma_dn / s
    est = estimate_blur(roi, noise_sigma_dn=noise)
    rec = {"frame": i, "judgeable": bool(rep.judgeable), "cnn_frac": float(rep.in_focus_fraction),
           "cnn_raw": bool(rep.raw_in_focus), "led": bool(rep.in_focus), "blur_px": est.blur_px,
           "scale": s, "sharpness": float(rep.sharpness)}
    if tiles:
        rows, cols = an.params.rows, an.params.cols
        th, tw = roi.shape[0] // rows, roi.shape[1] // cols
        tb = np.full((rows, cols), np.nan)
        for r in range(rows):          # the experiment only: 48 tiles
            for c in range(cols):
                t = roi[r * th:(r + 1) * th, c * tw:(c + 1) * tw]
                if min(t.shape) >= 16:
                    tb[r, c] = estimate_blur(t, noise_sigma_dn=noise).blur_px
        rec["tile_blur"] = tb.tolist()
        rec["tile_w"] = np.asarray(rep.tile_weight, float).tolist() if rep.tile_weight.shape == tb.shape \
            else np.ones_like(tb).tolist()
    return rec


def collect(name: str, truth: dict, data: Path, up: int, tiles: bool) -> dict:
    """Per-frame records of the pull and the stills of one sweep at one sampling."""
    t = truth["sweeps"][name]
    roi = tuple(t.get("roi", truth["region"]))
    an = FocusAnalyzer(AnalysisParams(roi=roi))
    try:
        lumas = sweep_luma(data / "focus-sweeps" / name, up)
        an.reset()
        order = list(range(len(lumas))) + list(range(len(lumas) - 2, -1, -1))
        pull = [frame_record(an, lumas[i], i, k, True, tiles) for k, i in enumerate(order)]
        stills = [frame_record(an, g, i, i, False, tiles) for i, g in enumerate(lumas)]
    finally:
        an.close()
    return {"sweep": name, "upsample": up, "accepted": t["acceptable"], "pull": pull, "stills": stills}


def fraction(rec: dict, variant: str, coc: float, on: float) -> float:
    """The variant's in-focus fraction of one frame (what the hysteresis runs on)."""
    ok = rec["judgeable"] and not math.isnan(rec["blur_px"])
    if variant == "cnn":
        return rec["cnn_frac"]
    if variant == "edges":
        return 1.0 if ok and rec["blur_px"] <= coc else 0.0
    if variant == "edges+cnn":
        return rec["cnn_frac"] if ok and rec["blur_px"] <= coc else 0.0
    if variant == "tiles":
        tb = np.asarray(rec["tile_blur"], float)
        return b.sharp_fraction(tb, np.asarray(rec["tile_w"], float), coc) if rec["judgeable"] else 0.0
    raise ValueError(variant)


def score(run: dict, variant: str, coc: float) -> dict:
    """Stills precision/recall and the pull's LED for one variant and coc_px."""
    vp = VerdictParams()
    acc = range(run["accepted"][0], run["accepted"][1] + 1)
    if variant == "cnn":
        lit = [r["frame"] for r in run["stills"] if r["cnn_raw"]]
        led = [r["frame"] for r in run["pull"] if r["led"]]
    else:
        lit = [r["frame"] for r in run["stills"]
               if r["judgeable"] and fraction(r, variant, coc, vp.on_fraction) >= vp.on_fraction]
        v = Verdict(vp)
        led = [r["frame"] for r in run["pull"] if v.update(fraction(r, variant, coc, vp.on_fraction), r["judgeable"])]
    pr = precision_recall(lit, acc)
    out = [f for f in led if f not in acc]
    dist = max((min(abs(f - acc.start), abs(f - (acc.stop - 1))) for f in out), default=0)
    return {"in_focus": lit, **pr, "pull_lit": sorted(set(led)), "pull_ok": bool(led) and dist <= 1}


def cost(frames: int, size=(2028, 1520), max_pixels: int = 250_000) -> dict:
    """Median ms per frame, interleaved on the same simulated frames: the bare
    ``cv2.Laplacian(gray, CV_64F).var()`` baseline, the full analyzer path, and blurest on the
    judged ROI at the analysis scale (capped at ``max_pixels`` by its most detailed windows)."""
    import time

    import cv2
    from dataclasses import replace

    from pifocus.focus.blurest import BlurEstParams
    from pifocus.sources import open_source
    an = FocusAnalyzer(AnalysisParams())
    bp = replace(BlurEstParams(), max_pixels=max_pixels)
    t = {"baseline": [], "full": [], "blurest": []}
    with open_source("sim", width=size[0], height=size[1]) as src:
        for i, fr in zip(range(frames + 3), src):
            t0 = time.perf_counter()
            cv2.Laplacian(fr.luma, cv2.CV_64F).var()
            t1 = time.perf_counter()
            rep = an.analyze(fr)
            t2 = time.perf_counter()
            s = int(rep.analysis_scale)
            x, y, w, h = roi_pixels(an.params.effective_roi, fr.luma.shape[1], fr.luma.shape[0])
            estimate_blur(reduce_luma(np.ascontiguousarray(fr.luma[y:y + h, x:x + w]), s), bp, rep.noise_sigma_dn / s)
            t3 = time.perf_counter()
            if i >= 3:
                t["baseline"].append((t1 - t0) * 1e3)
                t["full"].append((t2 - t1) * 1e3)
                t["blurest"].append((t3 - t2) * 1e3)
    an.close()
    med = {k: float(np.median(v)) for k, v in t.items()}
    return {**med, "full_ratio": med["full"] / med["baseline"],
            "full_plus_blurest_ratio": (med["full"] + med["blurest"]) / med["baseline"], "max_pixels": max_pixels}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--sweeps", nargs="*", help="only these sweeps (default: every judged sweep)")
    p.add_argument("--upsample", type=int, nargs="*", default=[1], help="samplings, e.g. 1 2")
    p.add_argument("--coc", type=float, nargs="*", default=[0.75, 1.0, 1.5], help="coc_px values to try")
    p.add_argument("--tiles", action="store_true", help="also the per-tile variant (slow)")
    p.add_argument("--dump", type=Path, help="write the per-frame records here (JSON)")
    p.add_argument("--load", type=Path, help="replay records written by --dump instead of measuring")
    p.add_argument("--cost", type=int, metavar="FRAMES",
                   help="only the cost check: FRAMES simulated 2028x1520 frames, medians in ms")
    p.add_argument("--cost-max-pixels", type=int, nargs="*", default=[250_000, 1_000_000])
    a = p.parse_args(argv)
    if a.cost:
        for mp in a.cost_max_pixels:
            print(json.dumps({k: round(v, 3) for k, v in cost(a.cost, max_pixels=mp).items()}))
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if a.load:
        runs = json.loads(a.load.read_text())
    else:
        if not (a.data / "focus-sweeps").is_dir():
            print(f"no focus sweeps under {a.data}: nothing to measure")
            return 0
        truth = load_truth()
        names = a.sweeps or sorted(truth["sweeps"])
        runs = []
        for up in a.upsample:
            for name in names:
                runs.append(collect(name, truth, a.data, up, a.tiles))
                print(f"measured {name} x{up}", file=sys.stderr, flush=True)
        if a.dump:
            a.dump.write_text(json.dumps(runs))
    variants = [("cnn", None)] + [(v, c) for v in ("edges", "edges+cnn") + (("tiles",) if a.tiles else ())
                                  for c in a.coc]
    for up in sorted({r["upsample"] for r in runs}):
        rs = [r for r in runs if r["upsample"] == up]
        for r in rs:
            blur = " ".join("nan" if math.isnan(s["blur_px"]) else f"{s['blur_px']:.2f}" for s in r["stills"])
            print(f"x{up} {r['sweep']:24s} accepted {r['accepted']}  blur_px per frame: {blur}")
        for v, c in variants:
            sc = [score(r, v, c) for r in rs]
            okp = sum(s["precision"] >= 0.9 for s in sc)
            okr = sum(s["recall"] >= 0.67 for s in sc)
            both = sum(s["precision"] >= 0.9 and s["recall"] >= 0.67 for s in sc)
            pull = sum(s["pull_ok"] for s in sc)
            lit_none = sum(not s["in_focus"] for s in sc)
            outside = sum(len(set(s["in_focus"]) - set(range(r["accepted"][0], r["accepted"][1] + 1)))
                          for r, s in zip(rs, sc))
            hits = sum(len(set(s["in_focus"]) & set(range(r["accepted"][0], r["accepted"][1] + 1)))
                       for r, s in zip(rs, sc))
            n_acc = sum(r["accepted"][1] - r["accepted"][0] + 1 for r in rs)
            tag = v if c is None else f"{v} coc={c}"
            print(f"x{up} {tag:22s} P>=0.9 {okp:2d}/{len(rs)}  R>=0.67 {okr:2d}/{len(rs)}  both {both:2d}/{len(rs)}"
                  f"  pull ok {pull:2d}/{len(rs)}  stills never lit {lit_none}"
                  f"  stills lit outside {outside}, accepted lit {hits}/{n_acc}")
            for r, s in zip(rs, sc):
                print(f"    {r['sweep']:24s} acc {r['accepted']} in_focus {s['in_focus']} "
                      f"P {s['precision']:.2f} R {s['recall']:.2f} pull {s['pull_lit']} {'ok' if s['pull_ok'] else 'BAD'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
