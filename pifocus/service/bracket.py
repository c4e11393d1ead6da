"""Focus bracketing in the service: :class:`BracketControls`, the part of
:class:`~pifocus.service.controls.ServiceControls` behind ``POST /api/stack`` (the page's
*Stack A–B* button).

A bracket (:func:`pifocus.stack.capture_bracket`: probe the depth of focus, full-resolution
stills with ``sweep.csv`` and JSON sidecars, optionally fused) runs like an autofocus run: in
the frame loop's thread, reading frames through the preview and the watchdog, holding the
drive lock; a worker thread waits for it and keeps :attr:`stack_state` for ``/api/status``.
Stills go to ``[web] captures_dir``/``stack-YYYYmmdd-HHMMSS/``.
"""

import datetime
import logging
import math
import threading
from pathlib import Path
from typing import Optional

from ..exc import ConfigError, PiFocusError, ServiceError
from .source import AFSource, Cancelled

log = logging.getLogger("pifocus.service")


class BracketControls:
    """Bracket controls (a mixin: needs ``self._svc``, ``self._require_drive()`` and
    ``self._on_af_frame``).

    Attributes:
        stack_state: ``{"state": "idle" | "running" | "done" | "stopped" | "failed", "phase":
            "probe" | "capture" | "fuse", "done", "total", "out", "error", ...}``.
    """

    def _init_bracket(self) -> None:
        self.stack_state = {"state": "idle"}
        self.stack_stop = threading.Event()
        self.stack_thread: Optional[threading.Thread] = None

    def start_stack(self, near: float, far: float, overlap: float = 0.1, fuse: bool = False) -> dict:
        """Start a focus bracket from ``near`` to ``far`` (drive units) with ``overlap`` (share
        of the depth of focus); returns the state (``"running"``).

        Raises:
            ServiceError: (400) bad range or overlap; (503) no drive; (409) the drive is busy.
        """
        from ..stack import StackParams
        drive = self._require_drive()
        for k, v in (("near", near), ("far", far), ("overlap", overlap)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ServiceError(f"{k} = {v!r} must be a number")
        try:
            sp = StackParams(near=float(min(near, far)), far=float(max(near, far)), overlap=float(overlap))
        except ConfigError as e:
            raise ServiceError(str(e)) from None
        lock = self._svc.drive_lock
        if not lock.acquire(blocking=False):
            raise ServiceError("the drive is busy (autofocus, a preset move or another bracket)", 409)
        web = self._svc.cfg.web
        out = Path(web.captures_dir if web else "captures") / datetime.datetime.now().strftime("stack-%Y%m%d-%H%M%S")
        self.stack_stop.clear()
        self.stack_state = {"state": "running", "phase": "probe", "done": 0, "total": sp.probe_frames,
                            "near": sp.near, "far": sp.far, "overlap": sp.overlap, "out": out.name, "error": None}
        self.stack_thread = threading.Thread(target=self._stack_worker, args=(drive, sp, out, fuse),
                                             name="pifocus-stack", daemon=True)
        self.stack_thread.start()
        return dict(self.stack_state)

    def stop_stack(self) -> dict:
        """Stop a running bracket between two frames (what was written stays); returns the state."""
        if self.stack_state.get("state") == "running":
            self.stack_stop.set()
            t = self.stack_thread
            if t is not None:
                t.join(3.0)
        return dict(self.stack_state)

    def _stack_worker(self, drive, sp, out: Path, fuse: bool) -> None:
        from ..stack import capture_bracket
        svc = self._svc
        state = self.stack_state
        src = AFSource(svc.source, self._on_af_frame, self.stack_stop)

        def on_state(st):
            state.update({k: v for k, v in st.items() if k in ("phase", "done", "total", "step", "depth_of_focus")})

        def run():
            out.mkdir(parents=True, exist_ok=True)
            try:
                return capture_bracket(drive, src, svc.pipeline.analyzer, sp, out,
                                       fuse_to=(out / "fused.png") if fuse else None, on_state=on_state,
                                       cancel=self.stack_stop)
            finally:
                svc.pipeline.analyzer.reset()

        try:
            res = svc.actions.call(run, timeout=3600)
            state.update(state="stopped" if res.get("cancelled") else "done", frames=res["frames"],
                         fused=bool(res.get("fused")))
            log.info("focus bracket: %s frames in %s", res["frames"], out)
        except Cancelled:
            state.update(state="stopped")
        except (PiFocusError, OSError) as e:
            state.update(state="failed", error=str(e))
            log.error("focus bracket failed: %s", e)
        except Exception as e:  # the worker must end with a state
            state.update(state="failed", error=f"unexpected {type(e).__name__}: {e}")
            log.exception("focus bracket crashed")
        finally:
            svc.drive_lock.release()
