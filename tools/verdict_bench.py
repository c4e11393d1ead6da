#!/usr/bin/env python3
"""Verdict bench: does the in-focus verdict light where a photographer would keep the frame?

For every sweep in ``../shared/data/focus-sweeps`` the judged truth in
``tests/data/sweep_truth.json`` gives the sharpest frame and the range a photographer
checking critical focus at 100 % view would accept.  Two ways of looking, as in the issue:

* **stills** -- every frame scored on its own (``pifocus score``: ``analyze(track=False)``);
  ``in_focus`` frames against the accepted range give precision and recall, and the frame
  with the highest sharpness is compared with the judged sharpest.
* **pull** -- the sweep played 1 -> N -> 1 through one analyzer (``pifocus run``: hysteresis,
  dwell and peak hold as configured), as a photographer racks the lens through focus and
  back; counted: frames the LED is lit outside the accepted range, and whether it lit at all.

``--upsample 2 3`` repeats everything on the frames enlarged bicubically (an oversampled
sensor behind the same lens): the verdict should not change with the sampling.

    python tools/verdict_bench.py                     # table on stderr-free stdout
    python tools/verdict_bench.py --no-cnn --json     # Laplacian-only mode, JSON lines
    python tools/verdict_bench.py --plot build/curves # and each sweep's focus curve as a PNG

Prints one line (or JSON object) per sweep and a summary; exit status 0 unless the data is
missing (then 0 with a note: there is nothing to measure).
"""

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from dataset import read_gray, sweep_frames  # noqa: E402

from pifocus.focus import AnalysisParams, FocusAnalyzer  # noqa: E402
from pifocus.frames import Frame  # noqa: E402

TRUTH = ROOT / "tests" / "data" / "sweep_truth.json"
log = logging.getLogger("verdict_bench")


def load_truth(path: Path = TRUTH) -> dict:
    """The judged truth (see the file's ``note``)."""
    return json.loads(path.read_text(encoding="utf-8"))


def sweep_luma(folder: Path, upsample: int = 1) -> List[np.ndarray]:
    """The sweep's frames as luma, in focus order, optionally enlarged ``upsample`` x."""
    import cv2
    out = []
    for f in sweep_frames(folder):
        g = read_gray(f)
        if upsample > 1:
            g = cv2.resize(g, (g.shape[1] * upsample, g.shape[0] * upsample), interpolation=cv2.INTER_CUBIC)
        out.append(g)
    return out


def roi_crops(folder: Path, roi, upsample: int = 1) -> List[np.ndarray]:
    """The sweep's frames cut to ``roi`` (normalized x, y, w, h), optionally enlarged
    ``upsample`` x bicubically: judged with ``roi=(0, 0, 1, 1)`` they give the ROI's tiles,
    at a fraction of the cost of enlarging whole frames (the scale-invariance test)."""
    import cv2
    from pifocus.focus.measures import roi_pixels
    out = []
    for f in sweep_frames(folder):
        g = read_gray(f)
        x, y, w, h = roi_pixels(roi, g.shape[1], g.shape[0])
        g = np.ascontiguousarray(g[y:y + h, x:x + w])
        if upsample > 1:
            g = cv2.resize(g, (g.shape[1] * upsample, g.shape[0] * upsample), interpolation=cv2.INTER_CUBIC)
        out.append(g)
    return out


def window(lit: List[int]):
    """``(first, last)`` frame of an in-focus set, or None when nothing lit."""
    return (min(lit), max(lit)) if lit else None


def invariance(name: str, truth: dict, data: Path, upsamplings=(2, 3), use_cnn: bool = True) -> dict:
    """Part 2's check on one sweep: the ROI's frames at the sensor's sampling and enlarged
    ``upsamplings`` x, each through a fresh analyzer (``analysis_scale = "auto"``): a pull
    1 -> N -> 1 (the ROI's scale is learned on it), then every frame as a still.  Returns,
    per sampling, the analysis scale used, the sharpest frame by the analyzer's sharpness,
    the in-focus window of the stills, and whether they agree with the native ones within
    +-1 frame; and the frames the pull lit (``pull_lit``) and whether they meet the pull's
    target (``pull_ok``: lit at least once, none more than a frame outside the accepted
    range)."""
    t = truth["sweeps"][name]
    roi = tuple(t.get("roi", truth["region"]))
    res = {}
    for up in (1,) + tuple(upsamplings):
        lumas = roi_crops(data / "focus-sweeps" / name, roi, up)
        an = FocusAnalyzer(AnalysisParams(roi=(0.0, 0.0, 1.0, 1.0), use_cnn=use_cnn))
        try:
            pull = live_pull(an, lumas)
            stills = score_stills(an, lumas)
        finally:
            an.close()
        sharp = [s["sharpness"] if s["sharpness"] is not None else -1.0 for s in stills]
        res[up] = {"analysis_scale": sorted({s["analysis_scale"] for s in stills}),
                   "sharpest": int(np.argmax(sharp)), "window": window([s["frame"] for s in stills if s["in_focus"]]),
                   "pull_lit": sorted({p["frame"] for p in pull if p["led"]})}
    for r in res.values():
        r["pull_ok"] = pull_meets_target(r["pull_lit"], t["acceptable"])
    base = res[1]
    for up in upsamplings:
        r, w0, w1 = res[up], base["window"], res[up]["window"]
        r["same_sharpest"] = abs(r["sharpest"] - base["sharpest"]) <= 1
        r["same_window"] = (w0 is None and w1 is None) or (
            w0 is not None and w1 is not None and abs(w0[0] - w1[0]) <= 1 and abs(w0[1] - w1[1]) <= 1)
    return {"sweep": name, **{f"x{k}": v for k, v in res.items()}}


def pull_meets_target(lit: List[int], accepted) -> bool:
    """The live pull's target (part 4): lit at least once, never more than one frame outside
    the accepted range ``[first, last]``."""
    return bool(lit) and all(accepted[0] - 1 <= f <= accepted[1] + 1 for f in lit)


def precision_recall(lit: List[int], accepted: range, near=()) -> Dict[str, float]:
    """Precision of the lit frames against the accepted range, and its recall; and
    ``precision_near_free``: the precision with the judged ``near`` frames counted neither
    way (their defocus relative to the sharpest frame overlaps the accepted frames':
    ``tools/sweep_fit.py``), a view for planning beside the target's own."""
    lit_set = set(lit)
    hits = len(lit_set & set(accepted))
    free = lit_set - (set(near) - set(accepted))
    return {"precision": hits / len(lit_set) if lit_set else float("nan"),
            "recall": hits / len(accepted) if len(accepted) else float("nan"),
            "precision_near_free": hits / len(free) if free else float("nan")}


def score_stills(analyzer: FocusAnalyzer, lumas: List[np.ndarray]) -> List[dict]:
    """One report per frame, each judged on its own (no hysteresis)."""
    out = []
    for i, g in enumerate(lumas):
        rep = analyzer.analyze(Frame(luma=g, index=i, lens_position=float(i)), track=False, still=True)
        d = rep.to_dict(tiles=False)
        out.append({"frame": i, "sharpness": d.get("sharpness"), "p_in_focus": d.get("p_in_focus"),
                    "in_focus": bool(rep.in_focus), "verdict": d.get("verdict"), "blur_px": d.get("blur_px"),
                    "analysis_scale": rep.analysis_scale})
    return out


def live_pull(analyzer: FocusAnalyzer, lumas: List[np.ndarray]) -> List[dict]:
    """Play the sweep 1 -> N -> 1 through one analyzer; the LED state per played frame."""
    analyzer.reset()
    order = list(range(len(lumas))) + list(range(len(lumas) - 2, -1, -1))
    out = []
    for k, i in enumerate(order):
        rep = analyzer.analyze(Frame(luma=lumas[i], index=k, lens_position=float(i),
                                     timestamp_ns=int(k * 1e9 / 30)), track=True)
        out.append({"frame": i, "led": bool(rep.in_focus), "meter": float(rep.meter)})
    return out


def bench_sweep(name: str, truth: dict, region, data: Path, upsample: int, use_cnn: bool, model=None,
                min_meter=None, keep_frames: bool = False) -> dict:
    """All numbers of one sweep at one sampling (``model``: a ``.tflite`` path, None = the
    shipped one; ``keep_frames``: also the per-frame stills and pull, as ``stills`` and
    ``pull``, for :func:`plot_sweep`)."""
    t = truth["sweeps"][name]
    roi = tuple(t.get("roi", region))
    extra = {} if min_meter is None else {"min_meter": float(min_meter)}
    analyzer = FocusAnalyzer(AnalysisParams(roi=roi, use_cnn=use_cnn, model=None if model is None else str(model),
                                            **extra))
    try:
        lumas = sweep_luma(data / "focus-sweeps" / name, upsample)
        # The pull first: the ROI's analysis scale ("auto") is learned on the first pass
        # through focus, as on a rig that has been racked once; the stills keep it.
        pull = live_pull(analyzer, lumas)
        stills = score_stills(analyzer, lumas)
    finally:
        analyzer.close()
    acc = range(t["acceptable"][0], t["acceptable"][1] + 1)
    lit = [s["frame"] for s in stills if s["in_focus"]]
    sharp = [s["sharpness"] if s["sharpness"] is not None else -1.0 for s in stills]
    pr = precision_recall(lit, acc, t.get("near", []))
    led_out = [p["frame"] for p in pull if p["led"] and p["frame"] not in acc]
    # "more than 1 frame outside": distance of each lit frame from the accepted range
    led_dist = [min(abs(f - acc.start), abs(f - (acc.stop - 1))) for f in led_out]
    scales = sorted({s["analysis_scale"] for s in stills})
    frames = {"stills": stills, "pull": pull} if keep_frames else {}
    return {**frames, "sweep": name, "upsample": upsample, "mode": "cnn" if use_cnn else "laplacian",
            "analysis_scale": scales,
            "frames": len(lumas), "sharpest_judged": t["sharpest"], "sharpest_measured": int(np.argmax(sharp)),
            "accepted": [acc.start, acc.stop - 1], "in_focus": lit, **pr,
            "pull_lit": sorted({p["frame"] for p in pull if p["led"]}),
            "pull_lit_outside": len(led_out), "pull_max_outside_frames": max(led_dist, default=0),
            "pull_lit_at_all": any(p["led"] for p in pull),
            "pull_ok": pull_meets_target(sorted({p["frame"] for p in pull if p["led"]}), t["acceptable"]),
            # lit where only another depth of the region is sharp: wrong by eye, however close
            "pull_lit_other_planes": sorted({p["frame"] for p in pull if p["led"]} & set(t.get("other_planes", [])))}


def plot_sweep(r: dict, truth_sweep: dict, path: Path, fit=None) -> None:
    """One sweep's focus curve as a PNG: the stills' sharpness (relative to the sweep's best,
    log scale) and subject ``blur_px`` per frame, the judged accepted range shaded, the
    ``near`` and other-plane frames marked, the frames the stills call in focus and the frames
    the live pull lit; with ``fit`` (:func:`sweep_fit.fit_sweep`'s result) the defocus
    relative to the judged sharpest frame too.  ``r``: :func:`bench_sweep` with
    ``keep_frames``.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    from pifocus.validate import require_matplotlib
    require_matplotlib("--plot")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    st = r["stills"]
    x = np.array([s["frame"] for s in st])
    sharp = np.array([s["sharpness"] if s["sharpness"] is not None else np.nan for s in st], float)
    blur = np.array([s["blur_px"] if s["blur_px"] is not None else np.nan for s in st], float)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 6), dpi=100, sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    a0, a1 = truth_sweep["acceptable"]
    for a in (ax, ax2):
        a.axvspan(a0 - 0.5, a1 + 0.5, color="tab:green", alpha=0.15, lw=0)
        for f in truth_sweep.get("near", []):
            a.axvspan(f - 0.5, f + 0.5, color="tab:orange", alpha=0.12, lw=0)
        for f in truth_sweep.get("other_planes", []):
            a.axvspan(f - 0.5, f + 0.5, color="0.6", alpha=0.15, lw=0)
    best = np.nanmax(sharp) if np.isfinite(sharp).any() else 1.0
    ax.semilogy(x, np.maximum(sharp / best, 1e-4), "o-", color="tab:blue", ms=4, label="sharpness / best")
    ax.axvline(truth_sweep["sharpest"], color="tab:green", lw=1, ls="--", label="judged sharpest")
    ax.set_ylabel("sharpness / best")
    axb = ax.twinx()
    axb.plot(x, blur, "s-", color="tab:red", ms=3, lw=1, label="blur_px (analysis scale)")
    if fit is not None:
        fx = [f["frame"] for f in fit["frames"] if f["radius_px"] is not None]
        fr = [f["radius_px"] for f in fit["frames"] if f["radius_px"] is not None]
        axb.plot(fx, fr, "^:", color="tab:purple", ms=4, lw=1, label="defocus vs judged sharpest (fit)")
    axb.set_ylabel("blur radius, px")
    axb.set_ylim(bottom=0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = axb.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left", framealpha=0.85)
    lit = r["in_focus"]
    ax2.plot(lit, [1] * len(lit), "o", color="tab:green", ms=7, label="still: in focus")
    pl = r["pull_lit"]
    ax2.plot(pl, [0] * len(pl), "D", color="gold", mec="k", ms=7, label="live pull: LED lit")
    ax2.set_yticks([0, 1], ["pull LED", "stills"])
    ax2.set_ylim(-0.6, 1.6)
    ax2.set_xlabel("frame (green: judged acceptable; orange: near; grey: another plane sharp)")
    ax2.set_xlim(x.min() - 0.6, x.max() + 0.6)
    ax.set_title(f"{r['sweep']} x{r['upsample']}: stills P {r['precision']:.2f} R {r['recall']:.2f}, "
                 f"pull lit {pl or 'never'}", fontsize=10)
    fig.tight_layout()
    fig.savefig(str(path))
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--sweeps", nargs="*", help="only these sweeps (default: every judged sweep)")
    p.add_argument("--upsample", type=int, nargs="*", default=[1], help="samplings to run, e.g. 1 2 3")
    p.add_argument("--no-cnn", action="store_true", help="Laplacian-only mode")
    p.add_argument("--min-meter", type=float, default=None,
                   help="[analysis] min_meter for the run (default: the analyzer's default)")
    p.add_argument("--model", type=Path, default=None, metavar="MODEL.tflite",
                   help="judge with this model (its .json metadata beside it) instead of the shipped one")
    p.add_argument("--json", action="store_true", help="one JSON object per sweep and sampling")
    p.add_argument("--plot", type=Path, default=None, metavar="DIR",
                   help="write each sweep's focus curve (sharpness, blur_px, the fitted defocus, the judged "
                        "range, the stills' and the pull's lit frames) as DIR/SWEEP_xN.png (needs matplotlib)")
    p.add_argument("--invariance", action="store_true",
                   help="only the scale-invariance check: the ROI native and enlarged 2x and 3x (or "
                        "--upsample), same sharpest frame and in-focus window within +-1 frame")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not (a.data / "focus-sweeps").is_dir():
        print(f"no focus sweeps under {a.data}: nothing to measure")
        return 0
    if a.plot is not None:
        from pifocus.validate import require_matplotlib
        require_matplotlib("--plot")     # before the long work, not after it
    truth = load_truth()
    names = a.sweeps or sorted(truth["sweeps"])
    if a.invariance:
        ups = tuple(u for u in a.upsample if u > 1) or (2, 3)
        ok, pulls = 0, {u: 0 for u in (1,) + ups}
        for name in names:
            r = invariance(name, truth, a.data, ups, not a.no_cnn)
            good = all(r[f"x{u}"]["same_sharpest"] and r[f"x{u}"]["same_window"] for u in ups)
            ok += good
            print(json.dumps(r) if a.json else
                  f"{name:24s} " + "  ".join(f"x{u}: scale {r[f'x{u}']['analysis_scale']} sharpest {r[f'x{u}']['sharpest']} "
                                            f"window {r[f'x{u}']['window']} pull {r[f'x{u}']['pull_lit']}"
                                            for u in (1,) + ups)
                  + ("" if good else "   <- differs"), flush=True)
            for u in (1,) + ups:
                pulls[u] += r[f"x{u}"]["pull_ok"]
        print(f"invariant on {ok}/{len(names)} sweeps (x{', x'.join(map(str, ups))} vs native); live pull ok "
              + ", ".join(f"x{u} {pulls[u]}/{len(names)}" for u in (1,) + ups))
        return 0
    rows = []
    for up in a.upsample:
        for name in names:
            r = bench_sweep(name, truth, truth["region"], a.data, up, not a.no_cnn, a.model, a.min_meter,
                            keep_frames=a.plot is not None)
            if a.plot is not None:
                from sweep_fit import fit_sweep
                a.plot.mkdir(parents=True, exist_ok=True)
                plot_sweep(r, truth["sweeps"][name], a.plot / f"{name}_x{up}.png",
                           fit_sweep(name, truth, a.data) if up == 1 else None)
                r = {k: v for k, v in r.items() if k not in ("stills", "pull")}
            rows.append(r)
            if a.json:
                print(json.dumps(r), flush=True)
            else:
                print(f"{name:24s} x{up} sharpest judged {r['sharpest_judged']:2d} measured {r['sharpest_measured']:2d}"
                      f"  accepted {r['accepted']}  in_focus {r['in_focus']}  P {r['precision']:.2f} R {r['recall']:.2f}"
                      f" (P near-free {r['precision_near_free']:.2f})"
                      f"  pull lit {r['pull_lit']} (outside: {r['pull_lit_outside']}, max {r['pull_max_outside_frames']})",
                      flush=True)
    for up in a.upsample:
        rs = [r for r in rows if r["upsample"] == up]
        ok_p = sum(1 for r in rs if r["precision"] >= 0.9)
        ok_r = sum(1 for r in rs if r["recall"] >= 0.67)
        ok_pn = sum(1 for r in rs if r["precision_near_free"] >= 0.9)
        ok_pull = sum(1 for r in rs if r["pull_ok"])
        same = sum(1 for r in rs if abs(r["sharpest_measured"] - r["sharpest_judged"]) <= 1)
        summary = {"summary": True, "upsample": up, "sweeps": len(rs), "precision_ge_0.9": ok_p,
                   "recall_ge_0.67": ok_r, "pull_ok": ok_pull, "sharpest_within_1": same,
                   "precision_near_free_ge_0.9": ok_pn}
        print(json.dumps(summary) if a.json else
              f"x{up}: precision>=0.9 on {ok_p}/{len(rs)}, recall>=0.67 on {ok_r}/{len(rs)}, "
              f"live pull ok on {ok_pull}/{len(rs)}, sharpest within 1 frame on {same}/{len(rs)}; "
              f"precision>=0.9 with the near frames not counted on {ok_pn}/{len(rs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
