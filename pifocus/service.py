"""The headless daemon behind ``pifocus serve``: the live loop, systemd, signals, the web page.

:class:`Service` runs the :class:`~pifocus.pipeline.Pipeline` from a config file in a
worker thread and ties it to the rest of the rig:

* **systemd** (:class:`SdNotifier`, the ``sd_notify`` protocol spoken directly over the
  ``$NOTIFY_SOCKET`` datagram socket, abstract ``@`` sockets included): ``READY=1`` once
  frames flow; ``WATCHDOG=1`` from the frame loop at half of ``$WATCHDOG_USEC`` -- only while
  frames flow, or while a lost camera is being reopened (a read or reopen that hangs stops
  the pings and systemd restarts the service); ``STATUS=`` lines with fps and verdict;
  ``RELOADING=1``/``STOPPING=1`` around reloads and shutdown.
* **signals**: ``SIGHUP`` reloads the config (analyzer, outputs, ROI, source, drive, web
  options; a bad new config is logged and the old one kept); ``SIGTERM``/``SIGINT`` stop
  within 2 s: LED off, motor de-energized, drive position saved.
* **camera loss**: the pipeline shows the error pattern on the LED and reopens the source
  with exponential backoff; the service keeps running and resumes when frames return.
* **controls** for the web page (:mod:`pifocus.web.server`): ROI, autofocus, nudge, capture,
  analysis mode, peaking.  Everything that touches the analyzer or outputs runs in the frame
  loop's thread (queued actions), so no lock is ever held around a frame.
"""

import collections
import dataclasses
import datetime
import logging
import math
import os
import queue
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from . import __version__
from .exc import ConfigError, DriveError, ModelError, OutputError, PiFocusError, SourceError
from .pipeline import Pipeline, ReconnectParams

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# sd_notify
# ---------------------------------------------------------------------------------------------
class SdNotifier:
    """The systemd notification protocol, without libsystemd.

    Args:
        address: the socket to notify; default ``$NOTIFY_SOCKET``.  A leading ``@`` names an
            abstract socket.  Without an address every call is a no-op.
        watchdog_usec: watchdog interval in microseconds; default ``$WATCHDOG_USEC`` when
            ``$WATCHDOG_PID`` is unset or names this process.

    Attributes:
        watchdog_interval_s: the watchdog interval in seconds, or None when systemd does not
            watch this process.
        sent: number of datagrams sent (for tests and STATUS).
    """

    def __init__(self, address: Optional[str] = None, watchdog_usec: Optional[int] = None):
        env = os.environ
        addr = env.get("NOTIFY_SOCKET", "") if address is None else address
        self.address = addr or None
        self._addr = None
        if addr:
            self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
        if watchdog_usec is None:
            pid = env.get("WATCHDOG_PID")
            usec = env.get("WATCHDOG_USEC")
            if usec and (not pid or pid == str(os.getpid())):
                try:
                    watchdog_usec = int(usec)
                except ValueError:
                    log.warning("ignoring WATCHDOG_USEC=%r: not an integer", usec)
        self.watchdog_interval_s = watchdog_usec / 1e6 if watchdog_usec and watchdog_usec > 0 else None
        self.sent = 0
        self._sock = None
        self._lock = threading.Lock()
        self._warned = False

    @property
    def enabled(self) -> bool:
        """True when a notification socket is configured."""
        return self._addr is not None

    def notify(self, *fields: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` fields (e.g. ``"READY=1"``); True if sent.

        Never raises: a failure is logged once and reported as False.
        """
        if self._addr is None or not fields:
            return False
        data = "\n".join(f.replace("\n", " ") for f in fields).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(data, self._addr)
                self.sent += 1
                return True
            except OSError as e:
                if not self._warned:
                    log.warning("sd_notify to %s failed: %s", self.address, e)
                    self._warned = True
                return False

    def close(self) -> None:
        """Close the socket (later calls reopen it)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


# ---------------------------------------------------------------------------------------------
# source wrapper: lets the service see reads and reopen attempts, swap sources, cancel AF
# ---------------------------------------------------------------------------------------------
class _Cancelled(Exception):
    """Raised from a watched source's read() to cancel an autofocus run on shutdown."""


class WatchedSource:
    """A :class:`~pifocus.sources.FrameSource` proxy that records reads and reopen attempts.

    The service hands this to the pipeline; the watchdog logic uses :attr:`last_read` and
    :attr:`opening_since` to tell a healthy reconnect (waiting between attempts) from a hung
    camera.  Every other attribute (``lens_position``, ``params``...) reaches the real source.

    Args:
        inner: the real source.
        on_read: optional ``fn(frame)`` called after every successful read (any thread).
    """

    def __init__(self, inner, on_read: Optional[Callable] = None):
        self.inner = inner
        self.on_read = on_read
        self.last_read = 0.0
        self.opening_since: Optional[float] = None
        self.cancel = threading.Event()

    @property
    def name(self) -> str:
        """The real source's name."""
        return self.inner.name

    def __getattr__(self, item):
        return getattr(self.inner, item)

    @property
    def lens_position(self):
        """The real source's lens position (sim, replay), or None."""
        return getattr(self.inner, "lens_position", None)

    @lens_position.setter
    def lens_position(self, value) -> None:
        self.inner.lens_position = value

    def open(self):
        """Open the real source (timed for the watchdog)."""
        self.opening_since = time.monotonic()
        try:
            return self.inner.open()
        finally:
            self.opening_since = None

    def read(self):
        """Read one frame from the real source.

        Raises:
            whatever the source raises; ``_Cancelled`` when the service is stopping and an
            autofocus run reads through this proxy.
        """
        frame = self.inner.read()
        self.last_read = time.monotonic()
        if self.on_read is not None:
            self.on_read(frame)
        return frame

    def read_for_af(self):
        """Like :meth:`read`, but raises ``_Cancelled`` once the service is stopping."""
        if self.cancel.is_set():
            raise _Cancelled()
        return self.read()

    def close(self) -> None:
        """Close the real source."""
        self.inner.close()


# ---------------------------------------------------------------------------------------------
# the service
# ---------------------------------------------------------------------------------------------
class _AFSource:
    """The frame source as an autofocus run sees it: frames from the service's source,
    shown on the preview, cancelled (``_Cancelled``) when the service stops."""

    def __init__(self, svc: "Service"):
        self._svc = svc
        self.name = svc.source.name

    def read(self):
        """The next frame (raises ``_Cancelled`` once the service is stopping)."""
        frame = self._svc.source.read_for_af()
        self._svc._on_af_frame(frame)
        return frame

    def __getattr__(self, item):
        return getattr(self._svc.source, item)


class ServiceError(PiFocusError):
    """A control request that cannot be carried out now.

    Attributes:
        status: the HTTP status that fits (400 bad value, 409 conflict, 503 unavailable).
    """

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _verdict_text(report) -> str:
    if report is None:
        return "waiting"
    if not report.judgeable:
        return "no detail"
    return "in focus" if report.in_focus else "out of focus"


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
        hub: the :class:`~pifocus.web.preview.PreviewHub` (None without web).
        web: the :class:`~pifocus.web.server.WebServer` (None without web).
        drive: the open focus drive, or None.
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
        self._given_source = source
        self.outputs_enabled = outputs_enabled
        self.web_enabled = web_enabled
        self.status_interval_s = status_interval_s
        self.reload_fn = reload_fn
        self.pipeline: Optional[Pipeline] = None
        self.source: Optional[WatchedSource] = None
        self.hub = None
        self.web = None
        self.drive = None
        self.drive_error: Optional[str] = None
        self.exit_code = 0
        self.reloads = 0
        self.reload_error: Optional[str] = None
        self.started = time.time()
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._ready = threading.Event()
        self._actions: "queue.SimpleQueue" = queue.SimpleQueue()
        self._captures = []
        self._captures_lock = threading.Lock()
        self._drive_lock = threading.Lock()
        self._loop_thread: Optional[threading.Thread] = None
        self._sup_thread: Optional[threading.Thread] = None
        self._loop_error: Optional[BaseException] = None
        self._last_ping = 0.0
        self._last_status = 0.0
        self._frame_size = None
        self._af_thread: Optional[threading.Thread] = None
        self.af_state = {"state": "idle"}
        self._shutdown_done = False
        self.outputs_muted = False
        self.analysis_error: Optional[str] = None
        self._frame_times = collections.deque(maxlen=256)

    # -- building blocks ------------------------------------------------------------------------
    def _make_source(self, cfg):
        from .commands._common import make_source
        return make_source(cfg)

    def _make_analyzer(self, cfg):
        from .commands._common import make_analyzer
        return make_analyzer(cfg)

    def _make_outputs(self, cfg):
        if not self.outputs_enabled or cfg.outputs is None:
            return None
        from .commands._common import make_outputs
        return make_outputs(cfg)

    def _reconnect_params(self, cfg) -> ReconnectParams:
        r = getattr(cfg, "reconnect", None)
        return r if isinstance(r, ReconnectParams) else self.reconnect

    def _open_drive(self, cfg, source):
        """The configured focus drive, opened, or None (no [drive] support in this build, a
        ``sim`` drive without the ``sim`` source, or it failed to open -- then
        :attr:`drive_error` says why)."""
        self.drive_error = None
        params = getattr(cfg, "drive", None)
        if params is None:
            return None
        try:
            from .drive import open_drive
        except ImportError:
            return None
        spec = str(getattr(params, "name", "") or "").strip()
        if spec.lower() in ("", "none", "off"):
            return None
        if spec.lower() == "sim" and type(source).__name__ != "SimulatedSource":
            self.drive_error = (f"drive 'sim' moves the simulated lens only; the source is {source.name!r} "
                                "(set [drive] name to your real drive, or 'none')")
            log.info("no focus drive: %s", self.drive_error)
            return None
        try:
            d = open_drive(spec, source=source, params=params)
            d.open()
        except (PiFocusError, ImportError) as e:
            self.drive_error = f"drive {spec!r}: {e}"
            log.error("focus drive not available: %s", e)
            return None
        log.info("focus drive %s ready at position %s", spec, _drive_position(d))
        return d

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
        inner = self._given_source if self._given_source is not None else self._make_source(cfg)
        analyzer = outputs = None
        try:
            try:
                analyzer = self._make_analyzer(cfg)
            except ModelError as e:
                if cfg.analysis is None or not cfg.analysis.use_cnn:
                    raise
                # An unattended rig keeps judging focus rather than restart-looping.
                self.analysis_error = f"CNN unavailable, running Laplacian-only: {e}"
                log.error("%s", self.analysis_error)
                analyzer = self._make_analyzer(cfg.replace(analysis=dataclasses.replace(cfg.analysis, use_cnn=False)))
            outputs = self._make_outputs(cfg)
            self.source = WatchedSource(inner)
            self.pipeline = Pipeline(self.source, analyzer, outputs, self._reconnect_params(cfg))
            self.pipeline.add_listener(self._on_frame)
            self.drive = self._open_drive(cfg, inner)
            web = getattr(cfg, "web", None)
            if self.web_enabled and web is not None and web.enabled:
                from .web.preview import PreviewHub
                from .web.server import WebServer
                self.hub = PreviewHub(web).start()
                self.web = WebServer(self, web).start()
        except BaseException:
            for part in (outputs, analyzer):
                if part is not None:
                    try:
                        part.close()
                    except Exception:
                        log.exception("closing %r", part)
            if self.web is not None:
                self.web.stop()
                self.web = None
            if self.hub is not None:
                self.hub.close()
                self.hub = None
            self._close_drive()
            self.pipeline = None  # nothing left to close twice
            raise
        self._loop_thread = threading.Thread(target=self._loop, name="pifocus-loop", daemon=True)
        self._loop_thread.start()
        self._sup_thread = threading.Thread(target=self._supervise, name="pifocus-supervisor", daemon=True)
        self._sup_thread.start()
        log.info("serving: source %s, analysis %s, outputs %s, web %s", inner.name, analyzer.mode,
                 _describe(outputs), self.web.url if self.web else "off")
        return self

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

    def wait_ready(self, timeout: float) -> bool:
        """Block until the first frame was analysed; False on timeout."""
        return self._ready.wait(timeout)

    def run(self, install_signals: bool = True) -> int:
        """Start, serve until SIGTERM/SIGINT (or the loop fails), shut down; returns the exit
        status (0 after a requested stop, 1 when the frame loop failed for good).

        Must be called from the main thread when ``install_signals`` is set.
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
        for t in (self._af_thread, self._loop_thread):
            if t is not None and t.is_alive():
                t.join(max(0.05, timeout - (time.monotonic() - t0) - 0.2))
        if self._loop_thread is not None and self._loop_thread.is_alive():
            log.warning("frame loop did not stop in time (camera read hung?); closing anyway")
        self._close_drive()
        if self.pipeline is not None:
            self.pipeline.close()
        self._fail_captures("service stopping")
        self.notifier.close()
        log.info("stopped after %.2f s", time.monotonic() - t0)

    def _close_drive(self) -> None:
        d, self.drive = self.drive, None
        if d is not None:
            try:
                d.close()  # de-energizes and saves the position
                log.info("focus drive closed at position %s", _drive_position(d))
            except Exception:
                log.exception("closing the focus drive failed")

    # -- frame loop hooks -------------------------------------------------------------------------
    def _run_actions(self) -> None:
        while True:
            try:
                fn, done = self._actions.get_nowait()
            except queue.Empty:
                return
            with done["lock"]:
                if done["state"] != "queued":
                    continue  # the caller gave up waiting: never run it late
                done["state"] = "running"
            try:
                done["result"] = fn()
            except BaseException as e:
                done["error"] = e
            done["event"].set()

    def _in_loop(self, fn: Callable, timeout: float = 2.0, queue_on_timeout: bool = False):
        """Run ``fn()`` in the frame loop's thread between frames; returns its result.

        Args:
            fn: the action.
            timeout: seconds to wait for a frame to run it with.
            queue_on_timeout: on timeout leave the action queued (it runs with the next frame);
                otherwise it is dropped.

        Raises:
            ServiceError: (503) no frame came within ``timeout``.
            whatever ``fn`` raises.
        """
        if threading.current_thread() is self._loop_thread:
            return fn()
        done = {"event": threading.Event(), "lock": threading.Lock(), "state": "queued"}
        self._actions.put((fn, done))
        if not done["event"].wait(timeout):
            with done["lock"]:
                if done["state"] == "queued":
                    if not queue_on_timeout:
                        done["state"] = "cancelled"
                    raise ServiceError("no frames from the camera right now; " +
                                       ("the change applies when frames return" if queue_on_timeout
                                        else "try again when the camera is back"), 503)
            done["event"].wait()  # it started just now: let it finish
        if "error" in done:
            raise done["error"]
        return done.get("result")

    def _on_frame(self, frame, report) -> None:
        """Pipeline listener (frame loop thread): actions, systemd, preview, captures."""
        self._run_actions()
        now = time.monotonic()
        self._frame_times.append(now)
        self._frame_size = (frame.width, frame.height)
        fields = []
        if not self._ready.is_set():
            self._ready.set()
            fields.append("READY=1")
            log.info("first frame analysed (%dx%d, %s); ready", frame.width, frame.height, report.mode)
        wd = self.notifier.watchdog_interval_s
        if wd and now - self._last_ping >= wd / 2:
            fields.append("WATCHDOG=1")
            self._last_ping = now
        if now - self._last_status >= self.status_interval_s or len(fields) and "READY=1" in fields:
            fields.append("STATUS=" + self.status_line(report))
            self._last_status = now
        if fields:
            self.notifier.notify(*fields)
        if self.hub is not None:
            self.hub.offer(frame, report)
        if self._captures:
            self._serve_captures(frame, report)

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
            if wd and not hung and now - self._last_ping >= wd / 2:
                fields.append("WATCHDOG=1")
                self._last_ping = now
            if now - self._last_status >= self.status_interval_s:
                fields.append(f"STATUS={p.error}; reopening (reconnects so far: {p.reconnects})")
                self._last_status = now
            if fields:
                self.notifier.notify(*fields)

    @property
    def fps(self) -> float:
        """Frames analysed per second over the last ~2 s (0 when none); robust to the odd
        late or early frame, unlike an average of 1/dt."""
        ts = list(self._frame_times)
        if len(ts) < 2 or time.monotonic() - ts[-1] > 2.0:
            return 0.0
        recent = [t for t in ts if t >= ts[-1] - 2.0]
        if len(recent) < 2:
            recent = ts[-2:]
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

    def status_line(self, report=None) -> str:
        """One line for systemd's ``STATUS=`` (shown by ``systemctl status``)."""
        p = self.pipeline
        report = report if report is not None else (p.last_report if p else None)
        if p is not None and p.error:
            return f"{p.error}; reopening"
        if report is None:
            return "starting"
        parts = [f"{self.fps:.1f} fps", _verdict_text(report), f"meter {report.meter:.2f}",
                 f"sharpness {report.sharpness:.0f}", report.mode]
        if self.hub is not None and self.hub.clients:
            parts.append(f"{self.hub.clients} viewer(s)")
        return ", ".join(parts)

    # -- reload ------------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read the config file and apply it; on any error log it and keep the old one.

        Returns True when the new config is in use.
        """
        from . import config as cfgmod

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
        analyzer = self._make_analyzer(new) if new.analysis != old.analysis else None
        new_source = None
        if new.source != old.source and self._given_source is None:
            new_source = self._make_source(new)
        outputs_changed = new.outputs != old.outputs and not self.outputs_muted

        def swap():
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
                    p.outputs = self._make_outputs(new)
                except PiFocusError:
                    p.outputs = self._make_outputs(old)
                    raise
                if p.outputs is not None and p.error:
                    p.outputs.set_error(True)

        try:
            self._in_loop(swap, timeout=3.0, queue_on_timeout=True)
        except ServiceError:
            log.warning("no frames right now: the new config applies when frames return")
        except BaseException:
            if analyzer is not None:
                analyzer.close()
            raise
        if new.web != old.web and self.hub is not None and new.web is not None:
            if (new.web.host, new.web.port, new.web.enabled) != (old.web.host, old.web.port, old.web.enabled):
                log.warning("web host/port/enabled changes need a restart; the rest of [web] is applied")
            self.hub.params = new.web
            self.hub.peaking = new.web.peaking
            if self.web is not None:
                self.web.params = new.web
        if getattr(new, "drive", None) != getattr(old, "drive", None):
            if self._drive_lock.acquire(timeout=2.0):
                try:
                    self._close_drive()
                    self.drive = self._open_drive(new, self.source.inner)
                finally:
                    self._drive_lock.release()
            else:
                log.warning("drive busy (autofocus running): the [drive] change was not applied; reload again")
                new = new.replace(drive=old.drive)
        self.cfg = new

    # -- controls (web API) ---------------------------------------------------------------------
    def set_roi(self, roi) -> tuple:
        """Set the subject region (normalized ``x, y, w, h``; None = default) and start a new
        focusing pass; returns the ROI in use.

        Raises:
            ServiceError: (400) bad rectangle; (503) no frames to apply it with.
        """
        if roi is not None:
            try:
                roi = tuple(float(v) for v in roi)
            except (TypeError, ValueError):
                raise ServiceError("roi must be [x, y, w, h] numbers in 0..1, or null for the default") from None
            if len(roi) != 4:
                raise ServiceError("roi must have four numbers [x, y, w, h]")
            from .focus import AnalysisParams
            try:
                dataclasses.replace(AnalysisParams(), roi=roi)
            except ConfigError as e:
                raise ServiceError(str(e)) from None

        def apply():
            self.pipeline.analyzer.set_roi(roi)
            return self.pipeline.analyzer.params.effective_roi
        return self._in_loop(apply)

    def set_analysis_mode(self, mode: str) -> str:
        """Switch between ``"cnn"`` and ``"laplacian"`` analysis; returns the mode in use.

        Raises:
            ServiceError: (400) unknown mode; (503) the CNN model cannot be loaded.
        """
        if mode not in ("cnn", "laplacian"):
            raise ServiceError(f"analysis mode {mode!r} is unknown; use 'cnn' or 'laplacian'")
        current = self.pipeline.analyzer
        if current.mode == mode:
            return mode
        params = dataclasses.replace(current.params, use_cnn=(mode == "cnn"))
        from .focus import FocusAnalyzer
        try:
            analyzer = FocusAnalyzer(params)
        except (ModelError, ImportError, OSError) as e:
            raise ServiceError(f"cannot switch to {mode}: {e}", 503) from None

        def swap():
            old, self.pipeline.analyzer = self.pipeline.analyzer, analyzer
            old.close()
            self.analysis_error = None
            return analyzer.mode
        return self._in_loop(swap)

    def set_peaking(self, on: bool) -> bool:
        """Focus peaking on the preview on/off; returns the new state."""
        if self.hub is None:
            raise ServiceError("the preview is not running", 503)
        self.hub.peaking = bool(on)
        return self.hub.peaking

    def set_outputs(self, on: bool) -> bool:
        """Switch the GPIO outputs (LED, meter, buzzer, trigger) on or off; off releases the
        pins with everything dark and silent.  Returns the new state.

        Raises:
            ServiceError: (409) outputs disabled on the command line; (503) the pins cannot
                be claimed again, or no frames to apply the change with.
        """
        if not self.outputs_enabled or self.cfg.outputs is None:
            raise ServiceError("GPIO outputs are disabled for this service (--no-outputs or no [outputs] support)", 409)
        on = bool(on)

        def apply():
            p = self.pipeline
            if on and p.outputs is None:
                p.outputs = self._make_outputs(self.cfg)
                if p.outputs is not None and p.error:
                    p.outputs.set_error(True)
            elif not on and p.outputs is not None:
                old, p.outputs = p.outputs, None
                old.close()
            self.outputs_muted = not on
            return on
        try:
            return self._in_loop(apply)
        except OutputError as e:
            raise ServiceError(f"cannot switch the outputs on: {e}", 503) from None

    def _require_drive(self):
        if self.drive is None:
            why = self.drive_error or "no focus drive configured (set [drive] in the config)"
            raise ServiceError(why, 503)
        return self.drive

    def nudge(self, steps: int) -> dict:
        """Move the focus drive by ``steps`` (signed); returns ``{"position": ...}``.

        Raises:
            ServiceError: (503) no drive; (409) autofocus running; (400) the move was refused
                (soft limit) or ``steps`` out of range.
        """
        drive = self._require_drive()
        limit = self.cfg.web.nudge_max_steps if self.cfg.web is not None else 1000
        if (not isinstance(steps, (int, float)) or isinstance(steps, bool)
                or not math.isfinite(steps) or steps != int(steps)):
            raise ServiceError("steps must be an integer")
        steps = int(steps)
        if steps == 0 or abs(steps) > limit:
            raise ServiceError(f"steps = {steps} is out of range; allowed: 1..{limit} steps either way "
                               "(web.nudge_max_steps)")
        if not self._drive_lock.acquire(blocking=False):
            raise ServiceError("the drive is busy (autofocus running)", 409)
        try:
            try:
                drive.move_by(steps)
            except DriveError as e:
                raise ServiceError(f"move refused: {e}", 400) from None
            return {"position": _drive_position(drive)}
        finally:
            self._drive_lock.release()

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
            from . import autofocus as afmod
        except ImportError:
            raise ServiceError("autofocus is not part of this pifocus build", 503) from None
        strategies = getattr(afmod, "STRATEGIES", ())
        if strategy is not None and strategy not in strategies:
            raise ServiceError(f"strategy {strategy!r} is unknown; use one of {', '.join(strategies)}")
        params = getattr(self.cfg, "autofocus", None) or afmod.AutofocusParams()
        if not self._drive_lock.acquire(blocking=False):
            raise ServiceError("autofocus is already running (or the drive is moving)", 409)
        self.af_state = {"state": "running", "strategy": strategy or params.strategy, "started": time.time()}
        self._af_thread = threading.Thread(target=self._af_worker, args=(afmod, drive, params, strategy),
                                           name="pifocus-autofocus", daemon=True)
        self._af_thread.start()
        return dict(self.af_state)

    def _af_worker(self, afmod, drive, params, strategy) -> None:
        src = _AFSource(self)

        def run():
            analyzer = self.pipeline.analyzer
            try:
                return afmod.autofocus(drive, analyzer, params, source=src, strategy=strategy)
            finally:
                analyzer.reset()  # a new focusing pass for the meter and the verdict

        try:
            result = self._in_loop(run, timeout=300)
            d = _af_result_dict(result)
            self.af_state = {"state": "done" if d.get("success", True) else "failed", "result": d,
                             "strategy": d.get("strategy", strategy)}
            log.info("autofocus %s: position %s, %s frames, %s", "succeeded" if d.get("success") else "failed",
                     d.get("final_position"), d.get("frames_used"), d.get("reason"))
        except _Cancelled:
            self.af_state = {"state": "cancelled"}
        except ServiceError as e:
            self.af_state = {"state": "failed", "error": str(e)}
        except PiFocusError as e:
            self.af_state = {"state": "failed", "error": str(e)}
            log.error("autofocus failed: %s", e)
        except Exception as e:
            self.af_state = {"state": "failed", "error": f"unexpected {type(e).__name__}: {e}"}
            log.exception("autofocus crashed")
        finally:
            self._drive_lock.release()

    def _on_af_frame(self, frame) -> None:
        """Frames read by an autofocus run: keep the preview and the watchdog going."""
        now = time.monotonic()
        wd = self.notifier.watchdog_interval_s
        fields = []
        if wd and now - self._last_ping >= wd / 2:
            fields.append("WATCHDOG=1")
            self._last_ping = now
        if now - self._last_status >= self.status_interval_s:
            fields.append("STATUS=autofocus running")
            self._last_status = now
        if fields:
            self.notifier.notify(*fields)
        if self.hub is not None:
            self.hub.offer(frame, self.pipeline.last_report)

    def capture(self, fmt: Optional[str] = None, timeout: float = 3.0) -> dict:
        """Save the next full-resolution luma frame as PNG or JPEG in the captures folder.

        Returns ``{"file", "path", "width", "height", "frame", "lens_position", "bytes"}``.

        Raises:
            ServiceError: (400) unknown format; (503) no frame within ``timeout``; (500-class
                reported as 503) the file cannot be written.
        """
        web = self.cfg.web
        fmt = (fmt or (web.capture_format if web else "png")).lower()
        if fmt == "jpeg":
            fmt = "jpg"
        if fmt not in ("png", "jpg"):
            raise ServiceError(f"format {fmt!r} is unknown; use 'png' or 'jpg'")
        req = {"event": threading.Event()}
        with self._captures_lock:
            self._captures.append(req)
        if not req["event"].wait(timeout):
            with self._captures_lock:
                if req in self._captures:
                    self._captures.remove(req)
            raise ServiceError("no frame from the camera to capture", 503)
        if "error" in req:
            raise ServiceError(req["error"], 503)
        import cv2

        frame = req["frame"]
        folder = Path(web.captures_dir if web else "captures")
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        name = f"pifocus-{stamp}-f{frame.index}.{fmt}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            ok, buf = cv2.imencode("." + fmt, frame.luma,
                                   [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpg" else [])
            if not ok:
                raise OSError("encoding failed")
            tmp = folder / (name + ".part")
            with open(tmp, "wb") as f:
                f.write(buf.tobytes())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, folder / name)
        except OSError as e:
            raise ServiceError(f"cannot write the capture into {str(folder)!r}: {e}", 503) from None
        log.info("captured %s", folder / name)
        return {"file": name, "path": str((folder / name).resolve()), "width": frame.width,
                "height": frame.height, "frame": frame.index, "lens_position": frame.lens_position,
                "bytes": len(buf)}

    def _serve_captures(self, frame, report) -> None:
        with self._captures_lock:
            reqs, self._captures = self._captures, []
        if reqs:
            snap = frame.with_luma(frame.luma.copy())
            for r in reqs:
                r["frame"] = snap
                r["event"].set()

    def _fail_captures(self, why: str) -> None:
        with self._captures_lock:
            reqs, self._captures = self._captures, []
        for r in reqs:
            r["error"] = why
            r["event"].set()

    # -- status --------------------------------------------------------------------------------------
    def status(self) -> dict:
        """Everything the page shows, JSON-ready (see ``pifocus/web/API.md``)."""
        p = self.pipeline
        report = p.last_report if p else None
        d = {
            "version": __version__,
            "uptime_s": round(time.time() - self.started, 1),
            "ready": self._ready.is_set(),
            "fps": round(self.fps, 2) if p and not p.error else 0.0,  # no frames while the camera is lost
            "frames": p.frames if p else 0,
            "reconnects": p.reconnects if p else 0,
            "error": p.error if p else None,
            "errors": [e for e in (p.error if p else None, self.drive_error, self.analysis_error,
                                   self.reload_error and f"reload failed: {self.reload_error}") if e],
            "verdict": _verdict_text(report),
            "source": self.source.name if self.source else None,
            "frame_size": list(self._frame_size) if self._frame_size else None,
            "mode": p.analyzer.mode if p else None,
            "outputs": _describe(p.outputs) if p else None,
            "outputs_on": bool(p and p.outputs is not None),
            "outputs_available": bool(self.outputs_enabled and self.cfg.outputs is not None),
        }
        if report is not None:
            r = report.to_dict(tiles=True)
            for k in ("in_focus", "sharpness", "meter", "peak_sharpness", "p_in_focus", "judgeable",
                      "in_focus_fraction", "informative_fraction", "noise_sigma_dn", "roi", "frame",
                      "lens_position", "timestamp_ns", "timings_ms"):
                d[k] = r.get(k)
            tiles = r["tiles"]
            if self._frame_size:
                w, h = self._frame_size
                x, y, cw, ch = tiles["grid_px"]
                tiles["grid"] = [round(x / w, 5), round(y / h, 5), round(cw / w, 5), round(ch / h, 5)]
            d["tiles"] = tiles
        else:
            d.update(in_focus=False, sharpness=None, meter=0.0, roi=None, tiles=None)
        drive = self.drive
        d["drive"] = {"available": drive is not None, "position": _drive_position(drive) if drive else None,
                      "busy": self._drive_lock.locked(), "error": self.drive_error}
        d["autofocus"] = dict(self.af_state)
        d["preview"] = self.hub.stats() if self.hub else None
        d["clients"] = self.hub.clients if self.hub else 0
        return d


# ---------------------------------------------------------------------------------------------
# helpers for the optional drive / autofocus modules
# ---------------------------------------------------------------------------------------------
def _describe(outputs) -> str:
    if outputs is None:
        return "none"
    fn = getattr(outputs, "describe", None)
    try:
        d = fn() if callable(fn) else type(outputs).__name__
        return "; ".join(map(str, d)) if isinstance(d, (list, tuple)) else str(d)
    except Exception:
        return type(outputs).__name__


def _drive_position(drive):
    if drive is None:
        return None
    pos = getattr(drive, "position", None)
    if callable(pos):
        pos = pos()
    try:
        return round(float(pos), 3) if pos is not None else None
    except (TypeError, ValueError):
        return None


def _af_result_dict(result) -> dict:
    if result is None:
        return {}
    for name in ("to_dict", "as_dict"):
        fn = getattr(result, name, None)
        if callable(fn):
            d = fn()
            break
    else:
        d = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else dict(vars(result))
    keep = ("final_position", "success", "reason", "frames_used", "moves", "strategy", "time_s", "elapsed_s")
    return {k: d[k] for k in keep if k in d}
