"""``pifocus calibrate``: measure backlash and the usable range of a focus drive."""

import dataclasses

import numpy as np

from . import _common
from .autofocus import add_drive_args, make_af_analyzer, open_configured_drive
from ..exc import ConfigError
from ..argtypes import bounded_float, bounded_int

POINTS = bounded_int(3, 1000)
SPAN = bounded_float(1e-6, 1e9)

HELP = "measure a focus drive's backlash (sweep up, then down) and its usable range"
DESCRIPTION = """\
Find the focus peak (model-guided AF), then sweep through it upwards and downwards with the
drive's own backlash compensation off.  Moving up, a drive with play leaves the lens
``backlash/2`` behind the motor; moving down, ``backlash/2`` ahead: the two focus curves
are the same curve shifted by the backlash.  The shift is estimated from the whole curve
(log-score cross-correlation) and from the two fitted peaks.  Also reported: the soft
limits, the span over which the subject shows any detail, the peak and the depth of focus
(where the score is above half the peak), and the [drive] lines to put in the config.

  pifocus calibrate --drive sim --size 640x480 --sim-backlash 30
  pifocus calibrate --drive stepper --source picamera2 --config /etc/pifocus/pifocus.toml --json
"""


def add_arguments(p):
    _common.add_config_arg(p)
    _common.add_source_args(p)
    _common.add_analysis_args(p)
    add_drive_args(p)
    p.add_argument("--points", type=POINTS, default=25, metavar="N",
                   help=f"samples in each direction ({POINTS.range}) [25]")
    p.add_argument("--span", type=SPAN, metavar="UNITS",
                   help=f"({SPAN.range}) half-width of the up/down sweeps around the peak [from the curve width]")


def _fit_peak(curve):
    from ..autofocus import fit_peak

    xs = np.array([c[0] for c in curve], float)
    ys = np.array([c[1] for c in curve], float)
    i = int(np.argmax(ys))
    a, b = max(0, i - 2), min(len(xs), i + 3)
    f = fit_peak(xs[a:b], ys[a:b], "gaussian") if b - a >= 3 else None
    if f is None or not (xs[a] <= f["peak"] <= xs[b - 1]):
        return float(xs[i])
    return float(f["peak"])


def calibrate(drive, analyzer, source, points: int = 25, span=None, afp=None) -> dict:
    """Measure backlash and range; returns the report dict (see the command help)."""
    from ..autofocus import AutofocusParams, _Run, autofocus
    from ..drive import curve_offset

    afp = afp or AutofocusParams()
    lo, hi = drive.limits
    res = max(float(drive.resolution), 1e-9)
    r = autofocus(drive, analyzer, afp, source=source, strategy="model")
    peak0 = r.best_position if r.best_position is not None else drive.position
    sigma = None
    if r.fit and r.fit.get("coarse"):
        sigma = r.fit["coarse"].get("sigma")
    if span is None:
        span = 2.5 * sigma if sigma else (hi - lo) / 6
    span = max(span, 6 * res)
    a, b = max(lo, peak0 - span), min(hi, peak0 + span)
    lead = min(span / 2, (hi - lo) / 10)
    pts = np.linspace(a, b, max(5, int(points)))
    run = _Run(drive, source, analyzer, afp, max_frames=10 * points + 40)
    # Up: start below the sweep so the play is taken up on the up side.
    drive.move_to(max(lo, a - lead), approach=False)
    up = [[s.position, s.score] for s in (run.measure(x, approach=False, reuse=False) for x in pts)]
    drive.move_to(min(hi, b + lead), approach=False)
    down = [[s.position, s.score] for s in (run.measure(x, approach=False, reuse=False) for x in pts[::-1])]
    shift, _rms = curve_offset(up, down, max_shift=span, steps=401)
    p_up, p_down = _fit_peak(up), _fit_peak(down)
    backlash_xcorr = max(0.0, -shift)
    backlash_peaks = max(0.0, p_up - p_down)
    backlash = backlash_xcorr
    # Usable range: where the subject shows detail at all, from a coarse pass over the limits.
    coarse = [s for s in run.samples]
    allv = up + down + [[c[0], c[1]] for c in r.curve]
    best = max(v[1] for v in allv)
    detail = [v[0] for v in allv if v[1] >= 0.1 * best]
    half = [v[0] for v in up if v[1] >= 0.5 * max(u[1] for u in up)]
    dof = (max(half) - min(half)) if len(half) >= 2 else None
    notes = []
    if backlash >= 0.8 * lead:
        notes.append(f"backlash may exceed the lead-in ({lead:g}); re-run with a larger --span")
    if not r.success:
        notes.append(f"autofocus quality gate: {r.reason}")
    del coarse
    out = {
        "drive": drive.name, "units": drive.units,
        "limits": [lo, hi], "native_range": list(drive.native_range),
        "peak": round((p_up + p_down) / 2, 3), "peak_up": round(p_up, 3), "peak_down": round(p_down, 3),
        "backlash": round(backlash, 3), "backlash_xcorr": round(backlash_xcorr, 3),
        "backlash_peaks": round(backlash_peaks, 3),
        "detail_span": [min(detail), max(detail)] if detail else None,
        "depth_of_focus": None if dof is None else round(dof, 3),
        "frames_used": r.frames_used + run.frames, "curve_up": up, "curve_down": down,
        "af_success": r.success, "notes": notes,
        "config": f"[drive]\nbacklash = {round(backlash, 1)}\napproach = \"{drive.params.approach}\"\n"
                  f"min_position = {lo:g}\nmax_position = {hi:g}",
    }
    return out


def run(args, console) -> int:
    if args.points < 5:
        raise ConfigError(f"--points {args.points} must be >= 5")
    if args.backlash:
        console.note("pifocus: note: --backlash is ignored while calibrating (compensation is off)")
    cfg = _common.load_config(args)
    if cfg.drive is not None:
        cfg = cfg.replace(drive=dataclasses.replace(cfg.drive, backlash=0.0))
    args.backlash = None
    drive, source = open_configured_drive(cfg, args)
    analyzer = make_af_analyzer(cfg, console)
    try:
        with drive:
            if source is not drive.source:
                source.open()
            rep = calibrate(drive, analyzer, source, args.points, args.span, cfg.autofocus)
    finally:
        if source is not drive.source:
            source.close()
        analyzer.close()
    text = (f"calibrate {rep['drive']}: backlash {rep['backlash']:g} {rep['units']} "
            f"(curve shift; peaks up/down {rep['peak_up']:g}/{rep['peak_down']:g}), "
            f"peak {rep['peak']:g}, depth of focus {rep['depth_of_focus']}, "
            f"detail over {rep['detail_span']}, limits {rep['limits'][0]:g}..{rep['limits'][1]:g}, "
            f"{rep['frames_used']} frames"
            + "".join(f"\n  note: {n}" for n in rep["notes"])
            + "\nput in the config:\n" + rep["config"])
    console.result(rep, text)
    return 0


