"""``pifocus score``: judge still images or folders of them."""

import errno
import logging
import os
from pathlib import Path

from . import _common
from ..exc import SourceError
from ..focus.blur import CATEGORY_TEXT

log = logging.getLogger(__name__)

HELP = "judge still images or folders: sharpness, in-focus probability, tile grid"
DESCRIPTION = """\
Score still images (or every image in a folder, in natural order) with the same analysis as
the live loop, each image on its own (no hysteresis, no peak hold).  Unreadable files are
skipped with a warning and counted.

  pifocus score shot1.jpg shot2.jpg
  pifocus score shoot/ --json               one object per image: path, sharpness, p_in_focus,
                                            in_focus, tiles {rows, cols, p, textured, lap_var}
  pifocus score shoot/ --heatmap maps/      also write a tile heat map PNG per image
"""


def add_arguments(p):
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    _common.add_config_arg(p)
    _common.add_analysis_args(p)
    p.add_argument("--heatmap", metavar="DIR",
                   help="write a colour tile heat map per image into DIR (NAME_heatmap.png, <= 1280 px wide: "
                        "legend, verdict, blur_px, file name)")


def heatmap(luma, report):
    """A BGR heat map of ``report`` (:func:`pifocus.focus.heatmap.render_heatmap`): tiles
    coloured soft blue to sharp green, unjudged tiles hatched, the ROI outlined, a banner with
    file name, verdict, ``blur_px`` and sharpness, a legend; at most 1280 px wide."""
    from ..focus.heatmap import render_heatmap
    return render_heatmap(luma, report)


def _sources(paths, max_pixels=None):
    """Yield ``(label, source, error)`` for folders and files (``max_pixels``: ``[source]
    max_pixels``): ``source`` None and ``error`` the :class:`SourceError` for a path that
    cannot be scored, so one bad folder does not stop the batch."""
    from ..sources.recorded import RecordedSource

    files = []
    for p in paths:
        if os.path.isdir(p):
            try:
                yield p, RecordedSource(p, max_pixels=max_pixels), None
            except SourceError as e:
                yield p, None, e
        elif not os.path.exists(p):
            yield p, None, SourceError(f"no such file or folder: {p!r}; check the path")
        else:
            files.append(p)
    if files:
        try:
            yield "files", RecordedSource(files, max_pixels=max_pixels), None
        except SourceError as e:
            yield "files", None, e


def run(args, console) -> int:
    import cv2

    cfg = _common.load_config(args)
    analyzer = _common.make_analyzer(cfg)
    if args.heatmap:
        Path(args.heatmap).mkdir(parents=True, exist_ok=True)
    n = skipped = in_focus = 0
    failed = []
    try:
        for label, src, error in _sources(args.paths, cfg.source.max_pixels):
            if error is not None:
                log.warning("score: %s", error)
                failed.append(error)
                continue
            with src:
                for frame in console.progress(src, total=src.length, desc=label, unit="image"):
                    report = analyzer.analyze(frame, track=False, still=True)
                    n += 1
                    in_focus += int(report.in_focus)
                    d = report.to_dict(tiles=True)
                    obj = {"path": frame.path, "sharpness": d["sharpness"], "p_in_focus": d["p_in_focus"],
                           "in_focus": d["in_focus"], "verdict": d["verdict"], "blur_px": d["blur_px"],
                           "blur_px_sensor": d["blur_px_sensor"], "motion_blur": d["motion_blur"],
                           "judgeable": d["judgeable"],
                           "in_focus_fraction": d["in_focus_fraction"], "mode": d["mode"], "tiles": d["tiles"],
                           "exposure": d.get("exposure")}
                    p = "  n/a" if obj["p_in_focus"] is None else f"{obj['p_in_focus']:.2f}"
                    verdict = "IN FOCUS" if report.in_focus else CATEGORY_TEXT.get(report.verdict, report.verdict)
                    console.result(obj, f"{verdict:9s} p={p}  sharpness {report.sharpness:9.1f}  "
                                        f"tiles {int(report.tile_informative.sum())}/{report.tile_informative.size}"
                                        f"  {frame.path}")
                    if args.heatmap:
                        out = Path(args.heatmap) / (Path(frame.path).stem + "_heatmap.png")
                        if not cv2.imwrite(str(out), heatmap(frame.luma, report)):
                            raise OSError(errno.EIO, "cannot write the heat map (disk full? not writable?)",
                                          str(out))
                skipped += src.skipped
    finally:
        analyzer.close()
    console.note(f"{n} image(s) scored, {in_focus} in focus"
                 + (f", {skipped} unreadable file(s) skipped" if skipped else ""))
    if failed:
        raise SourceError(f"{len(failed)} of {len(args.paths)} path(s) could not be scored (the rest were); "
                          f"first: {failed[0]}")
    return 0 if n else 2
