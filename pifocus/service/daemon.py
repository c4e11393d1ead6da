"""The ``serve`` daemon: :class:`Service` -- lifecycle, signals, systemd, supervision, reload.

:class:`Service` runs the :class:`~pifocus.pipeline.Pipeline` from a config file in a
worker thread and ties it to the rest of the rig:

* **systemd** (:mod:`.sdnotify`): ``EXTEND_TIMEOUT_USEC=`` while the drive opens (homing
  before ``READY=1`` counts against ``TimeoutStartSec``); ``READY=1`` once frames flow;
  ``WATCHDOG=1`` from the frame loop at half of ``$WATCHDOG_USEC`` -- only while frames
  flow, or while a lost camera
  is being reopened (a read, reopen or close that hangs stops the pings and systemd restarts
  the service); ``STATUS=`` lines with fps and verdict; ``RELOADING=1``/``STOPPING=1`` around
  reloads and shutdown.
* **signals**: ``SIGHUP`` reloads the config (analyzer, outputs, ROI, source, drive, web
  options, see :mod:`.reload`; a bad new config is logged and the old one kept);
  ``SIGTERM``/``SIGINT`` stop within 2 s: LED off, motor de-energized, drive position saved.
* **camera loss**: the pipeline shows the error pattern on the LED and reopens the source
  with exponential backoff; the service keeps running and resumes when frames return.
* **controls**: the daemon owns one :class:`~pifocus.service.controls.ServiceControls`
  and hands only that to the web server.  Everything that touches the analyzer or outputs
  runs in the frame loop's thread (:class:`~pifocus.service.actions.LoopActions`), so no
  lock is ever held around a frame.
* **MQTT** (``[mqtt] enabled``): a :class:`pifocus.rig.bridge.MqttBridge` gets the same
  controls, publishes the state from its own threads and answers rig commands; started
  after the web server, stopped first (a clean "offline").
"""

import contextlib
import logging
import signal
import threading
import time
from typing import Callable, Optional

from ..exc import PiFocusError
from ..pipeline import Pipeline, ReconnectParams
from . import parts
from .actions import LoopActions
from .controls import ControlShortcuts, ServiceControls
from .reload import Reloader
from .sdnotify import Heartbeat, SdNotifier, extend_timeout
from .source import WatchedSource
from .status import FrameRate, describe_outputs, status_line

# One logger for the whole service package: the journal keeps saying "pifocus.service: ...".
log = logging.getLogger("pifocus.service")


@contextlib.contextmanager
def _signal_handlers(svc):
    """SIGTERM/SIGINT stop ``svc``, SIGHUP reloads it; the previous handlers come back on
    exit.  Main thread only (Python delivers signals there)."""
    old = {}
    for sig, fn in ((signal.SIGTERM, lambda *_: svc.request_stop()),
                    (signal.SIGINT, lambda *_: svc.request_stop()),
                    (signal.SIGHUP, lambda *_: svc.request_reload())):
        old[sig] = signal.signal(sig, fn)
    try:
        yield
    finally:
        for sig, fn in old.items():
            signal.signal(sig, fn)


class Service(ControlShortcuts):
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
            server gets).  ``status()``, ``set_roi()``, ``nudge()``... on the service
            itself delegate to it (:class:`~pifocus.service.controls.ControlShortcuts`).
        hub: the :class:`~pifocus.web.preview.PreviewHub` (None without web).
        web: the :class:`~pifocus.web.server.WebServer` (None without web).
        mqtt: the :class:`~pifocus.rig.bridge.MqttBridge` (None without ``[mqtt] enabled``).
        exposure: ``(exposure_us, analogue_gain)`` of the last frame (None when unknown).
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
        self.mqtt = None
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
        self.exposure = (None, None)
        self.actions = LoopActions()
        self.controls = ServiceControls(self)
        self._reloader = Reloader(self, given_source=source is not None)
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._ready = threading.Event()
        self._loop_thread: Optional[threading.Thread] = None
        self._sup_thread: Optional[threading.Thread] = None
        self._loop_error: Optional[BaseException] = None
        self._rate = FrameRate()
        self._shutdown_done = False
        self._reload_lock = threading.Lock()

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
            analyzer, self.analysis_error = parts.make_first_analyzer(cfg)
            outputs = parts.make_outputs(cfg, self.outputs_enabled)
            self.source = WatchedSource(inner)
            self.pipeline = Pipeline(self.source, analyzer, outputs, self._reconnect_params(cfg))
            self.pipeline.add_listener(self._on_frame)
            # Opening may home the drive (minutes on a long lead screw) before READY=1.
            with extend_timeout(self.notifier, "opening the focus drive (homing)"):
                self.drive, self.drive_error = parts.open_drive(cfg, inner)
            self._start_web(cfg)
            self.mqtt = parts.make_mqtt(cfg, self.controls, self.reload if self.config_path else None,
                                        lambda: self.reload_error)
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
        if self.mqtt is not None:
            self.mqtt.stop()
            self.mqtt = None
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
        with _signal_handlers(self) if install_signals else contextlib.nullcontext():
            try:
                self.start()
                while not self._stop.wait(0.1):
                    if self._reload_requested.is_set():
                        self._reload_requested.clear()
                        self.reload()
            finally:
                self.shutdown()
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
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.web is not None:
            self.web.stop()
        if self.hub is not None:
            self.hub.close(0.3)
        for t in (self.controls.af_thread, self._loop_thread):
            if t is not None and t.is_alive():
                t.join(max(0.05, timeout - (time.monotonic() - t0) - 0.2))
        if self._loop_thread is not None and self._loop_thread.is_alive():
            log.warning("frame loop did not stop in time (camera read hung?); closing anyway")
        self._close_drive_when_idle(max(0.3, timeout - (time.monotonic() - t0)))
        if self.pipeline is not None:
            self.pipeline.close()
        self.controls.captures.fail("service stopping")
        self.notifier.close()
        log.info("stopped after %.2f s", time.monotonic() - t0)

    def _close_drive_when_idle(self, wait: float) -> None:
        """Close the drive once no move holds :attr:`drive_lock` (a nudge in an HTTP thread,
        an autofocus run), waiting up to ``wait`` seconds.  A move still running then is
        abandoned: the drive keeps it recorded as in flight (position uncertain) instead of
        saving a position the lens may not be at."""
        got = self.drive_lock.acquire(timeout=wait)
        try:
            if not got and self.drive is not None:
                log.warning("a drive move (nudge or autofocus) is still running after %.1f s; closing the "
                            "drive with its position marked uncertain", wait)
                self.drive.abandon_move()
            self._close_drive()
        finally:
            if got:
                self.drive_lock.release()

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
        self.exposure = (frame.exposure_us, frame.analogue_gain)
        first = not self._ready.is_set()
        if first:
            self._ready.set()
            log.info("first frame analysed (%dx%d, %s); ready", frame.width, frame.height, report.mode)
        self.heartbeat.frame(now, first, lambda: self.status_line(report))
        if self.hub is not None:
            self.hub.offer(frame, report)
        self.controls.captures.serve(frame)
        self.controls.loop_frame(frame, report)
        self.controls.follow_frame(frame, report)

    def _supervise(self) -> None:
        """Watchdog pings while a lost camera is being reopened (the loop is alive and
        waiting between attempts); none while a read, an open or a close hangs."""
        while not self._stop.is_set():
            wd = self.notifier.watchdog_interval_s
            self._stop.wait(min(wd / 4, 1.0) if wd else 1.0)
            p = self.pipeline
            if p is None or self._stop.is_set() or p.error is None:
                continue
            now = time.monotonic()
            busy = self.source.busy_since  # an open() or a close() (picamera2 stop()) running
            hung = busy is not None and now - busy > (wd / 2 if wd else 5.0)
            self.heartbeat.reconnecting(now, hung, f"{p.error}; reopening (reconnects so far: {p.reconnects})")

    @property
    def fps(self) -> float:
        """Frames analysed per second over the last ~2 s (0 when none)."""
        return self._rate.fps

    def status_line(self, report=None) -> str:
        """One line for systemd's ``STATUS=`` (shown by ``systemctl status``)."""
        return status_line(self, report)

    # -- reload ------------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read the config file and apply it (:class:`~pifocus.service.reload.Reloader`);
        on any error log it and keep the old one.  Returns True when the new config is in use.
        One at a time (SIGHUP, MQTT ``reload``); a changed ``[mqtt]`` applies at the next start."""
        with self._reload_lock:
            return self._reloader.reload()
