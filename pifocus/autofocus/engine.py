"""The autofocus run: :func:`autofocus` sets a run up, lets the chosen strategy search,
applies the quality gate, makes the final approach and verifies it.

The strategy is looked up by name in :data:`~pifocus.autofocus.base.REGISTRY`; this module
imports no strategy, so the strategies (continuous AF) can call :func:`autofocus`.
"""

import logging
import math
import time
from typing import Optional, Tuple

from ..exc import AutofocusError, ConfigError
from .base import REGISTRY, AutofocusResult, Strategy
from .gate import _gate, confidence, depth_of_focus
from .params import AutofocusParams, GateParams
from .run import Sample, _OutOfFrames, _Run, _SearchStalled

# One logger for the whole package (as before it was split): lines read "pifocus.autofocus: ...".
log = logging.getLogger("pifocus.autofocus")


def autofocus(drive, analyzer, params: Optional[AutofocusParams] = None, source=None,
              strategy: Optional[str] = None, start: Optional[float] = None) -> AutofocusResult:
    """Run one autofocus pass.

    Args:
        drive: an open (or openable) :class:`~pifocus.drive.FocusDrive`.
        analyzer: a :class:`~pifocus.focus.FocusAnalyzer` (Laplacian-only mode is fine).
        params: :class:`~pifocus.autofocus.AutofocusParams` (default: defaults).
        source: where frames come from; default ``drive.source``.
        strategy: ``model`` or ``sweep`` (default ``params.strategy``; ``continuous`` runs
            one local search from the current position).
        start: move here first (default ``params.start``, else stay).

    Returns:
        :class:`AutofocusResult` (a quality-gate failure is ``success=False`` with the reason;
        the drive then stands at the best position seen).

    Raises:
        ConfigError: unknown strategy.
        AutofocusError: no frame source, or the source ran dry.
        LimitError: ``start`` outside the soft limits with ``on_limit="error"``.
    """
    params = AutofocusParams() if params is None else params
    strategy = strategy or params.strategy
    if strategy not in REGISTRY:
        raise ConfigError(f"autofocus strategy {strategy!r} is unknown; use one of {', '.join(REGISTRY)}")
    run = _open_run(drive, analyzer, params, source, start)
    fit, target = _search(run, REGISTRY[strategy].from_params(params))
    ok, reason = _gate(run, fit, params.gate)
    best = run.best()
    final = run.snap(target) if ok and target is not None else best.position
    v, ok, reason = _approach_and_verify(run, final, best, ok, reason, params.gate)
    return _result(run, strategy, fit, ok, reason, best, v)


def _settle_frames(drive, params: AutofocusParams) -> int:
    """Frames discarded after each move: AF's own, the drive's, the camera pipeline's and the
    most a drive may wait for its lens to arrive (``wait_frames``, libcamera)."""
    return (int(params.settle_frames) + int(getattr(drive.params, "settle_frames", 0))
            + int(getattr(drive, "pipeline_frames", 0)) + int(getattr(drive, "wait_frames", 0)))


def search_budget(drive, params: AutofocusParams) -> int:
    """Most frames the search of one :func:`autofocus` run may read, settling frames
    included (enough for either strategy's worst case)."""
    budget = max(params.model.max_frames, 3 * params.sweep.coarse_points + params.sweep.fine_points + 8)
    return budget * (1 + _settle_frames(drive, params))


def frame_limit(drive, params: AutofocusParams) -> int:
    """Most frames one :func:`autofocus` run reads in all: :func:`search_budget` plus the
    final approach's settling frames and verification frame."""
    return search_budget(drive, params) + 2 + _settle_frames(drive, params)


def _open_run(drive, analyzer, params: AutofocusParams, source, start: Optional[float]) -> _Run:
    """Set a run up: the source, an open drive, the frame budget, the move to ``start``,
    and stale frames dropped."""
    source = source if source is not None else getattr(drive, "source", None)
    if source is None:
        raise AutofocusError(f"drive {drive.name!r} shows no frames by itself; give a camera source")
    if drive.closed:
        drive.open()
    start = params.start if start is None else start
    run = _Run(drive, source, analyzer, params, max_frames=search_budget(drive, params))
    if start is not None:
        drive.move_to(drive._legal(start))  # LimitError with on_limit="error"
    # Frames in flight may predate the last move (ours, homing, a previous run): drop them.
    run.settle_after_move()
    return run


def _search(run: _Run, strategy: Strategy) -> Tuple[Optional[dict], Optional[float]]:
    """Let the strategy search; a used-up frame budget ends the search, not the run.
    Returns ``(fit, target)``; the run has at least one sample afterwards."""
    fit, target = None, None
    try:
        fit, target = strategy.search(run)
    except _SearchStalled as e:
        log.warning("%s; finishing with the best sample", e)
    except _OutOfFrames:
        log.warning("autofocus: frame budget exhausted; finishing with the best sample")
    if not run.samples:
        run.here()
    return fit, target


def _approach_and_verify(run: _Run, final: float, best: Sample, ok: bool, reason: str,
                         gate: GateParams) -> Tuple[Sample, bool, str]:
    """Final approach to ``final``, always from the same side, then one frame to verify;
    back to the best sample if the fitted peak scores too low.

    Returns ``(verification sample, ok, reason)``: ``ok`` turns False when even the best
    sample does not reproduce.
    """
    # the verification may exceed the search budget
    run.max_frames += 2 + run.settle + int(getattr(run.drive, "wait_frames", 0))
    last = run.samples[-1] if run.samples else None
    if (last is not None and last.approached and last.position == final
            and run.drive.position == final):
        v = last      # the last frame was taken right there, approached: it is the verification
    else:
        v = _move_and_read(run, final)
    if ok and v.score < gate.return_ratio * best.score and final != best.position:
        log.info("autofocus: fitted peak %.3g scored %.3g < %.0f%% of best %.3g; going to the best sample",
                 final, v.score, 100 * gate.return_ratio, best.score)
        v = _move_and_read(run, best.position)
    if ok and v.score < gate.verify_ratio * best.score:
        ok, reason = False, (f"focus not reproducible: the final frame scores {v.score:.3g}, below "
                             f"{gate.verify_ratio:.0%} of the best {best.score:.3g} (lens slipping, "
                             "missed steps or a moving subject)")
    return v, ok, reason


def _move_and_read(run: _Run, x: float) -> Sample:
    """Approach ``x`` (with overshoot), settle, and score one fresh frame there."""
    run.drive.move_to(x, approach=True, overshoot=run.overshoot)
    run.settle_after_move()
    return run.here()


def _result(run: _Run, strategy: str, fit: Optional[dict], ok: bool, reason: str, best: Sample,
            v: Sample) -> AutofocusResult:
    """The :class:`AutofocusResult` of a finished run (``v``: the verification sample)."""
    drive = run.drive
    final_score, p_final = v.score, v.p_in_focus
    # The verification sample is part of the curve but not a candidate for "best" later.
    return AutofocusResult(
        final_position=float(drive.position), frames_used=run.frames, moves=drive.moves - run.moves0,
        time_s=time.perf_counter() - run.t0,
        curve=[[s.position, s.score] for s in run.samples], success=ok, reason=reason, fit=fit,
        strategy=strategy, best_position=best.position, best_score=best.score, final_score=final_score,
        p_in_focus=None if p_final is None or math.isnan(p_final) else p_final,
        coarse_curve=[[s.position, s.coarse[8]] for s in run.samples],
        confidence=confidence(run, ok, best, final_score, fit), depth_of_focus=depth_of_focus(fit))
