"""Continuous AF: :class:`ContinuousAF` watches the ROI and searches only when sharpness
drops and stays down (not a one-frame flicker, not a scene cut), without hunting while
focus is good; its searches are the ``continuous`` strategy (:class:`LocalSearchStrategy`:
a local hill-climb from the current position).
"""

import logging
import math
from typing import List, Optional, Tuple

import numpy as np

from .base import AutofocusResult, Strategy
from .engine import autofocus
from .fit import _fit_around
from .params import AutofocusParams, ContinuousParams
from .run import _Run, multiscale

# One logger for the whole package (as before it was split): lines read "pifocus.autofocus: ...".
log = logging.getLogger("pifocus.autofocus")


class LocalSearchStrategy(Strategy):
    """The ``continuous`` strategy: one local search from the current position
    (:class:`~pifocus.autofocus.ContinuousParams`)."""

    name = "continuous"
    params_field = "continuous"

    def search(self, run: _Run) -> Tuple[Optional[dict], Optional[float]]:
        """Hill-climb with a shrinking step, then fit; see :func:`_local_search`."""
        return _local_search(run, self.params)


def _local_search(run: _Run, p: ContinuousParams) -> Tuple[Optional[dict], Optional[float]]:
    """Hill-climb from the current position with a shrinking step, then fit (continuous AF)."""
    res = run.res
    step = max(res, round(run.span * p.search_step / res) * res)
    run.max_frames = run.frames + p.search_frames
    cur = run.here()
    while True:
        run.tick()  # the climb strictly improves, but a bound that cannot be skipped is cheap
        a = run.measure(cur.position - step, approach=True) if cur.position - step >= run.lo - res / 2 else None
        b = run.measure(cur.position + step, approach=True) if cur.position + step <= run.hi + res / 2 else None
        cands = [s for s in (a, b) if s is not None and s.position != cur.position]
        better = max(cands, key=lambda s: s.score, default=None)
        if better is not None and better.score > cur.score:
            cur = better          # climb; keep the step while climbing
            continue
        if step <= res or step <= run.span * 0.005:
            break
        step = max(res, round(step / 2 / res) * res)
    pool = [s for s in run.unique_sorted() if abs(s.position - cur.position) <= 2 * step + res]
    fit, _ = _fit_around(run, "gaussian", 3, pool=pool)
    target = fit["peak"] if fit is not None and min(fit["x"]) <= fit["peak"] <= max(fit["x"]) else cur.position
    return fit, target


class ContinuousAF:
    """Continuous autofocus: keep the subject sharp over a stream of frames.

    Feed every frame's report to :meth:`update` (or call :meth:`step` to read and judge one
    frame from the drive's source).  States:

    * ``learn`` -- collect ``relearn_frames`` frames: the in-focus reference sharpness;
    * ``watch`` -- compare each frame with the reference: a drop below ``drop_ratio`` (blur
      scores; ``sharpness_drop_ratio`` for the Laplacian sharpness :meth:`step` watches) must
      last ``drop_frames`` frames (flicker is ignored); a jump in ROI brightness is a scene
      cut: the reference is re-learnt, no search (unless the CNN says the new scene is out
      of focus);
    * a sustained drop runs one local search (:func:`autofocus` with the ``continuous``
      strategy) and re-learns.

    Attributes:
        searches: local searches run so far; ``results`` their :class:`AutofocusResult` s.
    """

    def __init__(self, drive, analyzer, params: Optional[AutofocusParams] = None, source=None):
        self.drive = drive
        self.analyzer = analyzer
        self.params = AutofocusParams() if params is None else params
        self.source = source if source is not None else drive.source
        self.p = self.params.continuous
        self.state = "learn"
        self.reference = math.nan
        self._learn: List[float] = []
        self._low = 0
        self._cnn_low = 0
        self._last_brightness = None
        self.searches = 0
        self.results: List[AutofocusResult] = []
        self.frames = 0
        self.events: List[Tuple[int, str]] = []
        #: focus shifts reported as manual ring turns (drive units)
        self.turns: List[float] = []
        self._cut_since_focus = False

    def step(self) -> str:
        """Read one frame, judge it, act.  Returns the event: ``learn``, ``ok``, ``low``,
        ``cut``, ``search``."""
        frame = self.source.read()
        self.frames += 1
        rep = self.analyzer.analyze(frame, track=False)
        _, _, mean = multiscale(frame.luma, self.analyzer.params.effective_roi, rep.noise_sigma_dn)
        p_cnn = rep.p_in_focus if rep.mode == "cnn" else math.nan
        return self.update(rep.sharpness, mean, p_cnn, drop_ratio=self.p.sharpness_drop_ratio)

    def relearn(self) -> None:
        """Learn the in-focus reference again from the next frames (e.g. the score changed
        kind); no search."""
        self._relearn()

    def update(self, score: float, brightness: float, p_in_focus: float = math.nan,
               drop_ratio: Optional[float] = None) -> str:
        """Judge one frame's score and ROI brightness; search when needed.  ``drop_ratio``:
        the drop threshold for this kind of score (default ``continuous.drop_ratio``; the
        Laplacian sharpness needs ``sharpness_drop_ratio``).

        Returns the event: ``learn``, ``ok``, ``low``, ``cut``, ``search`` (a local search
        ran), ``focus`` (the initial full AF ran), ``manual_turn`` (a search found the peak
        moved, same curve shape: the ring was turned by hand or the subject moved).
        """
        p = self.p
        if p.initial_search and not self.results and self.searches == 0 and self.state == "learn" \
                and not self._learn:
            r = autofocus(self.drive, self.analyzer, self.params, source=self.source, strategy="model")
            self.results.append(r)
            self.frames += r.frames_used
            self.searches += 1
            self._relearn()
            self._last_brightness = brightness
            self.events.append((self.frames, "focus"))
            return "focus"
        ev = self._judge(score, brightness, p_in_focus, p.drop_ratio if drop_ratio is None else drop_ratio)
        if ev == "search":
            prev = self.results[-1] if self.results else None
            self.searches += 1
            r = autofocus(self.drive, self.analyzer, self.params, source=self.source, strategy="continuous")
            self.results.append(r)
            self.frames += r.frames_used
            self._relearn()
            if prev is not None and r.success and prev.success and not self._cut_since_focus:
                from ..drive import RingWatch  # lazily, as before: drive is a heavier import
                lo, hi = self.drive.limits
                w = RingWatch(tolerance=p.turn_tolerance * (hi - lo))
                w.reset(prev.curve, prev.final_position)
                found = w.locate(r.curve)
                shift = r.final_position - prev.final_position
                if abs(shift) > w.tolerance and found["manual_turn"]:
                    log.warning("continuous AF: focus moved by %+.4g %s (ring turned by hand, or the subject "
                                "moved); refocused", shift, self.drive.units)
                    self.turns.append(shift)
                    ev = "manual_turn"
            self._cut_since_focus = False
        self.events.append((self.frames, ev))
        return ev

    def _relearn(self) -> None:
        """Start learning a new reference (after a cut or a search)."""
        self.state = "learn"
        self._learn = []
        self._low = 0
        self._cnn_low = 0

    def _judge(self, score: float, brightness: float, p_in_focus: float, drop_ratio: float) -> str:
        """Update the state with one frame; returns ``cut``, ``learn``, ``low``, ``ok`` or
        ``search`` (a search is due)."""
        p = self.p
        last = self._last_brightness
        self._last_brightness = brightness
        if last is not None and abs(brightness - last) > p.scene_cut * max(last, 8.0):
            self._relearn()
            self._cnn_after_cut = True
            self._cut_since_focus = True
            return "cut"
        if self.state == "learn":
            self._learn.append(score)
            if len(self._learn) >= p.relearn_frames:
                self.reference = float(np.median(self._learn))
                self.state = "watch"
                # After a cut, the CNN (when there is one) decides whether the new scene is in focus.
                if getattr(self, "_cnn_after_cut", False) and not math.isnan(p_in_focus) \
                        and p_in_focus < p.cnn_out_of_focus:
                    self._cnn_after_cut = False
                    return "search"
                self._cnn_after_cut = False
            return "learn"
        if score < drop_ratio * self.reference:
            self._low += 1
            if self._low >= p.drop_frames:
                return "search"
            return "low"
        self._low = 0
        # Slowly follow a reference that improves (the subject got sharper on its own).
        if score > self.reference:
            self.reference = 0.9 * self.reference + 0.1 * score
        return "ok"
