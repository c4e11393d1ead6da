"""``pifocus cull``: sort a card of photos by subject focus, motion blur, noise and exposure."""

import logging
import os
from collections import Counter

from . import _common
from ..argtypes import bounded_float, bounded_int
from ..exc import ConfigError, SourceError

log = logging.getLogger(__name__)

TOL = bounded_float(0.0, 1.0)
COC = bounded_float(0.25, 20.0)
GAP = bounded_float(0.0, 3600.0)
JOBS = bounded_int(1, 64)

HELP = "cull a card of photos: keep / maybe / reject by subject focus, motion, noise, exposure; XMP ratings"
DESCRIPTION = """\
Judge every photo (JPEG, PNG; DNG and other camera raws with the raw extra, rawpy) on its
subject: the largest face (its eyes when found), else the most detailed region, else the
centre.  On the subject: the defocus blur radius in pixels and motion blur (the model's blur
heads, or the model-free re-blur estimate), the CNN's in-focus probability, noise sigma/SNR
and exposure (EV offset from mid-grey, clipping).  Each photo gets a verdict keep / maybe /
reject with the reason; photos taken within --burst-gap-s of each other form a burst, judged
on one shared subject region (the region of the burst's most trusted detection -- eyes, a
face, else the most detailed region -- at the same relative place in every photo), and the
sharpest on it is marked best (rating 5 when kept).

Writes an XMP sidecar per photo (xmp:Rating 1-5, xmp:Label Select/Reject,
darktable:colorlabels green/yellow/red; --reject-rating -1 marks rejects as rejected in darktable
and Lightroom), next to the photo or in --out, merged into an
existing sidecar without losing its other fields; photos are never written to.  With --out
(or --report) an offline HTML contact sheet with thumbnails, subject box, heat map and
reason.  Unreadable files are skipped, counted and named in the summary.

Tolerances run from 0 (lenient) to 1 (strict):
  --focus     kept while the subject blur radius <= coc_px x (2 - focus) px
  --noise     kept while noise sigma <= 12 - 8 x noise DN
  --exposure  kept while |EV offset| <= 1.5 - 0.75 x exposure and clipping <= 10 - 7 x exposure %
A measure past its keep limit makes the photo "maybe", past twice that "reject".

  pifocus cull DCIM/                      sidecars next to the photos, one line per photo
  pifocus cull DCIM/ --out cull/          sidecars and cull/cull.html in cull/
  pifocus cull shoot/*.jpg --json         one JSON object per photo, then {"summary": ...}
  pifocus cull DCIM/ --focus 0.8 --coc-px 1 --no-sidecars --report sheet.html
"""


def add_arguments(p):
    p.add_argument("paths", nargs="+", metavar="PATH", help="photo files or folders (walked recursively)")
    p.add_argument("--out", metavar="DIR", help="write sidecars (in the photos' folder layout) and the report "
                                               "(cull.html) into DIR [default: sidecars next to the photos, "
                                               "no report]")
    p.add_argument("--report", metavar="FILE.html", help="write the HTML contact sheet here "
                                                         "[default: DIR/cull.html with --out]")
    p.add_argument("--no-sidecars", action="store_true", help="do not write XMP sidecars")
    p.add_argument("--reject-rating", choices=("1", "-1"), default="1",
                   help="xmp:Rating of a reject: 1 (one star) or -1, which darktable and Lightroom "
                        "show as rejected [1]")
    p.add_argument("--sidecar-style", choices=("darktable", "adobe"), default="darktable",
                   help="sidecar name: photo.jpg.xmp (darktable, digiKam) or photo.xmp (Adobe) [darktable]")
    p.add_argument("--focus", type=TOL, default=0.5, metavar="T", help=f"focus tolerance ({TOL.range}) [0.5]")
    p.add_argument("--noise", type=TOL, default=0.5, metavar="T", help=f"noise tolerance ({TOL.range}) [0.5]")
    p.add_argument("--exposure", type=TOL, default=0.5, metavar="T",
                   help=f"exposure tolerance ({TOL.range}) [0.5]")
    p.add_argument("--coc-px", type=COC, default=1.5, metavar="PX",
                   help=f"circle of confusion: critically sharp blur radius, px of the photo ({COC.range}) [1.5]")
    p.add_argument("--burst-gap-s", type=GAP, default=2.0, metavar="S",
                   help=f"photos at most S seconds apart form a burst ({GAP.range}; 0 = none) [2]")
    p.add_argument("--subject", choices=("auto", "face", "detail", "centre"), default="auto",
                   help="where the subject is: auto = face, else most detailed region, else centre [auto]")
    p.add_argument("--face-model", metavar="FILE.onnx",
                   help="YuNet face detector model for OpenCV's FaceDetectorYN (not shipped with OpenCV) "
                        "[default: the Haar cascade, where this OpenCV has one]")
    p.add_argument("--jobs", type=JOBS, metavar="N", help=f"worker processes ({JOBS.range}) [the cores, at most 8]")
    _common.add_config_arg(p)
    p.add_argument("--no-cnn", action="store_true", help="Laplacian-only analyzer (no CNN)")
    p.add_argument("--model", metavar="FILE.tflite", help="focus model [default: the shipped int8 model]")


def _line(d) -> str:
    blur = "  n/a" if d["blur_px"] is None else f"{d['blur_px']:5.1f}"
    best = " *best*" if d["best"] else ""
    return f"{d['verdict']:6s} {'*' * max(0, d['rating']):5s} blur {blur} px  {d['path']}{best}  -- {d['reason']}"


def run(args, console) -> int:
    from ..cull import CullParams
    from ..cull.batch import default_jobs, score_photos
    from ..cull.bursts import mark_bursts
    from ..cull.inputs import list_photos

    try:
        params = CullParams(focus=args.focus, noise=args.noise, exposure=args.exposure, coc_px=args.coc_px,
                            burst_gap_s=args.burst_gap_s, subject=args.subject, face_model=args.face_model)
        if args.face_model:
            from ..cull.subject import SubjectFinder
            SubjectFinder(params.subject, face_model=args.face_model)  # a bad model fails here, once
    except ConfigError as e:
        raise ConfigError(f"command line: {e}") from e
    cfg = _common.load_config(args)
    photos, missing = list_photos(args.paths)
    for p, why in missing:
        log.warning("cull: %s: %s", p, why)
    if not photos:
        raise SourceError(f"cull: no photos found in {', '.join(args.paths)}; accepted: JPEG, PNG, TIFF, "
                          "WebP, and DNG/raw with rawpy")
    report = args.report or (os.path.join(args.out, "cull.html") if args.out else None)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    jobs = args.jobs or default_jobs()
    results, thumbs, unreadable = score_photos(
        photos, cfg.analysis, params, jobs=jobs, want_thumbs=report is not None,
        progress=lambda it, total: console.progress(it, total=total, desc="cull", unit="photo"),
        max_pixels=cfg.source.max_pixels)
    bursts = mark_bursts(results, params.burst_gap_s)
    if args.reject_rating == "-1":
        for r in results:
            if r.verdict == "reject":
                r.rating = -1
    sidecar_errors = []
    if not args.no_sidecars:
        from ..cull.xmp import SidecarError, write_sidecar
        base = os.path.commonpath([os.path.dirname(os.path.abspath(r.path)) for r in results]) if results else ""
        for r in results:
            out_dir = None
            if args.out:  # mirror the folders below the common one, so equal names cannot collide
                out_dir = os.path.join(args.out, os.path.relpath(os.path.dirname(os.path.abspath(r.path)), base))
                os.makedirs(out_dir, exist_ok=True)
            try:
                write_sidecar(r.path, r.verdict, r.rating, out_dir=out_dir, style=args.sidecar_style)
            except SidecarError as e:
                log.warning("cull: %s", e)
                sidecar_errors.append(r.path)
    for r in results:
        d = r.to_dict()
        console.result(d, _line(d))
    counts = Counter(r.verdict for r in results)
    summary = {"photos": len(results), "keep": counts["keep"], "maybe": counts["maybe"],
               "reject": counts["reject"], "bursts": bursts, "unreadable": len(unreadable) + len(missing),
               "unreadable_files": [p for p, _ in unreadable + missing], "jobs": jobs,
               "sidecars_refused": sidecar_errors}
    if report:
        from ..cull.report import write_report
        write_report(report, results, thumbs, summary)
        summary["report"] = report
    if console.json_mode:
        console.result({"summary": summary})
    text = (f"{len(results)} photo(s): {counts['keep']} keep, {counts['maybe']} maybe, {counts['reject']} reject; "
            f"{bursts} burst(s)")
    if summary["unreadable"]:
        text += f"; {summary['unreadable']} unreadable, skipped: " + ", ".join(summary["unreadable_files"])
    if report:
        text += f"; report {report}"
    console.note(text)
    return 0 if results else 2
