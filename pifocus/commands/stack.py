"""``pifocus stack``: focus bracketing for stacking -- stills through a range at a step from
the measured depth of focus, with sweep.csv and a JSON sidecar per frame, optionally fused."""

import json
import logging
import math
from pathlib import Path

import numpy as np

from . import _common
from .autofocus import add_drive_args, make_af_analyzer, open_configured_drive
from .record import prepare_out, write_frames
from .. import storage
from ..argtypes import bounded_float, bounded_int

log = logging.getLogger(__name__)

OVERLAP = bounded_float(0.0, 0.9)
PROBE = bounded_int(5, 400)

HELP = "focus bracketing: full-resolution stills from --near to --far, step from the depth of focus; optional fusion"
DESCRIPTION = """\
Capture a focus bracket for stacking.  First a probe sweep over the range measures the depth
of focus from every tile's focus curve (where the tile is at least --edge-share of its own
peak sharpness); the step is that depth of focus less --overlap, and the fewest evenly spaced
frames that cover --near..--far are taken (at the centres of equal slices: every point of
the range is within half a step of a frame).  --step sets the step yourself.  Each frame is
the full-resolution luma as PNG, listed in sweep.csv (the replay format) with a JSON sidecar
(position, depth of focus, step, exposure); --fuse writes the all-in-focus image made with a
Laplacian-pyramid focus stack (OpenCV).

  pifocus stack --drive sim --near 400 --far 600 --out bracket/ --fuse bracket/fused.png
  pifocus stack --drive stepper --source picamera2 --near 820 --far 1460 --overlap 0.3 --out b/
  pifocus stack --drive sim --near 300 --far 700 --step 25 --out b/ --json
"""


def add_arguments(p):
    _common.add_config_arg(p)
    _common.add_source_args(p)
    _common.add_analysis_args(p)
    add_drive_args(p)
    p.add_argument("--near", type=float, required=True, metavar="POS", help="near end of the range (drive units)")
    p.add_argument("--far", type=float, required=True, metavar="POS", help="far end of the range (drive units)")
    p.add_argument("--overlap", type=OVERLAP, default=0.1, metavar="SHARE",
                   help=f"share of each frame's depth of focus shared with the next ({OVERLAP.range}) [0.1]")
    p.add_argument("--step", type=float, metavar="UNITS", help="lens step between frames [from the measured depth of focus]")
    p.add_argument("--edge-share", type=float, default=0.2, metavar="SHARE",
                   help="in focus = at least this share of a tile's peak sharpness (0.01..0.9) [0.2]")
    p.add_argument("--probe-frames", type=PROBE, default=25, metavar="N",
                   help=f"frames of the depth-of-focus probe sweep ({PROBE.range}) [25]")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the stills (created; must be empty)")
    p.add_argument("--fuse", metavar="FILE", help="also write the fused all-in-focus image here (PNG)")


def _frame_at(drive, source, pos: float, approach: bool):
    """Move to ``pos`` and return the first frame taken there (settle frames skipped)."""
    drive.move_to(pos, approach=approach)
    frame = source.read()
    for _ in range(int(getattr(drive.params, "settle_frames", 0) or 0)):
        frame = source.read()
    return frame


#: Probe tiles are about this wide (analysis px): small, so that a tile of a tilted subject
#: spans little depth and its focus curve is the lens's depth of focus, not the tilt.
PROBE_TILE_PX = 24


def _probe_analyzer(analyzer, frame):
    """A Laplacian-only analyzer over the same ROI with a fine grid (tiles ~PROBE_TILE_PX)."""
    import dataclasses

    from ..focus import FocusAnalyzer

    p = analyzer.params
    x, y, w, h = p.effective_roi
    s = int(p.analysis_scale)
    cols = int(min(32, max(p.cols, w * frame.width / s // PROBE_TILE_PX)))
    rows = int(min(32, max(p.rows, h * frame.height / s // PROBE_TILE_PX)))
    return FocusAnalyzer(dataclasses.replace(p, use_cnn=False, rows=rows, cols=cols, exposure=False))


def probe_dof(drive, source, analyzer, sp, console=None):
    """Probe sweep over the range (plus 15 % either side, inside the soft limits) on a fine
    tile grid: returns ``(dof, positions, per-tile scores)``; ``dof`` None when no tile's
    curve could be measured."""
    from ..stack import tile_dof

    lo, hi = drive.limits
    pad = 0.15 * (sp.far - sp.near)
    xs = np.linspace(max(lo, sp.near - pad), min(hi, sp.far + pad), int(sp.probe_frames))
    scores, informative, fine = [], None, None
    it = console.progress(xs, total=len(xs), desc="depth of focus", unit="frame") if console else xs
    for i, x in enumerate(it):
        frame = _frame_at(drive, source, float(x), approach=(i == 0))
        fine = fine or _probe_analyzer(analyzer, frame)
        rep = fine.analyze(frame, track=False)
        scores.append(np.maximum(rep.tile_lap_var - rep.tile_floor, 1e-3).ravel())
        inf = rep.tile_informative.ravel()
        informative = inf if informative is None else (informative | inf)
    fine.close()
    tiles = np.array(scores)
    return tile_dof(xs, tiles, informative, sp.edge_share, grid=rep.tile_informative.shape), xs, tiles


def run(args, console) -> int:
    from ..stack import StackParams, fuse, plan_positions

    sp = StackParams(near=args.near, far=args.far, overlap=args.overlap, step=args.step,
                     edge_share=args.edge_share, probe_frames=args.probe_frames)
    out = prepare_out(args.out)
    cfg = _common.load_config(args)
    drive, source = open_configured_drive(cfg, args)
    analyzer = make_af_analyzer(cfg, console)
    try:
        drive.open()
        lo, hi = drive.limits
        if sp.near < lo or sp.far > hi:
            from ..exc import ConfigError
            raise ConfigError(f"--near {sp.near:g} --far {sp.far:g} is outside the drive's soft limits {lo:g}..{hi:g}; "
                              "narrow the range or widen [drive] min_position/max_position")
        dof = None
        if sp.step is None:
            dof, _, _ = probe_dof(drive, source, analyzer, sp, console)
            if dof is None:
                from ..exc import AutofocusError
                raise AutofocusError("cannot measure the depth of focus: no tile's focus curve rises and falls "
                                     "within the probe sweep (too little texture, or the range misses focus); "
                                     "give --step")
            positions = plan_positions(sp.near, sp.far, dof, sp.overlap)
        else:
            n = max(1, int(math.ceil((sp.far - sp.near) / sp.step - 1e-9)))
            positions = [sp.near + (sp.far - sp.near) / n * (i + 0.5) for i in range(n)]
        if len(positions) > sp.max_frames:
            from ..exc import ConfigError
            raise ConfigError(f"the bracket needs {len(positions)} frames (> {sp.max_frames}); use a larger --step, "
                              "more --overlap is the other way round: less overlap")
        step = (sp.far - sp.near) / len(positions)
        console.note(f"{len(positions)} frames from {positions[0]:.1f} to {positions[-1]:.1f}, step {step:.2f}"
                     + (f" (depth of focus {dof:.1f}, overlap {sp.overlap:g})" if dof else ""))
        kept = []

        def frames():
            for i, pos in enumerate(positions):  # ascending: one approach, no backlash between frames
                f = _frame_at(drive, source, pos, approach=(i == 0))
                f = f.with_luma(np.array(f.luma, copy=True))
                if args.fuse:
                    kept.append(f.luma)
                yield f

        n = write_frames(frames(), out, "png", console, total=len(positions))
        for i, pos in enumerate(positions[:n]):
            side = {"file": f"frame_{i:05d}.png", "index": i, "position": round(pos, 4),
                    "units": getattr(drive, "units", "steps"), "near": sp.near, "far": sp.far,
                    "step": round(step, 4), "depth_of_focus": None if dof is None else round(dof, 3),
                    "overlap": sp.overlap, "frames": len(positions)}
            storage.atomic_write(out / f"frame_{i:05d}.json", json.dumps(side, indent=1).encode(), what="stack: ")
        result = {"out": str(out), "frames": n, "positions": [round(p, 3) for p in positions],
                  "step": round(step, 4), "depth_of_focus": None if dof is None else round(dof, 3),
                  "overlap": sp.overlap}
        if args.fuse:
            import cv2
            ok, buf = cv2.imencode(".png", fuse(kept))
            storage.atomic_write(Path(args.fuse), buf.tobytes(), what="stack: ")
            result["fused"] = str(args.fuse)
        console.result(result, f"{n} frames in {out}" + (f", fused into {args.fuse}" if args.fuse else ""))
        return 0
    finally:
        analyzer.close()
        drive.close()
        if source is not None and source is not getattr(drive, "source", None):
            source.close()
