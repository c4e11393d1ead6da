"""``pifocus autofocus``: one AF run on a focus drive (and the drive helpers of calibrate/record)."""

import dataclasses
import logging
import math

from . import _common
from ..exc import ConfigError, ModelError, PiFocusError
from ..argtypes import POSITION, bounded_float, bounded_int
from ..validate import MATPLOTLIB_FIX, require_matplotlib

BACKLASH = bounded_float(0.0, 1e6)
FRAMES = bounded_int(1, 1_000_000)

log = logging.getLogger(__name__)

HELP = "focus the lens: one autofocus run on a drive (sim, replay:DIR, stepper, uln2003, libcamera)"
DESCRIPTION = """\
Run one autofocus pass and print the final position, frames used, moves, time, the sampled
focus curve and whether the quality gate passed (with the reason when it did not).  The
drive is left at the chosen position -- or, when the gate fails, at the best position seen.

Strategies: dfd (default; depth from defocus to jump, then a short local fit: ~6-8
frames), model (model-guided, ~10 frames), sweep (coarse-to-fine contrast sweep, the
baseline, ~25 frames), blur (depth from defocus with the model's blur head), continuous
(watch the ROI for --frames frames and search locally only when sharpness drops and stays
down).  The result carries a confidence (0-1) and the depth of focus the curve shows.

  pifocus autofocus --drive sim --size 640x480 --plot af.png
  pifocus autofocus --drive sim --strategy sweep --start 100 --json
  pifocus autofocus --drive replay:sweeps/lens1 --roi 0.35,0.35,0.3,0.3
  pifocus autofocus --drive stepper --source picamera2 --config /etc/pifocus/pifocus.toml
  pifocus autofocus --drive libcamera --source picamera2

Drive strings: sim (the simulated lens of --source sim), replay:DIR (a recorded sweep),
stepper, uln2003 (GPIO pins from [drive] in the config), libcamera (Camera Module 3).
Without a CNN model the analysis runs Laplacian-only; the AF does not need the CNN.
Exit status: 0 in focus; 3 when the quality gate failed (result still printed, the reason
also as one `pifocus: error:` line on stderr); 2 for bad input.
"""


def add_drive_args(p, default_drive=None) -> None:
    """``--drive`` and the drive flags shared by autofocus, calibrate and record."""
    p.add_argument("--drive", metavar="DRIVE", default=default_drive,
                   help="sim, replay:DIR, stepper, uln2003 or libcamera [default: the config's [drive] name, else sim]")
    p.add_argument("--backlash", type=BACKLASH, metavar="UNITS",
                   help=f"backlash of the focus train to compensate ({BACKLASH.range}; from `pifocus calibrate`)")
    p.add_argument("--approach", choices=("up", "down"), help="side of the final approach [up]")
    p.add_argument("--limits", metavar="LO:HI", help="soft limits in drive units, e.g. 50:1900")
    p.add_argument("--state-file", metavar="FILE", help="where the drive keeps its position ('none': nowhere)")
    p.add_argument("--assume-position", type=POSITION, metavar="POS",
                   help=f"({POSITION.range}) where the lens is now, drive units: used when nothing is saved and over a "
                        "saved position that is uncertain (an interrupted move), unless the drive homes on open; "
                        "without it a stepper/uln2003 whose position is unknown or uncertain refuses to move "
                        "(see `pifocus position`)")
    p.add_argument("--sim-focus", type=POSITION, metavar="POS",
                   help=f"({POSITION.range}) sim drive: lens position at which the simulated scene is sharp")
    p.add_argument("--sim-backlash", type=BACKLASH, metavar="STEPS",
                   help=f"({BACKLASH.range}) sim drive: mechanical backlash of the simulated ring (for calibrate demos)")


def parse_limits(text: str):
    """``LO:HI`` -> (lo, hi)."""
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise ConfigError(f"--limits {text!r}: give LO:HI in drive units, e.g. 50:1900") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and abs(lo) <= 1e9 and abs(hi) <= 1e9):
        raise ConfigError(f"--limits {text!r}: LO and HI must be finite numbers within -1e9..1e9, "
                          "e.g. 50:1900")
    if lo >= hi:
        raise ConfigError(f"--limits {text!r}: LO must be below HI (they become drive.min_position and "
                          "drive.max_position), e.g. 50:1900")
    return lo, hi


def drive_params(cfg, args):
    """The [drive] params with the command-line flags applied."""
    from ..drive import DriveParams

    dp = cfg.drive if cfg.drive is not None else DriveParams()
    ch = {}
    if getattr(args, "drive", None):
        ch["name"] = args.drive
    if getattr(args, "backlash", None) is not None:
        ch["backlash"] = args.backlash
    if getattr(args, "approach", None):
        ch["approach"] = args.approach
    if getattr(args, "limits", None):
        ch["min_position"], ch["max_position"] = parse_limits(args.limits)
    if getattr(args, "state_file", None):
        ch["state_file"] = args.state_file
    if getattr(args, "assume_position", None) is not None:
        ch["assume_position"] = args.assume_position
    try:
        dp = dataclasses.replace(dp, **ch) if ch else dp
    except ConfigError as e:
        raise ConfigError(f"command line: {e}") from e
    from ..config import check_pin_conflicts
    check_pin_conflicts(cfg.outputs, dp)  # e.g. --drive stepper with the LED on its STEP pin
    return dp


def open_configured_drive(cfg, args):
    """Make the drive and, when it needs one, its camera source.  Returns ``(drive, source)``
    where ``source`` is what frames are read from (may be the drive's own)."""
    from ..drive import open_drive

    dp = drive_params(cfg, args)
    kind = dp.name.partition(":")[0].lower()
    if kind == "sim":
        name = cfg.source.name
        if not name.lower().startswith("sim"):
            raise ConfigError(f"drive 'sim' turns the simulated lens; the source is {name!r}: use --source sim "
                              "(or a real drive: stepper, uln2003, libcamera)")
        from ..sources import open_source
        opts = dict(cfg.source.options)
        if getattr(args, "sim_focus", None) is not None:
            opts["focus_position"] = args.sim_focus
        src = open_source(name, max_pixels=cfg.source.max_pixels, **opts)
        extra = {}
        if getattr(args, "sim_backlash", None) is not None:
            extra["backlash_steps"] = args.sim_backlash
        drive = open_drive(dp.name, source=src, params=dp, **extra)
        drive.told_position = getattr(args, "assume_position", None)  # a step counter like the stepper
        return drive, drive.source
    if kind == "replay":
        drive = open_drive(dp.name, params=dp)
        return drive, drive.source
    if kind == "libcamera":
        src = _common.make_source(cfg)
        if type(src).__name__ != "Picamera2Source":
            raise ConfigError(f"drive 'libcamera' moves the lens of the camera: use --source picamera2 "
                              f"(the source is {cfg.source.name!r})")
        drive = open_drive(dp.name, source=src, params=dp)
        return drive, src
    drive = open_drive(dp.name, params=dp)  # stepper, uln2003 (or a ConfigError naming the string)
    drive.told_position = getattr(args, "assume_position", None)  # applied on open (see FocusDrive)
    src = _common.make_source(cfg)
    if cfg.source.name.lower().startswith("sim"):
        log.warning("drive %s with the sim source: the lens in the frames does not move; use --source picamera2",
                    dp.name)
    return drive, src


def make_af_analyzer(cfg, console):
    """The analyzer; falls back to Laplacian-only when the CNN model cannot be loaded."""
    from ..focus import FocusAnalyzer

    try:
        return _common.make_analyzer(cfg)
    except ModelError as e:
        console.note(f"pifocus: note: CNN model unavailable ({e}); autofocus runs Laplacian-only")
        return FocusAnalyzer(dataclasses.replace(cfg.analysis, use_cnn=False))


def add_arguments(p):
    _common.add_config_arg(p)
    _common.add_source_args(p)
    _common.add_analysis_args(p)
    add_drive_args(p)
    from ..autofocus import STRATEGIES
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="AF strategy: dfd (depth from defocus + short fit), model (contrast, shape of "
                        "the curve), sweep (coarse-to-fine), blur (depth from defocus with the "
                        "model's blur estimate), continuous [default: the config's, else dfd]")
    p.add_argument("--start", type=POSITION, metavar="POS",
                   help=f"move here first ({POSITION.range}) [stay where the lens is]")
    p.add_argument("--frames", type=FRAMES, default=300, metavar="N",
                   help=f"continuous strategy: frames to watch ({FRAMES.range}) [300]")
    p.add_argument("--plot", metavar="FILE.png", help="draw the focus curve, the fit and the chosen position")


def plot_result(result, path: str, title: str = "") -> None:
    """Draw samples (numbered in order), the fit and the final position into a PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ConfigError(f"--plot needs matplotlib ({e}); {MATPLOTLIB_FIX}") from e
    import numpy as np
    from ..autofocus import fit_eval

    xs = np.array([c[0] for c in result.curve], float)
    ys = np.array([max(c[1], 1e-3) for c in result.curve], float)
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=100)
    order = np.arange(1, len(xs) + 1)
    sc = ax.scatter(xs, ys, c=order, cmap="viridis", s=36, zorder=3, label="samples (colour = order)")
    for i, (x, y) in enumerate(zip(xs, ys)):
        ax.annotate(str(i + 1), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    fit = result.fit
    if fit and fit.get("coef") is not None and fit.get("x_scale"):
        xf = np.asarray(fit.get("x") or [])
        if xf.size:
            span = max(xf.max() - xf.min(), 1e-6)
            grid = np.linspace(xf.min() - 0.5 * span, xf.max() + 0.5 * span, 200)
            ax.plot(grid, fit_eval(fit, grid), "-", color="tab:orange", lw=1.5,
                    label=f"{fit['model']} fit (R² {fit.get('r2', float('nan')):.2f})")
    ax.axvline(result.final_position, color="tab:red" if not result.success else "tab:green", lw=1.5,
               ls="--", label=f"final {result.final_position:g}")
    if result.best_position is not None:
        ax.plot([result.best_position], [max(result.best_score or 1e-3, 1e-3)], marker="*", ms=14,
                color="gold", mec="k", zorder=4, label="best sample")
    ax.set_yscale("log")
    ax.set_xlabel("lens position")
    ax.set_ylabel("focus score (log)")
    status = "ok" if result.success else f"FAILED: {result.reason}"
    ax.set_title((title + "\n" if title else "") +
                 f"{result.strategy}: {result.frames_used} frames, {result.moves} moves, {status}"[:110],
                 fontsize=9)
    fig.colorbar(sc, ax=ax, pad=0.01).set_label("sample #", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(args, console) -> int:
    from ..autofocus import AutofocusParams, ContinuousAF, autofocus

    if args.plot:
        require_matplotlib("--plot")  # before the lens moves, not after the run
    cfg = _common.load_config(args)
    afp = cfg.autofocus if cfg.autofocus is not None else AutofocusParams()
    ch = {}
    if args.strategy:
        ch["strategy"] = args.strategy
    if args.start is not None:
        ch["start"] = args.start
    if ch:
        afp = dataclasses.replace(afp, **ch)
    drive, source = open_configured_drive(cfg, args)
    analyzer = make_af_analyzer(cfg, console)
    try:
        with drive:
            if source is not drive.source:
                source.open()
            if afp.strategy == "continuous":
                if args.frames < 1:
                    raise ConfigError(f"--frames {args.frames} must be >= 1")
                caf = ContinuousAF(drive, analyzer, afp, source=source)
                if afp.start is not None:
                    drive.move_to(afp.start)
                events = {}
                while caf.frames < args.frames:
                    ev = caf.step()
                    events[ev] = events.get(ev, 0) + 1
                last = caf.results[-1] if caf.results else None
                out = {"final_position": drive.position, "frames_used": caf.frames,
                       "moves": drive.moves, "success": True if last is None else last.success,
                       "reason": "ok" if last is None else last.reason, "searches": caf.searches,
                       "events": events, "curve": [] if last is None else last.to_dict()["curve"],
                       "time_s": None}
                console.result(out, f"continuous AF: {caf.frames} frames, {caf.searches} search(es), "
                                    f"lens at {drive.position:g}; events {events}")
                return 0
            result = autofocus(drive, analyzer, afp, source=source)
    finally:
        if source is not drive.source:
            source.close()
        analyzer.close()
    d = result.to_dict()
    d["drive"] = drive.name
    d["units"] = drive.units
    text = (f"autofocus {'OK' if result.success else 'FAILED'}: lens at {result.final_position:g} {drive.units} "
            f"({result.frames_used} frames, {result.moves} moves, {result.time_s:.2f} s, "
            f"confidence {result.confidence:.2f})"
            + ("" if result.success else f"\n  reason: {result.reason}")
            + (f"\n  note: {result.reason[4:]}" if result.success and result.reason.startswith("ok: ") else "")
            + (f"\n  plot: {args.plot}" if args.plot else ""))
    console.result(d, text)  # first: a failing plot must not lose the result
    if args.plot:
        try:
            plot_result(result, args.plot, title=f"pifocus autofocus --drive {drive.name}")
        except PiFocusError:
            raise
        except (OSError, ValueError, RuntimeError) as e:
            raise ConfigError(f"--plot {args.plot!r}: the curve could not be written ({e}); the result "
                              "above is valid; give a writable .png path") from e
    if not result.success:
        # The run itself worked (the result is printed); the focus is not trustworthy.
        console.note(f"pifocus: error: autofocus failed the quality gate: {result.reason}")
        return 3
    return 0


__all__ = ["add_drive_args", "open_configured_drive", "make_af_analyzer", "plot_result", "drive_params"]
