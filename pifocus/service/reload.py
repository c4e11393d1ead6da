"""``SIGHUP``: re-read the config file and swap in what changed, keeping the old config on
any error.

What a reload can change: the analysis (a new analyzer), the source (reopened), the outputs
(pins released, then claimed again), ``[web]`` (a new host or port rebinds the server, a
new ``enabled`` starts or stops it) and the focus drive (reopened when it is not moving; a
``libcamera`` drive follows a new camera source and puts its lens back where it was).
The web token rule -- a server reachable beyond localhost needs a token -- is checked
against the address actually bound; a reload that would break it is refused.  Source, analyzer and outputs
are swapped in the frame loop's thread between two frames.
"""

import logging
import time

from ..exc import ConfigError, PiFocusError, ServiceError, SourceError
from . import parts
from .sdnotify import extend_timeout

# One logger for the whole service package: the journal keeps saying "pifocus.service: ...".
log = logging.getLogger("pifocus.service")


class Reloader:
    """Reloads for one :class:`~pifocus.service.Service`.

    Args:
        svc: the daemon.  Read: ``config_path``, ``reload_fn``, ``notifier``,
            ``outputs_enabled``, ``outputs_muted``, ``pipeline``, ``source``, ``hub``,
            ``web``, ``drive_lock``, ``actions``; written: ``cfg``, ``drive``,
            ``drive_error``, ``analysis_error``, ``reloads``, ``reload_error``.
        given_source: True when the service runs on a ready-made source (tests): then a
            changed ``[source]`` is not applied.
    """

    def __init__(self, svc, given_source: bool = False):
        self._svc = svc
        self._given_source = given_source

    def reload(self) -> bool:
        """Re-read the config file and apply it; on any error log it and keep the old one.

        Sends ``RELOADING=1`` first and ``READY=1`` with a ``STATUS=`` line after, either way.
        Returns True when the new config is in use.
        """
        from .. import config as cfgmod

        svc = self._svc
        path = svc.config_path
        svc.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                            "STATUS=reloading config")
        try:
            if not path:
                raise ConfigError("no config file to reload (started without --config)")
            new = (svc.reload_fn or cfgmod.load)(path)
            self.apply(new)
        except Exception as e:  # whatever went wrong, the running config stays
            if not isinstance(e, PiFocusError):
                log.exception("unexpected error while reloading")
                e = f"unexpected {type(e).__name__}: {e}"
            svc.reload_error = str(e)
            log.error("reload failed, keeping the running config: %s", e)
            svc.notifier.notify("READY=1", f"STATUS=reload failed (old config kept): {e}")
            return False
        svc.reloads += 1
        svc.reload_error = None
        log.info("config reloaded from %s", path)
        svc.notifier.notify("READY=1", "STATUS=" + svc.status_line())
        return True

    def apply(self, new) -> None:
        """Swap in what changed between the running config and ``new``.

        Raises:
            ConfigError, ModelError, SourceError, OutputError: the new part could not be made
                (the running parts stay).
        """
        svc = self._svc
        old = svc.cfg
        analyzer = parts.make_analyzer(new) if new.analysis != old.analysis else None
        new_source = None
        if new.source != old.source and not self._given_source:
            new_source = parts.make_source(new)
        outputs_changed = new.outputs != old.outputs and not svc.outputs_muted
        try:
            web_plan = self._prepare_web(old, new)
        except BaseException:
            if analyzer is not None:
                analyzer.close()
            raise
        try:
            svc.actions.call(lambda: self._swap_parts(old, new, new_source, analyzer, outputs_changed),
                             timeout=3.0, queue_on_timeout=True)
        except ServiceError:
            log.warning("no frames right now: the new config applies when frames return")
        except BaseException:
            if analyzer is not None:
                analyzer.close()
            web_plan.abort()
            raise
        web_plan.commit()
        svc.cfg = self._apply_drive(old, new)

    def _swap_parts(self, old, new, new_source, analyzer, outputs_changed: bool) -> None:
        """Frame loop thread: put the new source, analyzer and outputs in place.

        Raises:
            SourceError, PiFocusError: the new source or outputs would not open (the old ones
                are back).
        """
        svc = self._svc
        p = svc.pipeline
        if new_source is not None:
            current = svc.source.inner
            current.close()
            try:
                new_source.open()
            except SourceError:
                current.open()
                raise
            svc.source.inner = new_source
            self._rebind_drive(current, new_source)
        if analyzer is not None:
            old_an, p.analyzer = p.analyzer, analyzer
            old_an.close()
            svc.analysis_error = None
        if outputs_changed:
            old_out = p.outputs
            if old_out is not None:
                old_out.close()  # free the pins before claiming them again
            try:
                p.outputs = parts.make_outputs(new, svc.outputs_enabled)
            except PiFocusError:
                p.outputs = parts.make_outputs(old, svc.outputs_enabled)
                raise
            if p.outputs is not None and p.error:
                p.outputs.set_error(True)

    def _rebind_drive(self, old_source, new_source) -> None:
        """A drive that works through the camera (libcamera) follows the new source; on
        failure the drive is dropped (the service runs without it and says why)."""
        svc = self._svc
        drive = svc.drive
        if drive is None or getattr(drive, "source", None) is not old_source or not hasattr(drive, "rebind"):
            return
        try:
            drive.rebind(new_source)
        except PiFocusError as e:
            log.error("focus drive not available after the source change: %s", e)
            svc.drive, svc.drive_error = None, f"drive {drive.name!r}: {e}"
            parts.close_drive(drive)

    def _prepare_web(self, old, new) -> "_WebPlan":
        """Check the new ``[web]`` against the running server and bind a new address early.

        Raises:
            ConfigError: the new address cannot be bound, or the server would stay reachable
                beyond localhost without a token (the running config stays).
        """
        from ..web.server import check_exposure

        svc = self._svc
        plan = _WebPlan(svc, new.web)
        if new.web is None or new.web == old.web:
            return plan
        if svc.web is not None and not new.web.enabled:
            plan.action = "stop"
        elif svc.web is not None and (new.web.host, new.web.port) != (old.web.host, old.web.port):
            plan.action, plan.httpd = "move", svc.web.prepare(new.web)
        elif svc.web is not None:
            host, port = svc.web.address
            check_exposure(host, port, new.web.token)
        elif new.web.enabled and svc.web_enabled:
            from ..web.server import WebServer
            plan.action, plan.server = "start", WebServer(svc.controls, new.web).bind()
        return plan

    def _apply_drive(self, old, new):
        """Reopen the drive when ``[drive]`` changed; returns ``new``, or ``new`` with the
        old ``[drive]`` when the drive was busy and kept."""
        svc = self._svc
        if getattr(new, "drive", None) == getattr(old, "drive", None):
            return new
        if not svc.drive_lock.acquire(timeout=2.0):
            log.warning("drive busy (autofocus running): the [drive] change was not applied; reload again")
            return new.replace(drive=old.drive)
        try:
            d, svc.drive = svc.drive, None
            parts.close_drive(d)
            with extend_timeout(svc.notifier, "reopening the focus drive (homing)"):
                svc.drive, svc.drive_error = parts.open_drive(new, svc.source.inner)
        finally:
            svc.drive_lock.release()
        return new


class _WebPlan:
    """What a reload does to the web server: ``action`` is None (new options only),
    ``"move"`` (rebind), ``"stop"`` or ``"start"``; ``httpd`` is a socket bound early for a
    move, ``server`` the bound new server for a start."""

    def __init__(self, svc, params):
        self.svc = svc
        self.params = params
        self.action = None
        self.httpd = None
        self.server = None

    def abort(self) -> None:
        """The reload failed elsewhere: close what was bound early."""
        if self.httpd is not None:
            self.httpd.server_close()
            self.httpd = None
        if self.server is not None:
            self.server.stop()
            self.server = None

    def commit(self) -> None:
        """Apply the new ``[web]``.

        Raises:
            ConfigError: the new address could not be bound after all (the old one serves).
        """
        svc, params = self.svc, self.params
        if params is None:
            return
        if svc.hub is not None:
            svc.hub.params = params
            svc.hub.peaking = params.peaking
        if self.action == "stop":
            log.warning("web server stopped: web.enabled = false")
            svc.web.stop()
            svc.web = None
        elif self.action == "move":
            svc.web.rebind(params, self.httpd)
        elif self.action == "start":
            if svc.hub is None:
                from ..web.preview import PreviewHub
                svc.hub = PreviewHub(params).start()
            svc.web = self.server.serve()
        elif svc.web is not None:
            svc.web.params = params
