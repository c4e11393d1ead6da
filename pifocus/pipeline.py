"""The live loop: source -> analyzer -> outputs and listeners, with camera-dropout recovery.

:class:`Pipeline` is what ``pifocus run`` and the ``serve`` daemon both drive.  It owns no
threads: call :meth:`Pipeline.run` in whichever thread should do the work and
:meth:`Pipeline.stop` from any other (or a signal handler).
"""

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

from .exc import SourceDisconnected, SourceError, SourceExhausted, SourceNotFound
from .validate import require

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconnectParams:
    """Exponential backoff when a live source drops out.

    Attributes:
        initial_s: first wait before reopening, seconds.
        max_s: longest wait between attempts, seconds.
        factor: growth of the wait after each failed attempt.
        max_attempts: give up after this many failed reopen attempts (0 = never).
        missing_min_s, missing_max_s: the wait after an attempt that found no device at all
            (:class:`~pifocus.exc.SourceNotFound`: a camera that no longer enumerates), at
            least ``missing_min_s`` and growing to ``missing_max_s`` -- minutes, not seconds:
            such a camera rarely comes back without a restart, and each failed picamera2
            open leaks a file descriptor.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    max_attempts: int = 0
    missing_min_s: float = 60.0
    missing_max_s: float = 600.0

    def __post_init__(self):
        require(0 < self.initial_s <= 60, "source", "reconnect_initial_s", self.initial_s, "0 < x <= 60 s")
        require(self.initial_s <= self.max_s <= 3600, "source", "reconnect_max_s", self.max_s,
                "initial_s .. 3600 s")
        require(1.0 <= self.factor <= 10, "source", "reconnect_factor", self.factor, "1..10")
        require(0 <= int(self.max_attempts), "source", "reconnect_max_attempts", self.max_attempts, ">= 0")
        require(0 < self.missing_min_s <= self.missing_max_s <= 86400, "source", "reconnect_missing_s",
                (self.missing_min_s, self.missing_max_s), "0 < min <= max <= 86400 s")


class Pipeline:
    """Frames from ``source`` through ``analyzer`` to ``outputs`` and listeners.

    Args:
        source: a :class:`~pifocus.sources.FrameSource` (opened on :meth:`run`).
        analyzer: a :class:`~pifocus.focus.FocusAnalyzer`.
        outputs: an object with ``update(report)``, ``set_error(bool)`` and ``close()``
            (e.g. :class:`pifocus.outputs.OutputGroup`), or None.
        reconnect: backoff for live sources that drop out.

    Attributes:
        frames: frames analysed so far.
        fps: smoothed frames per second of the loop.
        last_report, last_frame: the most recent results (for status pages).
        error: text of the current error (camera lost...), ``None`` when healthy.
    """

    def __init__(self, source, analyzer, outputs=None, reconnect: ReconnectParams = ReconnectParams()):
        self.source = source
        self.analyzer = analyzer
        self.outputs = outputs
        self.reconnect = reconnect
        self.listeners: List[Callable] = []
        self.frames = 0
        self.fps = 0.0
        self.reconnects = 0
        self.last_report = None
        self.last_frame = None
        self.error: Optional[str] = None
        self._stop = threading.Event()
        self._last_t = None
        self._dt = None

    def add_listener(self, fn: Callable) -> None:
        """Call ``fn(frame, report)`` after every analysed frame (in the loop's thread:
        keep it quick, hand heavy work to another thread)."""
        self.listeners.append(fn)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current frame.  Safe from signal handlers."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` has been called."""
        return self._stop.is_set()

    def _set_error(self, text: Optional[str]) -> None:
        self.error = text
        if self.outputs is not None:
            self.outputs.set_error(text is not None)

    def _reopen(self, reason: str) -> bool:
        """Close and reopen a dropped source with exponential backoff; False if stopped or
        out of attempts."""
        r = self.reconnect
        self._set_error(f"source lost: {reason}")
        log.warning("source %s lost (%s); reopening", self.source.name, reason)
        delay, attempt = r.initial_s, 0
        while not self._stop.is_set():
            self.source.close()
            if self._stop.wait(delay):
                return False
            attempt += 1
            try:
                self.source.open()
            except SourceError as e:
                if isinstance(e, SourceNotFound):  # gone from the bus: retry in minutes
                    delay = min(max(delay * r.factor, r.missing_min_s), r.missing_max_s)
                else:
                    delay = min(delay * r.factor, r.max_s)
                log.warning("reopen attempt %d of %s failed: %s (next in %.1f s)",
                            attempt, self.source.name, e, delay)
                if r.max_attempts and attempt >= r.max_attempts:
                    return False
                continue
            self.reconnects += 1
            self._set_error(None)
            log.info("source %s back after %d attempt(s)", self.source.name, attempt)
            return True
        return False

    def step(self):
        """Read and analyse one frame; returns ``(frame, report)``.

        Raises:
            SourceExhausted, SourceDisconnected, SourceError: from the source.
        """
        frame = self.source.read()
        report = self.analyzer.analyze(frame)
        now = time.perf_counter()
        if self._last_t is not None:
            # Smooth the frame interval, not its inverse: 1/dt jumps on every jittery frame.
            dt = now - self._last_t
            self._dt = dt if self._dt is None else 0.9 * self._dt + 0.1 * dt
            self.fps = 1.0 / self._dt if self._dt > 0 else 0.0
        self._last_t = now
        self.frames += 1
        self.last_frame, self.last_report = frame, report
        if self.outputs is not None:
            self.outputs.update(report)
        for fn in list(self.listeners):
            try:
                fn(frame, report)
            except Exception:  # a broken listener must not stop the rig
                log.exception("listener %r failed", fn)
        return frame, report

    def run(self, max_frames: Optional[int] = None) -> int:
        """Run until stopped, the source ends, or ``max_frames`` frames; returns frames done.

        A live source that drops out is reopened with backoff (the outputs show the error
        pattern meanwhile).

        Raises:
            SourceError: the source failed for good (could not be opened at all, or gave up
                reconnecting).
        """
        done = 0
        self.source.open()
        while not self._stop.is_set() and (max_frames is None or done < max_frames):
            try:
                self.step()
            except SourceExhausted:
                break
            except SourceDisconnected as e:
                if not self._reopen(str(e)):
                    if self._stop.is_set():
                        break
                    raise SourceError(f"source {self.source.name!r} did not come back: {e}") from e
                continue
            done += 1
        return done

    def close(self) -> None:
        """Close source, analyzer and outputs (outputs last: LED off)."""
        self.source.close()
        self.analyzer.close()
        if self.outputs is not None:
            self.outputs.close()
