"""The source proxy between the service and the camera: it lets the daemon see reads and
reopen attempts (for the watchdog), swap the real source on reload, and cancel an autofocus
run on shutdown; :class:`AFSource`, the source as an autofocus run (single, continuous) sees
it."""

import threading
import time
from typing import Callable, Optional


class Cancelled(Exception):
    """Raised from :meth:`WatchedSource.read_for_af` to cancel an autofocus run on shutdown."""


class WatchedSource:
    """A :class:`~pifocus.sources.FrameSource` proxy that records reads and reopen attempts.

    The service hands this to the pipeline; the watchdog logic uses :attr:`last_read` and
    :attr:`opening_since` to tell a healthy reconnect (waiting between attempts) from a hung
    camera.  Every other attribute (``lens_position``, ``params``...) reaches the real source.

    Args:
        inner: the real source.
        on_read: optional ``fn(frame)`` called after every successful read (any thread).

    Attributes:
        inner: the real source (the daemon swaps it on reload).
        last_read: ``time.monotonic()`` of the last successful read, 0 before the first.
        opening_since: ``time.monotonic()`` when the running ``open()`` began, or None.
        closing_since: the same for ``close()`` (picamera2's ``stop()`` waits without a
            timeout: a close that hangs must stop the watchdog pings too).
        cancel: set on shutdown; autofocus reads then raise :class:`Cancelled`.
    """

    def __init__(self, inner, on_read: Optional[Callable] = None):
        self.inner = inner
        self.on_read = on_read
        self.last_read = 0.0
        self.opening_since: Optional[float] = None
        self.closing_since: Optional[float] = None
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
            whatever the source raises.
        """
        frame = self.inner.read()
        self.last_read = time.monotonic()
        if self.on_read is not None:
            self.on_read(frame)
        return frame

    def read_for_af(self):
        """Like :meth:`read`, but raises :class:`Cancelled` once the service is stopping."""
        if self.cancel.is_set():
            raise Cancelled()
        return self.read()

    def close(self) -> None:
        """Close the real source (timed for the watchdog)."""
        self.closing_since = time.monotonic()
        try:
            self.inner.close()
        finally:
            self.closing_since = None

    @property
    def busy_since(self) -> Optional[float]:
        """When the running ``open()`` or ``close()`` began, or None."""
        times = [t for t in (self.opening_since, self.closing_since) if t is not None]
        return min(times) if times else None


class AFSource:
    """The frame source as an autofocus run sees it: frames from the service's source,
    passed to ``on_frame`` (preview, watchdog), cancelled (:class:`Cancelled`) when the
    service stops or ``cancel`` is set."""

    def __init__(self, source, on_frame, cancel: Optional[threading.Event] = None):
        self._source = source
        self._on_frame = on_frame
        self._cancel = cancel if cancel is not None else threading.Event()
        self.name = source.name

    def read(self):
        """The next frame (raises :class:`Cancelled` once the service is stopping or the run
        was cancelled)."""
        if self._cancel.is_set():
            raise Cancelled()
        frame = self._source.read_for_af()
        self._on_frame(frame)
        return frame

    def __getattr__(self, item):
        return getattr(self._source, item)
