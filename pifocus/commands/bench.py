"""``pifocus bench``: per-stage timings against a hand-written Laplacian baseline."""

import resource
import sys
import time

import numpy as np

from . import _common
from ..argtypes import bounded_int

FRAMES = bounded_int(1, 100_000)
WARMUP = bounded_int(0, 1000)

HELP = "time the pipeline stages against a bare cv2.Laplacian(...).var() baseline"
DESCRIPTION = """\
Run the same frames, in the same process, through
  baseline         cv2.Laplacian(gray, cv2.CV_64F).var() on the full frame (what a user
                   would write by hand),
  laplacian_only   the tiled prefilter with noise gate, no CNN,
  full             prefilter + CNN on the gated tiles + verdict,
interleaved frame by frame, and report medians and p95 in ms/frame with ratios against the
baseline.  Frame reading/rendering is not timed.  The machine's load affects every path
alike; quote medians.

  pifocus bench --source sim --frames 60 --json
"""


def add_arguments(p):
    _common.add_config_arg(p)
    _common.add_source_args(p)
    _common.add_analysis_args(p)
    p.add_argument("--frames", type=FRAMES, default=60, metavar="N", help=f"frames to time ({FRAMES.range}) [60]")
    p.add_argument("--warmup", type=WARMUP, default=3, metavar="N", help=f"untimed frames first ({WARMUP.range}) [3]")


def _stats(xs):
    a = np.asarray(xs, np.float64)
    if a.size == 0:
        return {"median": None, "p95": None}
    return {"median": round(float(np.median(a)), 3), "p95": round(float(np.percentile(a, 95)), 3)}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 1024.0 / 1024.0


def run(args, console) -> int:
    import cv2
    import dataclasses

    from ..focus import FocusAnalyzer

    if args.source is None and args.size is None:
        args.size = (2028, 1520)  # the HQ Camera mode the targets are set for
    cfg = _common.load_config(args)
    source = _common.make_source(cfg)
    lap_only = FocusAnalyzer(dataclasses.replace(cfg.analysis, use_cnn=False))
    full = _common.make_analyzer(cfg) if cfg.analysis.use_cnn else None

    t = {k: [] for k in ("baseline", "lap_prefilter", "lap_total", "full_prefilter", "full_cnn", "full_total")}
    tiles = []
    shape = None
    with source:
        it = iter(source)
        for i in console.progress(range(args.warmup + args.frames), total=args.warmup + args.frames, desc="bench"):
            try:
                frame = next(it)
            except StopIteration:
                break
            shape = frame.luma.shape
            t0 = time.perf_counter()
            cv2.Laplacian(frame.luma, cv2.CV_64F).var()
            t1 = time.perf_counter()
            # Alternate the order so neither path always finds the frame warm in cache.
            if i % 2 or full is None:
                r_lap = lap_only.analyze(frame)
                r_full = full.analyze(frame) if full is not None else None
            else:
                r_full = full.analyze(frame)
                r_lap = lap_only.analyze(frame)
            if i < args.warmup:
                continue
            t["baseline"].append((t1 - t0) * 1e3)
            t["lap_prefilter"].append(r_lap.timings_ms["prefilter"])
            t["lap_total"].append(r_lap.timings_ms["total"])
            if r_full is not None:
                t["full_prefilter"].append(r_full.timings_ms["prefilter"])
                t["full_cnn"].append(r_full.timings_ms["cnn"])   # every level's classification
                t["full_total"].append(r_full.timings_ms["total"])
                tiles.append(r_full.tiles_to_cnn)
    n = len(t["baseline"])
    if n == 0:
        from ..exc import SourceError
        raise SourceError(f"bench: source {source.name!r} gave no frames after {args.warmup} warm-up frame(s)")
    base = float(np.median(t["baseline"]))
    lap = float(np.median(t["lap_total"]))
    full_ms = float(np.median(t["full_total"])) if t["full_total"] else None
    res = {
        "source": source.name,
        "frame_size": [int(shape[1]), int(shape[0])],
        "frames": n,
        "grid": [cfg.analysis.rows, cfg.analysis.cols],
        "baseline_ms": round(base, 3),
        "laplacian_only_ms": round(lap, 3),
        "full_ms": None if full_ms is None else round(full_ms, 3),
        "laplacian_only_ratio": round(lap / base, 3),
        "full_ratio": None if full_ms is None else round(full_ms / base, 3),
        "stages_ms": {
            "baseline": _stats(t["baseline"]),
            "laplacian_only": {"prefilter": _stats(t["lap_prefilter"]), "total": _stats(t["lap_total"])},
            "full": {"prefilter": _stats(t["full_prefilter"]), "cnn": _stats(t["full_cnn"]),
                     "total": _stats(t["full_total"])},
        },
        "fps_full": None if not full_ms else round(1000.0 / full_ms, 1),
        "fps_laplacian_only": round(1000.0 / lap, 1) if lap > 0 else None,
        "tiles_to_cnn_per_frame": None if not tiles else round(float(np.mean(tiles)), 2),
        # Per tile over the frames that sent tiles (a frame with none costs ~0 and would
        # otherwise pull the median to nothing).
        "cnn_ms_per_tile": (None if not any(tiles) else round(float(np.median(
            [c / k for c, k in zip(t["full_cnn"], tiles) if k > 0])), 4)),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    lap_only.close()
    if full is not None:
        full.close()
    text = (f"{n} frames {shape[1]}x{shape[0]} from {source.name}, grid {cfg.analysis.rows}x{cfg.analysis.cols} (medians)\n"
            f"  baseline  cv2.Laplacian(CV_64F).var()  {base:8.2f} ms   1.00x\n"
            f"  laplacian-only (prefilter + gate)      {lap:8.2f} ms   {lap / base:.2f}x\n")
    if full_ms is not None:
        text += (f"  full (prefilter + CNN + verdict)       {full_ms:8.2f} ms   {full_ms / base:.2f}x"
                 f"   ({res['tiles_to_cnn_per_frame']} tiles/frame to the CNN, "
                 f"CNN {res['stages_ms']['full']['cnn']['median']} ms/frame, {res['cnn_ms_per_tile']} ms/tile)\n")
    text += f"  peak RSS {res['peak_rss_mb']} MB"
    console.result(res, text)
    return 0
