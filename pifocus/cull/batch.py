"""Score many photos, over all cores, with progress.

Each worker process builds its own :class:`~pifocus.focus.FocusAnalyzer` (one LiteRT thread)
and :class:`~pifocus.cull.subject.SubjectFinder` once, then decodes and scores the photos
it is handed; with ``jobs=1`` everything runs in this process.  A photo that cannot be read
comes back as its reason (skipped and counted, never the end of the batch).

* :func:`default_jobs` -- worker processes by default (the cores, at most 8).
* :func:`score_photos` -- paths -> ``(results, thumbnails, unreadable)``.
"""

import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Dict, List, Optional, Tuple

from . import CullParams, CullResult

log = logging.getLogger(__name__)

#: Photos handed to a worker at a time.
CHUNK = 1
#: Most worker processes by default.
MAX_DEFAULT_JOBS = 8

_state = {}


def default_jobs() -> int:
    """Worker processes by default: the usable cores, at most :data:`MAX_DEFAULT_JOBS`."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_JOBS, n))


def _init(analysis, params: CullParams, want_thumbs: bool, max_pixels: int) -> None:
    """Build this process's analyzer and subject finder."""
    from dataclasses import replace
    from ..focus import FocusAnalyzer
    from .subject import SubjectFinder
    _state["analyzer"] = FocusAnalyzer(replace(analysis, num_threads=1))
    _state["finder"] = SubjectFinder(params.subject, face_model=params.face_model)
    _state["params"] = params
    _state["thumbs"] = want_thumbs
    _state["max_pixels"] = max_pixels


def _one(path: str) -> Tuple[str, Optional[CullResult], str, object]:
    """``(path, result or None, reason, annotated thumbnail or None)`` of one photo."""
    from .inputs import decode_photo
    from .scoring import score_luma
    t0 = time.perf_counter()
    dec, reason = decode_photo(path, want_thumb=_state["thumbs"], max_pixels=_state["max_pixels"])
    if dec is None:
        return path, None, reason, None
    timings = {"decode": (time.perf_counter() - t0) * 1e3}
    r = score_luma(dec.luma, path, _state["analyzer"], _state["finder"], _state["params"], timings)
    thumb = None
    if dec.thumb_bgr is not None:
        from .report import annotate
        thumb = annotate(dec.thumb_bgr, r)
    return path, r, "", thumb


def _close() -> None:
    a = _state.pop("analyzer", None)
    if a is not None:
        a.close()


def score_photos(paths: List[str], analysis, params: CullParams, jobs: int = 1,
                 want_thumbs: bool = False, progress: Optional[Callable] = None,
                 max_pixels: Optional[int] = None):
    """Score ``paths``.

    Args:
        paths: photo files.
        analysis: the :class:`~pifocus.focus.AnalysisParams` (the ROI is set per photo).
        params: the tolerances.
        jobs: worker processes (1 = this process).
        want_thumbs: also make annotated thumbnails for the report.
        progress: wraps the iterator of finished photos (e.g. ``console.progress``) as
            ``progress(iterable, total)``.
        max_pixels: photos whose header announces more pixels are skipped (``[source]
            max_pixels``; None = the default 50 MP).

    Returns:
        ``(results, thumbs, unreadable)``: results in the order of ``paths`` (unreadable ones
        left out), ``{path: thumbnail}``, ``[(path, reason)]``.

    Raises:
        ModelError: the focus model cannot be loaded.
    """
    from ..sources.imagehdr import DEFAULT_MAX_PIXELS
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    wrap = progress or (lambda it, total: it)
    out: Dict[str, Tuple] = {}
    if jobs <= 1 or len(paths) <= 1:
        _init(analysis, params, want_thumbs, limit)
        try:
            for path in wrap(paths, len(paths)):
                out[path] = _one(path)
        finally:
            _close()
    else:
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in
                                          multiprocessing.get_all_start_methods() else "spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(paths)), mp_context=ctx, initializer=_init,
                                 initargs=(analysis, params, want_thumbs, limit)) as pool:
            for item in wrap(pool.map(_one, paths, chunksize=CHUNK), len(paths)):
                out[item[0]] = item
    results, thumbs, unreadable = [], {}, []
    for p in paths:
        _path, r, reason, thumb = out[p]
        if r is None:
            log.warning("cull: skipping %s: %s", p, reason)
            unreadable.append((p, reason))
            continue
        results.append(r)
        if thumb is not None:
            thumbs[p] = thumb
    return results, thumbs, unreadable
