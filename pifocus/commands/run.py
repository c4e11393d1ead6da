"""``pifocus run``: the live loop in the foreground, with the verdict line by line."""

import signal
import threading

from . import _common
from ..argtypes import bounded_int
from ..exc import ConfigError

FRAMES = bounded_int(1, 1_000_000_000)

HELP = "run the live focus loop (LED/meter/buzzer/trigger outputs as configured)"
DESCRIPTION = """\
Stream frames through the full pipeline -- tile Laplacian gate, CNN, verdict -- and drive the
configured outputs.  Each frame prints one line: lens position, sharpness, the peak-hold
meter, tiles judged, and the verdict the in-focus LED shows.  Off a Raspberry Pi the GPIO
outputs run on gpiozero's mock pins (nothing is wired; the line shows what the LED would do).

  pifocus run --source sim --frames 120      demo: a focus pull on the simulated lens
  pifocus run --source picamera2 --roi 0.4,0.4,0.2,0.2
  pifocus run --source shots/ --json          one JSON object per frame
  pifocus run --source sim --drive sim --af-mode continuous --sim-focus 620
                                             follow focus: refocus when the subject's sharpness
                                             drops and stays down (never hunts while in focus)
"""


def add_arguments(p):
    _common.add_config_arg(p)
    _common.add_source_args(p)
    _common.add_analysis_args(p)
    p.add_argument("--frames", type=FRAMES, metavar="N",
                   help=f"stop after N frames ({FRAMES.range}) [run until Ctrl-C / end of recording]")
    p.add_argument("--no-outputs", action="store_true", help="do not touch GPIO outputs")
    p.add_argument("--tiles", action="store_true", help="with --json: include the per-tile grid in every object")
    from .autofocus import add_drive_args
    add_drive_args(p)
    p.add_argument("--af-mode", choices=("single", "continuous"),
                   help="continuous: keep the subject in focus with the focus drive (--drive, or the "
                        "config's [drive]); single: no autofocus in the loop [the config's [autofocus] mode, "
                        "else single]")


def meter_bar(meter: float, width: int = 20) -> str:
    """A text focus meter: ``[#########-----------]``."""
    n = int(round(max(0.0, min(1.0, meter)) * width))
    return "[" + "#" * n + "-" * (width - n) + "]"


def frame_line(frame, report, led_text: str = "") -> str:
    """One human-readable line per frame."""
    pos = "   -" if frame.lens_position is None else f"{frame.lens_position:6.0f}"
    from ..focus.blur import CATEGORY_TEXT
    verdict = "IN FOCUS" if report.in_focus else CATEGORY_TEXT.get(report.verdict, report.verdict)
    if report.blur_px == report.blur_px:  # not NaN: the model estimates blur
        verdict += f" {report.blur_px:4.1f}px"
    n_inf = int(report.tile_informative.sum())
    return (f"frame {frame.index:5d}  pos {pos}  sharp {report.sharpness:9.1f}  "
            f"meter {meter_bar(report.meter)} {report.meter * 100:3.0f}%  "
            f"tiles {n_inf:2d}/{report.tile_informative.size}  {verdict:12s}{led_text}")


def _follow_focus(cfg, args):
    """``(follow, drive, source)``: with ``--af-mode continuous`` (or ``[autofocus] mode``) a
    :class:`~pifocus.service.follow.FollowFocus` on the opened drive and the source its
    frames come from; else ``(None, None, source)``.

    Raises:
        ConfigError: continuous AF without a drive to move (named with the fix).
    """
    af = cfg.autofocus
    mode = args.af_mode or (getattr(af, "mode", "single") if af is not None else "single")
    if mode != "continuous":
        if args.drive:
            raise ConfigError(f"--drive {args.drive} does nothing in run without --af-mode continuous; "
                              "add it, or use `pifocus autofocus --drive` for one run")
        return None, None, _common.make_source(cfg)
    if af is None:
        raise ConfigError("--af-mode continuous: autofocus is not part of this pifocus build")
    if not args.drive and cfg.drive is None:
        raise ConfigError("--af-mode continuous needs a focus drive: give --drive (sim, stepper, uln2003, "
                          "libcamera) or a [drive] table in the config")
    from ..service.follow import FollowFocus
    from .autofocus import open_configured_drive
    drive, source = open_configured_drive(cfg, args)
    return FollowFocus(af, enabled=True), drive, source


def run(args, console) -> int:
    from ..pipeline import Pipeline

    cfg = _common.load_config(args)
    follow, drive, source = _follow_focus(cfg, args)
    analyzer = _common.make_analyzer(cfg)
    outputs = None
    try:
        outputs = _common.make_outputs(cfg, enabled=not args.no_outputs)
    except Exception:
        analyzer.close()
        raise
    pipeline = Pipeline(source, analyzer, outputs)

    if outputs is not None:
        for line in outputs.describe():
            console.line(f"output: {line}")
    console.line(f"source: {source.name}   analysis: {analyzer.mode}"
                 + ("" if analyzer.classifier is None else f" ({analyzer.classifier.info.name} "
                                                           f"v{analyzer.classifier.info.version}, "
                                                           f"{analyzer.classifier.tile_px}px tiles)"))

    stats = {"frames": 0, "in_focus_frames": 0, "best_sharpness": 0.0, "best_position": None}

    def on_frame(frame, report):
        if follow is not None:
            ev = follow.on_frame(frame, report, drive, analyzer, source)
            if ev in ("focus", "search", "manual_turn"):
                console.note(f"continuous AF: {ev} -> position {drive.position:g}")
        stats["frames"] += 1
        stats["in_focus_frames"] += int(report.in_focus)
        if report.sharpness > stats["best_sharpness"]:
            stats["best_sharpness"], stats["best_position"] = report.sharpness, frame.lens_position
        if console.json_mode:
            console.result(report.to_dict(tiles=args.tiles))
        else:
            led = ""
            if outputs is not None:
                led = "  LED " + ("on" if report.in_focus else "off")
            console.result({}, frame_line(frame, report, led))

    pipeline.add_listener(on_frame)

    # SIGTERM (systemctl stop, kill) ends the loop cleanly: LED off, files closed.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: pipeline.stop())
    try:
        pipeline.run(max_frames=args.frames)
    except KeyboardInterrupt:
        pipeline.stop()
    finally:
        pipeline.close()
        if drive is not None:
            drive.close()

    summary = {"summary": True, "frames": stats["frames"], "in_focus_frames": stats["in_focus_frames"],
               "fps": round(pipeline.fps, 2), "skipped": source.skipped,
               "best_sharpness": round(stats["best_sharpness"], 2), "best_position": stats["best_position"],
               "mode": analyzer.mode}
    if follow is not None:
        summary["af_searches"] = follow.searches
    if console.json_mode:
        console.result(summary)
    else:
        console.line(f"{stats['frames']} frames, {stats['in_focus_frames']} in focus, "
                     f"{pipeline.fps:.1f} fps; sharpest at position {stats['best_position']}"
                     + (f"; {source.skipped} unreadable file(s) skipped" if source.skipped else ""))
    return 0
