"""The service's :class:`~pifocus.controls.Controls`: what the web page (and the MQTT
bridge, :mod:`pifocus.rig.bridge`) may ask the running daemon.

:class:`ServiceControls` is the one object a front end gets.  Its methods, arguments (with
units), return values and ``ServiceError`` statuses are listed on
:class:`pifocus.controls.Controls`.  Everything that touches the analyzer or the outputs is
handed to the frame loop's thread (:class:`~pifocus.service.actions.LoopActions`); an
autofocus run too, in full, while a worker thread waits for it.
"""

import dataclasses
import logging
import math
import threading
import time
from typing import Optional

from ..exc import ConfigError, DriveError, ModelError, OutputError, PiFocusError, ServiceError
from . import parts
from .live import LiveReports, MeterCarry
from .captures import CaptureControls, CaptureQueue, write_capture  # noqa: F401  (write_capture: its former home)
from .bracket import BracketControls
from .follow import FollowControls, FollowFocus
from .rack import PresetControls
from .source import AFSource as _AFSource, Cancelled
from .status import drive_position, status_document

# One logger for the whole service package: the journal keeps saying "pifocus.service: ...".
log = logging.getLogger("pifocus.service")


class ServiceControls(FollowControls, PresetControls, BracketControls, CaptureControls):
    """The controls of one running :class:`~pifocus.service.Service` (see
    :class:`pifocus.controls.Controls` for each method's contract).

    The daemon owns one and hands it to the web server; the daemon also feeds
    :attr:`captures` (every frame) and ends it on shutdown.

    Args:
        svc: the daemon.  Read: ``pipeline``, ``source``, ``hub``, ``drive``,
            ``drive_error``, ``drive_lock``, ``cfg``, ``outputs_enabled``, ``actions``,
            ``heartbeat``; written: ``analysis_error`` (cleared by a mode switch) and
            ``outputs_muted`` (by :meth:`set_outputs`, so a reload keeps them off).

    Attributes:
        af_state: the autofocus state shown in the status (``{"state": "idle"}`` at first).
        af_thread: the thread waiting for the current/last autofocus run, or None.
        captures: the :class:`CaptureQueue` of :meth:`capture` requests.
    """

    def __init__(self, svc):
        self._svc = svc
        self.af_state = {"state": "idle"}
        self.af_thread: Optional[threading.Thread] = None
        self.af_cancel = threading.Event()
        self.captures = CaptureQueue()
        self.live = LiveReports(offer=self._offer_preview)
        self.carry = MeterCarry()
        self._init_captures()
        af = getattr(svc.cfg, "autofocus", None)
        self.follow = FollowFocus(af, enabled=getattr(af, "mode", "single") == "continuous")
        self._follow_src = None
        web = getattr(svc.cfg, "web", None)
        self._init_presets(getattr(web, "presets_file", None))
        self._init_bracket()

    @property
    def hub(self):
        """The daemon's preview hub, or None when the preview is not running."""
        return self._svc.hub

    def status(self) -> dict:
        """Everything the page shows, JSON-ready (see ``pifocus/web/API.md``)."""
        d = status_document(self._svc, self.af_state, self.live)
        d["af_mode"] = "continuous" if self.follow.enabled else "single"
        d["follow"] = self.follow.status()
        d["presets"] = self.presets()
        d["rack"] = dict(self.rack_state)
        d["stack"] = dict(self.stack_state)
        return d

    # -- analysis -------------------------------------------------------------------------------
    def set_roi(self, roi) -> tuple:
        """Set the subject region (normalized ``x, y, w, h``; None = default) and start a new
        focusing pass; returns the ROI in use.

        Raises:
            ServiceError: (400) bad rectangle; (503) no frames to apply it with.
        """
        if roi is not None:
            roi = _checked_roi(roi)
        svc = self._svc

        def apply():
            before = svc.pipeline.last_report
            svc.pipeline.analyzer.set_roi(roi)
            self.carry.arm(svc.pipeline.analyzer, before, svc.pipeline.last_frame)  # no jump to 100 %
            return svc.pipeline.analyzer.params.effective_roi
        return svc.actions.call(apply)

    def set_analysis_mode(self, mode: str) -> str:
        """Switch between ``"cnn"`` and ``"laplacian"`` analysis; returns the mode in use.

        Raises:
            ServiceError: (400) unknown mode; (503) the CNN model cannot be loaded.
        """
        if mode not in ("cnn", "laplacian"):
            raise ServiceError(f"analysis mode {mode!r} is unknown; use 'cnn' or 'laplacian'")
        svc = self._svc
        current = svc.pipeline.analyzer
        if current.mode == mode:
            return mode
        params = dataclasses.replace(current.params, use_cnn=(mode == "cnn"))
        from ..focus import FocusAnalyzer
        try:
            analyzer = FocusAnalyzer(params)  # loading a model takes a while: not in the loop
        except (ModelError, ImportError, OSError) as e:
            raise ServiceError(f"cannot switch to {mode}: {e}", 503) from None

        def swap():
            old, svc.pipeline.analyzer = svc.pipeline.analyzer, analyzer
            old.close()
            svc.analysis_error = None
            self.carry.arm(analyzer, svc.pipeline.last_report, svc.pipeline.last_frame)  # no jump to 100 %
            return analyzer.mode
        return svc.actions.call(swap)

    # -- preview and outputs --------------------------------------------------------------------
    def set_peaking(self, on: bool) -> bool:
        """Focus peaking on the preview on/off; returns the new state.

        Raises:
            ServiceError: (503) the preview is not running.
        """
        hub = self._svc.hub
        if hub is None:
            raise ServiceError("the preview is not running", 503)
        hub.peaking = bool(on)
        return hub.peaking

    def set_outputs(self, on: bool) -> bool:
        """Switch the GPIO outputs (LED, meter, buzzer, trigger) on or off; off releases the
        pins with everything dark and silent.  Returns the new state.

        Raises:
            ServiceError: (409) outputs disabled on the command line; (503) the pins cannot
                be claimed again, or no frames to apply the change with.
        """
        svc = self._svc
        if not svc.outputs_enabled or svc.cfg.outputs is None:
            raise ServiceError("GPIO outputs are disabled for this service (--no-outputs or no [outputs] support)", 409)
        on = bool(on)

        def apply():
            p = svc.pipeline
            if on and p.outputs is None:
                p.outputs = parts.make_outputs(svc.cfg, svc.outputs_enabled)
                if p.outputs is not None and p.error:
                    p.outputs.set_error(True)
            elif not on and p.outputs is not None:
                old, p.outputs = p.outputs, None
                old.close()
            svc.outputs_muted = not on
            return on
        try:
            return svc.actions.call(apply)
        except OutputError as e:
            raise ServiceError(f"cannot switch the outputs on: {e}", 503) from None

    # -- drive and autofocus --------------------------------------------------------------------
    def _require_drive(self):
        svc = self._svc
        if svc.drive is None:
            why = svc.drive_error or "no focus drive configured (set [drive] in the config)"
            raise ServiceError(why, 503)
        return svc.drive

    def nudge(self, steps: int) -> dict:
        """Move the focus drive by ``steps`` (signed); returns ``{"position": ...}``.

        Raises:
            ServiceError: (503) no drive; (409) autofocus running; (400) the move was refused
                (soft limit) or ``steps`` out of range.
        """
        drive = self._require_drive()
        web = self._svc.cfg.web
        limit = web.nudge_max_steps if web is not None else 1000
        if (not isinstance(steps, (int, float)) or isinstance(steps, bool)
                or not math.isfinite(steps) or steps != int(steps)):
            raise ServiceError("steps must be an integer")
        steps = int(steps)
        if steps == 0 or abs(steps) > limit:
            raise ServiceError(f"steps = {steps} is out of range; allowed: 1..{limit} steps either way "
                               "(web.nudge_max_steps)")
        lock = self._svc.drive_lock
        if not lock.acquire(blocking=False):
            raise ServiceError("the drive is busy (autofocus running)", 409)
        try:
            try:
                drive.move_by(steps)
            except DriveError as e:
                raise ServiceError(f"move refused: {e}", 400) from None
            return {"position": drive_position(drive)}
        finally:
            lock.release()

    def start_autofocus(self, strategy: Optional[str] = None) -> dict:
        """Start one autofocus run (:func:`pifocus.autofocus.autofocus`) in the background;
        returns the AF state (``{"state": "running", ...}``).

        The run itself executes in the frame loop's thread, reading frames from the same
        source (the preview and the watchdog keep going meanwhile); a shutdown cancels it.

        Raises:
            ServiceError: (503) no drive or no autofocus support; (409) already running or
                the drive is moving; (400) unknown strategy.
        """
        drive = self._require_drive()
        try:
            from .. import autofocus as afmod
        except ImportError:
            raise ServiceError("autofocus is not part of this pifocus build", 503) from None
        strategies = getattr(afmod, "STRATEGIES", ())
        if strategy is not None and strategy not in strategies:
            raise ServiceError(f"strategy {strategy!r} is unknown; use one of {', '.join(strategies)}")
        params = getattr(self._svc.cfg, "autofocus", None) or afmod.AutofocusParams()
        if not self._svc.drive_lock.acquire(blocking=False):
            raise ServiceError("autofocus is already running (or the drive is moving)", 409)
        self.af_cancel.clear()
        self.af_state = {"state": "running", "strategy": strategy or params.strategy, "started": time.time()}
        self.af_thread = threading.Thread(target=self._af_worker, args=(afmod, drive, params, strategy),
                                          name="pifocus-autofocus", daemon=True)
        self.af_thread.start()
        return dict(self.af_state)

    def _af_worker(self, afmod, drive, params, strategy) -> None:
        """The autofocus thread: hands the run to the frame loop, waits, records the end."""
        svc = self._svc
        src = _AFSource(svc.source, self._on_af_frame, self.af_cancel)

        def run():
            analyzer = svc.pipeline.analyzer
            self.live.start_run()
            try:  # its frames' reports reach /api/status and the preview as they come
                return afmod.autofocus(drive, self.live.wrap(analyzer), params, source=src, strategy=strategy)
            finally:
                analyzer.reset()  # a new focusing pass for the meter and the verdict
                self.live.end_run()

        try:
            result = svc.actions.call(run, timeout=300)
            d = _af_result_dict(result)
            self.af_state = {"state": "done" if d.get("success", True) else "failed", "result": d,
                             "strategy": d.get("strategy", strategy)}
            log.info("autofocus %s: position %s, %s frames, %s", "succeeded" if d.get("success") else "failed",
                     d.get("final_position"), d.get("frames_used"), d.get("reason"))
        except Cancelled:
            self.af_state = {"state": "cancelled"}
        except ServiceError as e:
            self.af_state = {"state": "failed", "error": str(e)}
        except PiFocusError as e:
            self.af_state = {"state": "failed", "error": str(e)}
            log.error("autofocus failed: %s", e)
        except Exception as e:  # the worker must end with a state, whatever the run did
            self.af_state = {"state": "failed", "error": f"unexpected {type(e).__name__}: {e}"}
            log.exception("autofocus crashed")
        finally:
            svc.drive_lock.release()

    def cancel_autofocus(self) -> dict:
        """Stop the running autofocus run at its next frame (the lens stays where that run
        left it); returns the AF state.  Nothing to cancel is not an error: the state is
        returned as it is."""
        if self.af_state.get("state") == "running":
            self.af_cancel.set()
            t = self.af_thread
            if t is not None:
                t.join(2.0)
        return dict(self.af_state)

    def _on_af_frame(self, frame) -> None:
        """Frames read by an autofocus run: keep the preview and the watchdog going."""
        svc = self._svc
        svc.heartbeat.autofocus_frame(time.monotonic())
        self._offer_preview(frame, self.live.latest(svc.pipeline.last_report)[0])

    def _offer_preview(self, frame, report) -> None:
        """Hand a frame and its report to the preview (when it runs)."""
        hub = self._svc.hub
        if hub is not None:
            hub.offer(frame, report)

    def loop_frame(self, frame, report) -> None:
        """Frame loop thread, every frame: the meter carried over an ROI/mode change."""
        self.carry.frame(self._svc.pipeline.analyzer, report)

def _checked_roi(roi) -> tuple:
    """``roi`` as four floats, validated like ``[analysis] roi``.

    Raises:
        ServiceError: (400) not four numbers, or not a valid region.
    """
    try:
        roi = tuple(float(v) for v in roi)
    except (TypeError, ValueError):
        raise ServiceError("roi must be [x, y, w, h] numbers in 0..1, or null for the default") from None
    if len(roi) != 4:
        raise ServiceError("roi must have four numbers [x, y, w, h]")
    from ..focus import AnalysisParams
    try:
        dataclasses.replace(AnalysisParams(), roi=roi)
    except ConfigError as e:
        raise ServiceError(str(e)) from None
    return roi


def _af_result_dict(result) -> dict:
    """The JSON-ready part of an autofocus result (whatever its type)."""
    if result is None:
        return {}
    for name in ("to_dict", "as_dict"):
        fn = getattr(result, name, None)
        if callable(fn):
            d = fn()
            break
    else:
        d = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else dict(vars(result))
    keep = ("final_position", "success", "reason", "frames_used", "moves", "strategy", "time_s", "elapsed_s",
            "curve")
    return {k: d[k] for k in keep if k in d}


class ControlShortcuts:
    """The controls on the :class:`~pifocus.service.Service` itself, as they were before
    :class:`ServiceControls` existed (``svc.set_roi(...)``, ``svc.status()``...): each
    forwards to ``self.controls``.  Front ends get ``svc.controls``, not the service."""

    controls: ServiceControls

    @property
    def af_state(self) -> dict:
        """The autofocus state (``{"state": "idle" | "running" | "done" | ...}``)."""
        return self.controls.af_state

    def status(self) -> dict:
        """The status document: :meth:`ServiceControls.status`."""
        return self.controls.status()

    def set_roi(self, roi) -> tuple:
        """Set the subject region: :meth:`ServiceControls.set_roi`."""
        return self.controls.set_roi(roi)

    def set_analysis_mode(self, mode: str) -> str:
        """Switch the analysis: :meth:`ServiceControls.set_analysis_mode`."""
        return self.controls.set_analysis_mode(mode)

    def set_peaking(self, on: bool) -> bool:
        """Preview focus peaking on/off: :meth:`ServiceControls.set_peaking`."""
        return self.controls.set_peaking(on)

    def set_outputs(self, on: bool) -> bool:
        """GPIO outputs on/off: :meth:`ServiceControls.set_outputs`."""
        return self.controls.set_outputs(on)

    def nudge(self, steps: int) -> dict:
        """Move the focus drive: :meth:`ServiceControls.nudge`."""
        return self.controls.nudge(steps)

    def start_autofocus(self, strategy: Optional[str] = None) -> dict:
        """Start an autofocus run: :meth:`ServiceControls.start_autofocus`."""
        return self.controls.start_autofocus(strategy)

    def cancel_autofocus(self) -> dict:
        """Cancel the running autofocus run: :meth:`ServiceControls.cancel_autofocus`."""
        return self.controls.cancel_autofocus()

    def set_af_mode(self, mode: str) -> str:
        """Single or continuous autofocus: :meth:`ServiceControls.set_af_mode`."""
        return self.controls.set_af_mode(mode)

    def capture(self, fmt: Optional[str] = None, timeout: float = 3.0, not_before_ns: Optional[int] = None) -> dict:
        """Save a full-resolution still: :meth:`ServiceControls.capture`."""
        return self.controls.capture(fmt, timeout, not_before_ns)
