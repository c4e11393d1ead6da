"""Score many photos, over all cores, with progress.

Each worker process builds its own :class:`~pifocus.focus.FocusAnalyzer` (one LiteRT thread)
and :class:`~pifocus.cull.subject.SubjectFinder` once, in the pool's initializer, then
decodes and scores the photos it is handed; with ``jobs=1`` everything runs in this process.
A photo that cannot be read comes back as its reason (skipped and counted, never the end of
the batch).

Two passes: every photo on its own subject, then the photos of each burst whose region
differs from the burst's shared region (:func:`pifocus.cull.bursts.shared_regions`) again on
that region, by the same workers (no second model load).

Workers log through a queue to this process's handlers; the same message from several
workers (the model's "no blur heads" note, which every worker's load would repeat) is
logged once per run.

* :func:`default_jobs` -- worker processes by default (the cores, at most 8).
* :func:`score_photos` -- paths -> ``(results, thumbnails, unreadable)``.
"""

import logging
import logging.handlers
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


def _init(analysis, params: CullParams, want_thumbs: bool, max_pixels: int, log_queue=None,
          log_level: int = logging.WARNING, single_thread: bool = False) -> None:
    """Build this process's analyzer and subject finder (once per worker).

    ``log_queue``: a worker's records go to the parent through it; ``single_thread``: one
    OpenCV thread per worker (the workers already fill the cores)."""
    from dataclasses import replace
    if log_queue is not None:
        root = logging.getLogger()
        root.handlers[:] = [logging.handlers.QueueHandler(log_queue)]
        root.setLevel(log_level)
    if single_thread:
        import cv2
        cv2.setNumThreads(1)
    from ..focus import FocusAnalyzer
    from .subject import SubjectFinder
    from .scoring import cull_analysis
    _state["analyzer"] = FocusAnalyzer(replace(cull_analysis(analysis), num_threads=1))
    _state["finder"] = SubjectFinder(params.subject, face_model=params.face_model)
    _state["params"] = params
    _state["thumbs"] = want_thumbs
    _state["max_pixels"] = max_pixels
    _state["loads"] = _state.get("loads", 0) + 1


def _init_worker(*args) -> None:
    """:func:`_init` in a worker: a :class:`~pifocus.exc.PiFocusError` (a model that cannot be
    loaded) is kept and raised by the worker's first photo, so this process gets the one clear
    error instead of a broken pool and a traceback per worker."""
    from ..exc import PiFocusError
    try:
        _init(*args)
    except PiFocusError as e:
        _state["init_error"] = e


def _one(job) -> Tuple[str, Optional[CullResult], str, object, Tuple[int, int]]:
    """``(path, result or None, reason, annotated thumbnail or None, (pid, model loads))`` of
    one photo; ``job`` is a path, or ``(path, Subject)`` to judge that region."""
    from .inputs import decode_photo
    from .scoring import score_luma
    if "init_error" in _state:
        raise _state["init_error"]
    path, subject = (job, None) if isinstance(job, str) else job
    me = (os.getpid(), _state.get("loads", 0))
    t0, c0 = time.perf_counter(), time.process_time()
    dec, reason = decode_photo(path, want_thumb=_state["thumbs"], max_pixels=_state["max_pixels"])
    if dec is None:
        return path, None, reason, None, me
    timings = {"decode": (time.perf_counter() - t0) * 1e3}
    r = score_luma(dec.luma, path, _state["analyzer"], _state["finder"], _state["params"], timings,
                   subject=subject)
    thumb = None
    if dec.thumb_bgr is not None:
        from .report import annotate
        thumb = annotate(dec.thumb_bgr, r)
    r.timings_ms["cpu"] = (time.process_time() - c0) * 1e3
    return path, r, "", thumb, me


def _close() -> None:
    a = _state.pop("analyzer", None)
    if a is not None:
        a.close()
    _state.pop("loads", None)


class _OnceListener(logging.handlers.QueueListener):
    """Hands the workers' records to this process's handlers; a message already handled
    (same logger, level and text) is dropped, so N workers' identical notes read once."""

    def __init__(self, queue, handlers):
        super().__init__(queue, *handlers, respect_handler_level=True)
        self._seen = set()

    def handle(self, record):
        key = (record.name, record.levelno, record.getMessage())
        if key in self._seen:
            return
        self._seen.add(key)
        super().handle(record)


def _second_pass(firsts: Dict[str, Tuple], gap_s: float) -> List[Tuple[str, object]]:
    """The ``(path, shared Subject)`` jobs of burst photos to judge again on their burst's region."""
    from .bursts import shared_regions
    done = [item[1] for item in firsts.values() if item[1] is not None]
    return [(r.path, s) for r, s in zip(done, shared_regions(done, gap_s)) if s is not None]


def score_photos(paths: List[str], analysis, params: CullParams, jobs: int = 1,
                 want_thumbs: bool = False, progress: Optional[Callable] = None,
                 max_pixels: Optional[int] = None, stats: Optional[dict] = None):
    """Score ``paths``; the photos of a burst on one shared subject region.

    Args:
        paths: photo files.
        analysis: the :class:`~pifocus.focus.AnalysisParams` (the ROI is set per photo).
        params: the tolerances (``burst_gap_s`` groups the bursts; 0 = no bursts).
        jobs: worker processes (1 = this process).
        want_thumbs: also make annotated thumbnails for the report.
        progress: wraps the iterator of finished photos (e.g. ``console.progress``) as
            ``progress(iterable, total)``; called once per pass.
        max_pixels: photos whose header announces more pixels are skipped (``[source]
            max_pixels``; None = the default 50 MP).
        stats: filled (when given) with ``processes`` (that scored photos), ``model_loads``
            (analyzers built: one per process), ``rescored`` (burst photos judged again on
            the shared region), ``wall_s`` and ``cpu_s`` (CPU time of decoding and scoring, both
            passes, summed over the photos; without process start-up and model loading).

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
    t_start = time.perf_counter()
    again: List[Tuple[str, object]] = []
    cpu_ms = [0.0]

    def take(item):
        out[item[0]] = item
        if item[1] is not None:
            cpu_ms[0] += item[1].timings_ms.get("cpu", 0.0)

    if jobs <= 1 or len(paths) <= 1:
        _init(analysis, params, want_thumbs, limit)
        try:
            for path in wrap(paths, len(paths)):
                take(_one(path))
            again = _second_pass(out, params.burst_gap_s)
            for job in (wrap(again, len(again)) if again else ()):
                take(_one(job))
        finally:
            _close()
    else:
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in
                                          multiprocessing.get_all_start_methods() else "spawn")
        queue = ctx.Queue()
        root = logging.getLogger()
        listener = _OnceListener(queue, root.handlers or [logging.lastResort])
        listener.start()
        try:
            with ProcessPoolExecutor(max_workers=min(jobs, len(paths)), mp_context=ctx, initializer=_init_worker,
                                     initargs=(analysis, params, want_thumbs, limit, queue,
                                               root.getEffectiveLevel(), True)) as pool:
                for item in wrap(pool.map(_one, paths, chunksize=CHUNK), len(paths)):
                    take(item)
                again = _second_pass(out, params.burst_gap_s)
                if again:
                    for item in wrap(pool.map(_one, again, chunksize=CHUNK), len(again)):
                        take(item)
        finally:
            listener.stop()
    results, thumbs, unreadable = [], {}, []
    for p in paths:
        _path, r, reason, thumb, _me = out[p]
        if r is None:
            log.warning("cull: skipping %s: %s", p, reason)
            unreadable.append((p, reason))
            continue
        results.append(r)
        if thumb is not None:
            thumbs[p] = thumb
    if stats is not None:
        loads = {}
        for item in out.values():
            pid, n = item[4]
            loads[pid] = max(loads.get(pid, 0), n)
        stats.update(processes=len(loads), model_loads=sum(loads.values()), rescored=len(again),
                     wall_s=time.perf_counter() - t_start,
                     cpu_s=cpu_ms[0] / 1e3)
    return results, thumbs, unreadable
