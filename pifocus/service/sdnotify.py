"""systemd notifications: :class:`SdNotifier` (the ``sd_notify`` protocol) and
:class:`Heartbeat` (when the next ``WATCHDOG=1`` and ``STATUS=`` are due)."""

import logging
import os
import socket
import threading
from typing import Callable, Optional

# One logger for the whole service package: the journal keeps saying "pifocus.service: ...".
log = logging.getLogger("pifocus.service")


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


#: seconds between EXTEND_TIMEOUT_USEC messages while a slow start step (homing) runs; each
#: extends systemd's start timeout by three of these from the moment it is sent
EXTEND_STEP_S = 10.0


class extend_timeout:
    """Context manager: while its body runs (homing the focus drive before ``READY=1``),
    keep systemd's ``TimeoutStartSec`` from expiring by sending ``EXTEND_TIMEOUT_USEC=`` (3 x
    :data:`EXTEND_STEP_S` from now) at once and every :data:`EXTEND_STEP_S`, with
    ``STATUS=what``.  A no-op without a notify socket."""

    def __init__(self, notifier: "SdNotifier", what: str):
        self._n = notifier
        self._what = what
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _send(self) -> None:
        self._n.notify(f"EXTEND_TIMEOUT_USEC={int(3 * EXTEND_STEP_S * 1e6)}", f"STATUS={self._what}")

    def _run(self) -> None:
        while not self._done.wait(EXTEND_STEP_S):
            self._send()

    def __enter__(self) -> "extend_timeout":
        if self._n.enabled:
            self._send()
            self._thread = threading.Thread(target=self._run, name="pifocus-extend-timeout", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(1.0)


class Heartbeat:
    """When the next ``WATCHDOG=1`` ping and ``STATUS=`` line are due.

    Three places ping: the frame loop (every frame), an autofocus run (every frame it reads)
    and the supervisor (while a lost camera is being reopened).  They share one schedule, so
    systemd sees one ping per half watchdog interval whoever sends it.

    Args:
        notifier: the :class:`SdNotifier` to send with.
        status_interval_s: seconds between ``STATUS=`` updates.
    """

    def __init__(self, notifier: SdNotifier, status_interval_s: float = 2.0):
        self.notifier = notifier
        self.status_interval_s = status_interval_s
        self.last_ping = 0.0
        self.last_status = 0.0

    def watchdog_due(self, now: float) -> bool:
        """True (and counted as sent) when a ``WATCHDOG=1`` is due at ``now``
        (``time.monotonic()`` seconds): systemd watches us and half its interval has passed."""
        wd = self.notifier.watchdog_interval_s
        if wd and now - self.last_ping >= wd / 2:
            self.last_ping = now
            return True
        return False

    def status_due(self, now: float) -> bool:
        """True (and counted as sent) when a ``STATUS=`` update is due at ``now``."""
        if now - self.last_status >= self.status_interval_s:
            self.last_status = now
            return True
        return False

    def frame(self, now: float, first: bool, status: Callable[[], str]) -> None:
        """The frame loop analysed a frame at ``now``: ``READY=1`` on the ``first``, and the
        watchdog ping and ``STATUS=`` line (``status()``) when due -- with ``READY=1`` at once."""
        fields = ["READY=1"] if first else []
        if self.watchdog_due(now):
            fields.append("WATCHDOG=1")
        if first or self.status_due(now):
            self.last_status = now
            fields.append("STATUS=" + status())
        if fields:
            self.notifier.notify(*fields)

    def autofocus_frame(self, now: float) -> None:
        """An autofocus run read a frame at ``now`` (the frame loop waits for the run)."""
        fields = []
        if self.watchdog_due(now):
            fields.append("WATCHDOG=1")
        if self.status_due(now):
            fields.append("STATUS=autofocus running")
        if fields:
            self.notifier.notify(*fields)

    def reconnecting(self, now: float, hung: bool, status: str) -> None:
        """The camera is lost and being reopened: ping unless the reopen ``hung`` (then
        systemd's watchdog restarts us), and send ``STATUS=status`` when due."""
        fields = []
        if not hung and self.watchdog_due(now):
            fields.append("WATCHDOG=1")
        if self.status_due(now):
            fields.append("STATUS=" + status)
        if fields:
            self.notifier.notify(*fields)
