"""``pifocus stack``: focus bracketing for stacking -- stills through a range at a step from
the measured depth of focus, with sweep.csv and a JSON sidecar per frame, optionally fused."""

import logging

from . import _common
from .autofocus import add_drive_args, make_af_analyzer, open_configured_drive
from .record import prepare_out
from ..argtypes import POSITION, bounded_float, bounded_int

log = logging.getLogger(__name__)

OVERLAP = bounded_float(0.0, 0.9)
PROBE = bounded_int(5, 400)
STEP = bounded_float(1e-6, 1e9)
SHARE = bounded_float(0.01, 0.9)

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
    p.add_argument("--near", type=POSITION, required=True, metavar="POS",
                   help=f"near end of the range (drive units, {POSITION.range})")
    p.add_argument("--far", type=POSITION, required=True, metavar="POS",
                   help=f"far end of the range (drive units, {POSITION.range})")
    p.add_argument("--overlap", type=OVERLAP, default=0.1, metavar="SHARE",
                   help=f"share of each frame's depth of focus shared with the next ({OVERLAP.range}) [0.1]")
    p.add_argument("--step", type=STEP, metavar="UNITS",
                   help=f"lens step between frames ({STEP.range}) [from the measured depth of focus]")
    p.add_argument("--edge-share", type=SHARE, default=0.2, metavar="SHARE",
                   help=f"in focus = at least this share of a tile's peak sharpness ({SHARE.range}) [0.2]")
    p.add_argument("--probe-frames", type=PROBE, default=25, metavar="N",
                   help=f"frames of the depth-of-focus probe sweep ({PROBE.range}) [25]")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the stills (created; must be empty)")
    p.add_argument("--fuse", metavar="FILE", help="also write the fused all-in-focus image here (PNG)")


def run(args, console) -> int:
    from ..stack import StackParams, capture_bracket

    sp = StackParams(near=args.near, far=args.far, overlap=args.overlap, step=args.step,
                     edge_share=args.edge_share, probe_frames=args.probe_frames)
    out = prepare_out(args.out)
    cfg = _common.load_config(args)
    drive, source = open_configured_drive(cfg, args)
    analyzer = make_af_analyzer(cfg, console)
    told = {}

    def on_state(st):
        if st["phase"] == "capture" and "capture" not in told:
            told["capture"] = True
            console.note(f"{st['total']} frames, step {st['step']:.2f}"
                         + (f" (depth of focus {st['depth_of_focus']:.1f}, overlap {sp.overlap:g})"
                            if st.get("depth_of_focus") else ""))

    try:
        drive.open()
        result = capture_bracket(drive, source, analyzer, sp, out, fuse_to=args.fuse,
                                 progress=lambda it, total, desc: console.progress(it, total=total, desc=desc),
                                 on_state=on_state)
        console.result(result, f"{result['frames']} frames in {out}"
                       + (f", fused into {args.fuse}" if args.fuse else ""))
        return 0
    finally:
        analyzer.close()
        drive.close()
        if source is not None and source is not getattr(drive, "source", None):
            source.close()
