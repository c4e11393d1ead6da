"""Continuous autofocus in the live loop: :class:`FollowFocus` feeds every frame's report to a
:class:`~pifocus.autofocus.ContinuousAF` and lets it refocus the drive.

Used by ``pifocus run --drive D --af-mode continuous`` and by the ``serve`` daemon (``[autofocus]
mode = "continuous"``, switchable on the page).  ContinuousAF decides: it searches only when
the ROI's sharpness drops below ``drop_ratio`` of its in-focus reference for
``drop_frames`` frames in a row (a one-frame flicker is not enough), treats a jump in ROI
brightness (a hand in front of the lens, a scene cut) as a new scene to re-learn, not as
defocus, and never moves the lens while the sharpness holds.  A search reads its frames from
the same source (in ``serve``: through the preview and the watchdog, like a single run).

What "sharpness" is here (:func:`follow_score`): with a model that estimates the blur radius
(``report.blur_px``), the score is ``(coc_px / max(blur_px, coc_px))^2`` -- exactly 1 while the
subject is within the depth of focus (blur within the circle of confusion), so nothing inside
it can trigger a refocus, and below ``drop_ratio`` once the blur has grown past
``coc_px / sqrt(drop_ratio)`` (1.3 x at the default 0.6).  Without a blur estimate it is the
report's noise-corrected Laplacian sharpness, which falls steeply inside the depth of focus
already (to ~20 % of the peak at its edge on the sim lens), so it is judged against its own
threshold, ``[autofocus.continuous] sharpness_drop_ratio`` (default 0.15: refocus only
outside the depth of focus).  When the score changes kind (the blur head has no estimate on
some frames) the reference is learnt again.
"""

import logging
import math
from typing import Optional

import numpy as np

from ..exc import PiFocusError, ServiceError
from .source import AFSource, Cancelled

log = logging.getLogger("pifocus.service")

#: ContinuousAF events that moved the lens (the analyzer's history is reset after them).
MOVING_EVENTS = ("focus", "search", "manual_turn")


def score_kind(report) -> str:
    """``"blur"`` when the report has a blur estimate (``blur_px``), else ``"sharpness"``."""
    blur = float(getattr(report, "blur_px", math.nan))
    return "blur" if math.isfinite(blur) and blur > 0 else "sharpness"


def follow_score(report) -> float:
    """The score ContinuousAF watches (see the module docstring): blur-based when the report
    has ``blur_px``, else the Laplacian sharpness."""
    if score_kind(report) == "blur":
        coc = float(report.coc_px)
        return (coc / max(float(report.blur_px), coc)) ** 2
    return float(report.sharpness)


def roi_mean_dn(frame, report) -> float:
    """Mean level of the report's ROI in DN: the exposure readout when the report has one,
    else measured on every 4th pixel of the ROI."""
    expo = getattr(report, "exposure", None)
    if expo is not None:
        return float(expo.stats.mean_dn_roi)
    h, w = frame.luma.shape
    x, y, rw, rh = report.roi
    a = frame.luma[int(y * h):int((y + rh) * h):4, int(x * w):int((x + rw) * w):4]
    return float(a.mean()) if a.size else float(np.mean(frame.luma[::4, ::4]))


class FollowFocus:
    """Keep the subject in focus frame by frame (see the module docstring).

    Args:
        params: the :class:`~pifocus.autofocus.AutofocusParams` (its ``continuous`` table).
        enabled: start switched on (``[autofocus] mode = "continuous"``).

    Attributes:
        enabled: follow focus on/off (the page's toggle); switching on starts from a fresh
            ContinuousAF (its first frame runs one full autofocus when
            ``continuous.initial_search``).
        last_event: the last ContinuousAF event (``learn``, ``ok``, ``low``, ``cut``,
            ``search``, ``focus``, ``manual_turn``), None before the first frame.
        searches: refocus runs so far (the initial full run included).
    """

    def __init__(self, params, enabled: bool = False):
        self.params = params
        self._enabled = bool(enabled)
        self._caf = None
        self._key = None
        self._kind: Optional[str] = None
        self.last_event: Optional[str] = None
        self.searches = 0

    @property
    def enabled(self) -> bool:
        """Follow focus on/off."""
        return self._enabled

    @enabled.setter
    def enabled(self, on: bool) -> None:
        on = bool(on)
        if on and not self._enabled:
            self._caf = None  # a fresh start: learn the reference from where the lens is now
        self._enabled = on

    @property
    def state(self) -> Optional[str]:
        """ContinuousAF's state (``learn`` / ``watch``), None while off or before a frame."""
        return self._caf.state if (self._enabled and self._caf is not None) else None

    def on_frame(self, frame, report, drive, analyzer, source) -> Optional[str]:
        """Judge one frame's report; refocus ``drive`` (reading frames from ``source``) when
        ContinuousAF says so.  Returns the event, or None when off / no drive.

        Raises:
            whatever the autofocus run raises (drive errors; a cancellation).
        """
        if not self._enabled or drive is None:
            return None
        from ..autofocus import ContinuousAF

        key = (id(drive), id(analyzer), id(source))
        if self._caf is None or self._key != key:
            self._caf = ContinuousAF(drive, analyzer, self.params, source=source)
            self._key = key
            self._kind = None
        kind = score_kind(report)
        if self._kind is not None and kind != self._kind:
            self._caf.relearn()  # a reference of the other kind of score means nothing now
        self._kind = kind
        cp = self._caf.p
        p_cnn = report.p_in_focus if report.mode == "cnn" else math.nan
        before = self._caf.searches
        ev = self._caf.update(follow_score(report), roi_mean_dn(frame, report), p_cnn,
                              drop_ratio=cp.drop_ratio if kind == "blur" else cp.sharpness_drop_ratio)
        self.last_event = ev
        if self._caf.searches != before:
            self.searches += self._caf.searches - before
            r = self._caf.results[-1] if self._caf.results else None
            log.info("continuous AF: %s -> position %s (%s)", ev, getattr(r, "final_position", None),
                     getattr(r, "reason", ""))
            analyzer.reset()  # a new focusing pass for the meter and the verdict
        return ev

    def status(self) -> dict:
        """``{"enabled", "state", "last_event", "searches"}`` for ``/api/status``."""
        return {"enabled": self._enabled, "state": self.state, "last_event": self.last_event,
                "searches": self.searches}


class FollowControls:
    """The controls' part for continuous AF (a mixin of
    :class:`~pifocus.service.controls.ServiceControls`: needs ``self._svc``, ``self.follow``,
    ``self._follow_src``, ``self.af_cancel``, ``self._on_af_frame``, ``self.live`` and
    ``self._require_drive()``)."""

    def set_af_mode(self, mode: str) -> str:
        """``"single"`` (autofocus when asked) or ``"continuous"`` (follow focus: refocus when
        the subject's sharpness drops and stays down); returns the mode in use.

        Raises:
            ServiceError: (400) unknown mode; (503) continuous without a focus drive.
        """
        if mode not in ("single", "continuous"):
            raise ServiceError(f"af_mode {mode!r} is unknown; use 'single' or 'continuous'")
        if mode == "continuous":
            self._require_drive()
        self.follow.enabled = mode == "continuous"
        log.info("autofocus mode: %s", mode)
        return mode

    def follow_frame(self, frame, report) -> None:
        """Frame loop thread, every frame: continuous AF (when on and the drive is free).  A
        refocus holds the drive lock and reads its frames through the preview and the
        watchdog, like a single run; its failure is logged and switches follow focus off."""
        svc = self._svc
        if not self.follow.enabled or svc.drive is None:
            return
        lock = svc.drive_lock
        if not lock.acquire(blocking=False):
            return  # a nudge, an autofocus run or a reload has the drive
        try:
            if self._follow_src is None or self._follow_src._source is not svc.source:
                self.af_cancel.clear()
                self._follow_src = AFSource(svc.source, self._on_af_frame, self.af_cancel)
            self.live.start_run()  # a refocus's frames reach /api/status (see .live)
            try:
                self.follow.on_frame(frame, report, svc.drive, self.live.wrap(svc.pipeline.analyzer), self._follow_src)
            finally:
                self.live.end_run()
        except Cancelled:
            pass
        except PiFocusError as e:
            self.follow.enabled = False
            log.error("continuous AF stopped: %s", e)
        finally:
            lock.release()

