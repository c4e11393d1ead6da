"""The ``serve`` daemon: :class:`Service` -- lifecycle, signals, systemd, supervision, reload.

:class:`Service` runs the :class:`~pifocus.pipeline.Pipeline` from a config file in a
worker thread and ties it to the rest of the rig:

* **systemd** (:mod:`.sdnotify`): ``READY=1`` once frames flow; ``WATCHDOG=1`` from the
  frame loop at half of ``$WATCHDOG_USEC`` -- only while frames flow, or while a lost camera
  is being reopened (a read or reopen that hangs stops the pings and systemd restarts the
  service); ``STATUS=`` lines with fps and verdict; ``RELOADING=1``/``STOPPING=1`` around
  reloads and shutdown.
* **signals**: ``SIGHUP`` reloads the config (analyzer, outputs, ROI, source, drive, web
  options; a bad new config is logged and the old one kept); ``SIGTERM``/``SIGINT`` stop
  within 2 s: LED off, motor de-energized, drive position saved.
* **camera loss**: the pipeline shows the error pattern on the LED and reopens the source
  with exponential backoff; the service keeps running and resumes when frames return.
* **controls**: the daemon owns one :class:`~pifocus.service.controls.ServiceControls`
  and hands only that to the web server.  Everything that touches the analyzer or outputs
  runs in the frame loop's thread (:class:`~pifocus.service.actions.LoopActions`), so no
  lock is ever held around a frame.
"""

import dataclasses
import logging
import signal
import threading
import time
from typing import Callable, Optional

from ..exc import ConfigError, ModelError, PiFocusError, ServiceError, SourceError
from ..pipeline import Pipeline, ReconnectParams
from . import parts
from .actions import LoopActions
from .controls import ServiceControls
from .sdnotify import Heartbeat, SdNotifier
from .source import WatchedSource
from .status import FrameRate, describe_outputs, status_line

# One logger for the whole service package: the journal keeps saying "pifocus.service: ...".
log = logging.getLogger("pifocus.service")


class Service:
    """The ``serve`` daemon: pipeline + systemd + signals + web + drive/autofocus.

    Args:
        cfg: the :class:`~pifocus.config.Config` to run.
        config_path: file to re-read on SIGHUP (default ``cfg.path``).
        notifier: an :class:`SdNotifier` (default: from the environment).
        source: a ready-made frame source instead of the configured one (tests).
        outputs_enabled: drive the configured GPIO outputs.
        web_enabled: start the preview server (when ``[web] enabled``).
        status_interval_s: seconds between ``STATUS=`` updates.
        reload_fn: ``fn(path) -> Config`` used on SIGHUP (default :func:`pifocus.config.load`).
        reconnect: backoff for reopening a lost camera.

    Attributes:
        pipeline: the running :class:`~pifocus.pipeline.Pipeline`.
        controls: the :class:`~pifocus.service.controls.ServiceControls` (what the web
            server gets).  The control methods below delegate to it.
        hub: the :class:`~pifocus.web.preview.PreviewHub` (None without web).
        web: the :class:`~pifocus.web.server.WebServer` (None without web).
        drive: the open focus drive, or None (then ``drive_error`` may say why).
        drive_lock: held while the drive moves (nudge, autofocus, a reload swapping it).
        actions: the :class:`~pifocus.service.actions.LoopActions` of the frame loop.
        heartbeat: the :class:`~pifocus.service.sdnotify.Heartbeat` shared by all pingers.
        frame_size: ``(width, height)`` of the last frame in pixels, None before the first.
        exit_code: 0 after a requested stop, 1 when the frame loop failed for good.
    """

    def __init__(self, cfg, *, config_path: Optional[str] = None, notifier: Optional[SdNotifier] = None,
                 source=None, outputs_enabled: bool = True, web_enabled: bool = True,
                 status_interval_s: float = 2.0, reload_fn: Optional[Callable] = None,
                 reconnect: ReconnectParams = ReconnectParams()):
        self.cfg = cfg
        self.reconnect = reconnect
        self.config_path = config_path or getattr(cfg, "path", None)
        self.notifier = notifier if notifier is not None else SdNotifier()
        self.heartbeat = Heartbeat(self.notifier, status_interval_s)
        self._given_source = source
        self.outputs_enabled = outputs_enabled
        self.web_enabled = web_enabled
        self.reload_fn = reload_fn
        self.pipeline: Optional[Pipeline] = None
        self.source: Optional[WatchedSource] = None
        self.hub = None
        self.web = None
        self.drive = None
        self.drive_error: Optional[str] = None
        self.drive_lock = threading.Lock()
        self.exit_code = 0
        self.reloads = 0
        self.reload_error: Optional[str] = None
        self.analysis_error: Optional[str] = None
        self.outputs_muted = False
        self.started = time.time()
        self.frame_size = None
        self.actions = LoopActions()
        self.controls = ServiceControls(self)
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._ready = threading.Event()
        self._loop_thread: Optional[threading.Thread] = None
        self._sup_thread: Optional[threading.Thread] = None
        self._loop_error: Optional[BaseException] = None
        self._rate = FrameRate()
        self._shutdown_done = False

    def _reconnect_params(self, cfg) -> ReconnectParams:
        r = getattr(cfg, "reconnect", None)
        return r if isinstance(r, ReconnectParams) else self.reconnect

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "Service":
        """Build everything and start the frame loop, the supervisor and the web server.

        A missing or broken CNN model does not stop the service: it runs Laplacian-only and
        says so in the log and in ``/api/status`` ``errors``.

        Raises:
            ConfigError, SourceError, OutputError: a part could not be made (the ones already
                made are closed again).
        """
        cfg = self.cfg
        inner = self._given_source if self._given_source is not None else parts.make_source(cfg)
        analyzer = outputs = None
        try:
            analyzer = self._first_analyzer(cfg)
            outputs = parts.make_outputs(cfg, self.outputs_enabled)
            self.source = WatchedSource(inner)
            self.pipeline = Pipeline(self.source, analyzer, outputs, self._reconnect_params(cfg))
            self.pipeline.add_listener(self._on_frame)
            self.drive, self.drive_error = parts.open_drive(cfg, inner)
            self._start_web(cfg)
        except BaseException:
            self._undo_start(outputs, analyzer)
            raise
        self._loop_thread = threading.Thread(target=self._loop, name="pifocus-loop", daemon=True)
        self.actions.loop_thread = self._loop_thread
        self._loop_thread.start()
        self._sup_thread = threading.Thread(target=self._supervise, name="pifocus-supervisor", daemon=True)
        self._sup_thread.start()
        log.info("serving: source %s, analysis %s, outputs %s, web %s", inner.name, analyzer.mode,
                 describe_outputs(outputs), self.web.url if self.web else "off")
        return self

    def _first_analyzer(self, cfg):
        """The configured analyzer; Laplacian-only (with ``analysis_error`` set) when the CNN
        model cannot be loaded."""
        try:
            return parts.make_analyzer(cfg)
        except ModelError as e:
            if cfg.analysis is None or not cfg.analysis.use_cnn:
                raise
            # An unattended rig keeps judging focus rather than restart-looping.
            self.analysis_error = f"CNN unavailable, running Laplacian-only: {e}"
            log.error("%s", self.analysis_error)
            return parts.make_analyzer(cfg.replace(analysis=dataclasses.replace(cfg.analysis, use_cnn=False)))

    def _start_web(self, cfg) -> None:
        """The preview hub and the web server, when ``[web] enabled`` (and not ``--no-web``)."""
        web = getattr(cfg, "web", None)
        if self.web_enabled and web is not None and web.enabled:
            from ..web.preview import PreviewHub
            from ..web.server import WebServer
            self.hub = PreviewHub(web).start()
            self.web = WebServer(self.controls, web).start()

    def _undo_start(self, outputs, analyzer) -> None:
        """Close what a failed :meth:`start` had made."""
        for part in (outputs, analyzer):
            if part is not None:
                try:
                    part.close()
                except Exception:  # keep closing the rest; the original error is raised
                    log.exception("closing %r", part)
        if self.web is not None:
            self.web.stop()
            self.web = None
        if self.hub is not None:
            self.hub.close()
            self.hub = None
        self._close_drive()
        self.pipeline = None  # nothing left to close twice

    def _loop(self) -> None:
        try:
            self.pipeline.run()
        except BaseException as e:  # reported by run(); the service exits non-zero
            self._loop_error = e
            log.error("frame loop stopped: %s", e)
        finally:
            self._stop.set()

    def request_stop(self) -> None:
        """Ask the service to stop (safe from signal handlers and any thread)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Ask for a config reload (safe from signal handlers)."""
        self._reload_requested.set()

    @property
    def stopping(self) -> bool:
        """True once a stop was requested or the frame loop ended."""
        return self._stop.is_set()

    @property
    def ready(self) -> bool:
        """True once the first frame was analysed."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Block until the first frame was analysed; False on timeout."""
        return self._ready.wait(timeout)

    def run(self, install_signals: bool = True) -> int:
        """Start, serve until SIGTERM/SIGINT (or the loop fails), shut down; returns the exit
        status (0 after a requested stop, 1 when the frame loop failed for good).

        Must be called from the main thread when ``install_signals`` is set.

        Raises:
            PiFocusError: the frame loop failed for good (e.g. the camera never came back).
        """
        old = {}
        if install_signals:
            for sig, fn in ((signal.SIGTERM, lambda *_: self.request_stop()),
                            (signal.SIGINT, lambda *_: self.request_stop()),
                            (signal.SIGHUP, lambda *_: self.request_reload())):
                old[sig] = signal.signal(sig, fn)
        try:
            self.start()
            while not self._stop.wait(0.1):
                if self._reload_requested.is_set():
                    self._reload_requested.clear()
                    self.reload()
        finally:
            self.shutdown()
            for sig, fn in old.items():
                signal.signal(sig, fn)
        if self._loop_error is not None:
            self.exit_code = 1
            if isinstance(self._loop_error, PiFocusError):
                raise self._loop_error
        return self.exit_code

    def shutdown(self, timeout: float = 1.5) -> None:
        """Stop everything within about ``timeout`` seconds: frame loop, autofocus, web
        server, drive (de-energized, position saved), source, outputs (LED off).  Idempotent."""
        if self._shutdown_done:
            return
        self._shutdown_done = True
        t0 = time.monotonic()
        self._stop.set()
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        if self.source is not None:
            self.source.cancel.set()
        if self.pipeline is not None:
            self.pipeline.stop()
        if self.web is not None:
            self.web.stop()
        if self.hub is not None:
            self.hub.close(0.3)
        for t in (self.controls.af_thread, self._loop_thread):
            if t is not None and t.is_alive():
                t.join(max(0.05, timeout - (time.monotonic() - t0) - 0.2))
        if self._loop_thread is not None and self._loop_thread.is_alive():
            log.warning("frame loop did not stop in time (camera read hung?); closing anyway")
        self._close_drive()
        if self.pipeline is not None:
            self.pipeline.close()
        self.controls.fail_captures("service stopping")
        self.notifier.close()
        log.info("stopped after %.2f s", time.monotonic() - t0)

    def _close_drive(self) -> None:
        d, self.drive = self.drive, None
        parts.close_drive(d)

    # -- frame loop hooks -------------------------------------------------------------------------
    def _on_frame(self, frame, report) -> None:
        """Pipeline listener (frame loop thread): actions, systemd, preview, captures."""
        self.actions.run_pending()
        now = time.monotonic()
        self._rate.tick(now)
        self.frame_size = (frame.width, frame.height)
        fields = []
        if not self._ready.is_set():
            self._ready.set()
            fields.append("READY=1")
            log.info("first frame analysed (%dx%d, %s); ready", frame.width, frame.height, report.mode)
        if self.heartbeat.watchdog_due(now):
            fields.append("WATCHDOG=1")
        if "READY=1" in fields:
            self.heartbeat.status_sent(now)  # systemctl status shows the first line at once
            fields.append("STATUS=" + self.status_line(report))
        elif self.heartbeat.status_due(now):
            fields.append("STATUS=" + self.status_line(report))
        if fields:
            self.notifier.notify(*fields)
        if self.hub is not None:
            self.hub.offer(frame, report)
        self.controls.serve_captures(frame)

    def _supervise(self) -> None:
        """Watchdog pings while a lost camera is being reopened (the loop is alive and
        waiting between attempts); none while a read or an open hangs."""
        while not self._stop.is_set():
            wd = self.notifier.watchdog_interval_s
            self._stop.wait(min(wd / 4, 1.0) if wd else 1.0)
            p = self.pipeline
            if p is None or self._stop.is_set() or p.error is None:
                continue
            now = time.monotonic()
            opening = self.source.opening_since
            hung = opening is not None and now - opening > (wd / 2 if wd else 5.0)
            fields = []
            if not hung and self.heartbeat.watchdog_due(now):
                fields.append("WATCHDOG=1")
            if self.heartbeat.status_due(now):
                fields.append(f"STATUS={p.error}; reopening (reconnects so far: {p.reconnects})")
            if fields:
                self.notifier.notify(*fields)

    @property
    def fps(self) -> float:
        """Frames analysed per second over the last ~2 s (0 when none)."""
        return self._rate.fps

    def status_line(self, report=None) -> str:
        """One line for systemd's ``STATUS=`` (shown by ``systemctl status``)."""
        return status_line(self, report)

    # -- reload ------------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read the config file and apply it; on any error log it and keep the old one.

        Returns True when the new config is in use.
        """
        from .. import config as cfgmod

        path = self.config_path
        self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                             "STATUS=reloading config")
        try:
            if not path:
                raise ConfigError("no config file to reload (started without --config)")
            new = (self.reload_fn or cfgmod.load)(path)
            self._apply(new)
        except Exception as e:  # whatever went wrong, the running config stays
            if not isinstance(e, PiFocusError):
                log.exception("unexpected error while reloading")
                e = f"unexpected {type(e).__name__}: {e}"
            self.reload_error = str(e)
            log.error("reload failed, keeping the running config: %s", e)
            self.notifier.notify("READY=1", f"STATUS=reload failed (old config kept): {e}")
            return False
        self.reloads += 1
        self.reload_error = None
        log.info("config reloaded from %s", path)
        self.notifier.notify("READY=1", "STATUS=" + self.status_line())
        return True

    def _apply(self, new) -> None:
        """Swap in what changed between the running config and ``new``.

        Raises:
            ConfigError, ModelError, SourceError, OutputError: the new part could not be made
                (the running parts stay).
        """
        old = self.cfg
        analyzer = parts.make_analyzer(new) if new.analysis != old.analysis else None
        new_source = None
        if new.source != old.source and self._given_source is None:
            new_source = parts.make_source(new)
        outputs_changed = new.outputs != old.outputs and not self.outputs_muted
        try:
            self.actions.call(lambda: self._swap_parts(old, new, new_source, analyzer, outputs_changed),
                              timeout=3.0, queue_on_timeout=True)
        except ServiceError:
            log.warning("no frames right now: the new config applies when frames return")
        except BaseException:
            if analyzer is not None:
                analyzer.close()
            raise
        self._apply_web(old, new)
        self.cfg = self._apply_drive(old, new)

    def _swap_parts(self, old, new, new_source, analyzer, outputs_changed: bool) -> None:
        """Frame loop thread: put the new source, analyzer and outputs in place.

        Raises:
            SourceError, PiFocusError: the new source or outputs would not open (the old ones
                are back).
        """
        p = self.pipeline
        if new_source is not None:
            current = self.source.inner
            current.close()
            try:
                new_source.open()
            except SourceError:
                current.open()
                raise
            self.source.inner = new_source
        if analyzer is not None:
            old_an, p.analyzer = p.analyzer, analyzer
            old_an.close()
            self.analysis_error = None
        if outputs_changed:
            old_out = p.outputs
            if old_out is not None:
                old_out.close()  # free the pins before claiming them again
            try:
                p.outputs = parts.make_outputs(new, self.outputs_enabled)
            except PiFocusError:
                p.outputs = parts.make_outputs(old, self.outputs_enabled)
                raise
            if p.outputs is not None and p.error:
                p.outputs.set_error(True)

    def _apply_web(self, old, new) -> None:
        """The new ``[web]`` options, except host/port/enabled (they need a restart)."""
        if new.web != old.web and self.hub is not None and new.web is not None:
            if (new.web.host, new.web.port, new.web.enabled) != (old.web.host, old.web.port, old.web.enabled):
                log.warning("web host/port/enabled changes need a restart; the rest of [web] is applied")
            self.hub.params = new.web
            self.hub.peaking = new.web.peaking
            if self.web is not None:
                self.web.params = new.web

    def _apply_drive(self, old, new):
        """Reopen the drive when ``[drive]`` changed; returns ``new``, or ``new`` with the
        old ``[drive]`` when the drive was busy and kept."""
        if getattr(new, "drive", None) == getattr(old, "drive", None):
            return new
        if not self.drive_lock.acquire(timeout=2.0):
            log.warning("drive busy (autofocus running): the [drive] change was not applied; reload again")
            return new.replace(drive=old.drive)
        try:
            self._close_drive()
            self.drive, self.drive_error = parts.open_drive(new, self.source.inner)
        finally:
            self.drive_lock.release()
        return new

    # -- controls: thin delegations to self.controls (see pifocus.controls.Controls) ---------------
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

    def capture(self, fmt: Optional[str] = None, timeout: float = 3.0) -> dict:
        """Save a full-resolution still: :meth:`ServiceControls.capture`."""
        return self.controls.capture(fmt, timeout)
