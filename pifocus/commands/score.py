"""``pifocus score``: judge still images or folders of them."""

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
  pifocus score shoot/ --heatmap maps/      also write a colour tile heat map JPEG per image
                                            (maps/NAME_heatmap.jpg, long side <= 1600 px)
  pifocus score shot.jpg --heatmap map.png  one image: its heat map as that file (.png: PNG,
                                            .jpg/.jpeg: JPEG)
"""


def add_arguments(p):
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    _common.add_config_arg(p)
    _common.add_analysis_args(p)
    p.add_argument("--heatmap", metavar="DIR_OR_FILE",
                   help="write a colour tile heat map (legend, verdict, blur_px, file name; long side <= 1600 px) "
                        "per image into the folder DIR as NAME_heatmap.jpg, or for a single image into FILE "
                        "(.jpg/.jpeg: JPEG, .png: PNG)")


def heatmap_path(target: str, image_path: str, first: bool) -> Path:
    """Where ``--heatmap TARGET`` puts the heat map of ``image_path``: TARGET itself when it
    names a .jpg/.jpeg/.png file (only for the first image scored), else
    ``TARGET/NAME_heatmap.jpg``.

    Raises:
        ConfigError: a file TARGET and more than one image.
    """
    from ..exc import ConfigError
    from ..focus.heatmap import HEATMAP_FORMATS
    if Path(target).suffix.lower() in HEATMAP_FORMATS:
        if not first:
            raise ConfigError(f"--heatmap {target}: a file name takes one image's heat map, and more than one "
                              "image is being scored; give a folder (--heatmap maps/)")
        return Path(target)
    return Path(target) / (Path(image_path).stem + "_heatmap.jpg")


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


def _write_heatmap(out: Path, luma, report) -> None:
    """The heat map of one image into ``out`` (format from its ending), atomically.

    Raises:
        StorageError: it cannot be written (disk full named).
        OSError: (EIO) OpenCV could not encode it (the file named).
    """
    import errno

    from .. import storage
    from ..focus.heatmap import encode_heatmap
    try:
        data = encode_heatmap(heatmap(luma, report), str(out))
    except ValueError as e:
        raise OSError(errno.EIO, f"cannot write the heat map: {e}", str(out)) from e
    storage.atomic_write(out, data, what="heat map: ")


def run(args, console) -> int:
    cfg = _common.load_config(args)
    analyzer = _common.make_analyzer(cfg)
    if args.heatmap:
        from ..focus.heatmap import HEATMAP_FORMATS
        folder = Path(args.heatmap)
        (folder.parent if folder.suffix.lower() in HEATMAP_FORMATS else folder).mkdir(parents=True, exist_ok=True)
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
                        _write_heatmap(heatmap_path(args.heatmap, frame.path, n == 1), frame.luma, report)
                skipped += src.skipped
    finally:
        analyzer.close()
    console.note(f"{n} image(s) scored, {in_focus} in focus"
                 + (f", {skipped} unreadable file(s) skipped" if skipped else ""))
    if failed:
        raise SourceError(f"{len(failed)} of {len(args.paths)} path(s) could not be scored (the rest were); "
                          f"first: {failed[0]}")
    return 0 if n else 2
