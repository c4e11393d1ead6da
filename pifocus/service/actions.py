"""Work handed to the frame loop's thread: the service's threading model in one place.

Everything that touches the analyzer or the outputs (a new ROI, an analysis-mode switch,
outputs on/off, a reload, an autofocus run) is queued here by whichever thread asks (an
HTTP request, the signal loop) and run by the frame loop between two frames.  So no lock is
ever held around a frame, and the analyzer and outputs only ever see one thread.
"""

import queue
import threading
from typing import Callable, Optional

from ..exc import ServiceError


class LoopActions:
    """A queue of actions the frame loop runs between frames.

    Attributes:
        loop_thread: the frame loop's thread; a :meth:`call` from it runs at once (set by
            the daemon when it starts the loop).
    """

    def __init__(self):
        self._queue: "queue.SimpleQueue" = queue.SimpleQueue()
        self.loop_thread: Optional[threading.Thread] = None

    def run_pending(self) -> None:
        """Run every queued action (call it from the frame loop's thread, between frames).

        An action whose caller already gave up waiting is dropped, never run late; an
        action's exception goes back to its caller.
        """
        while True:
            try:
                fn, done = self._queue.get_nowait()
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

    def call(self, fn: Callable, timeout: float = 2.0, queue_on_timeout: bool = False):
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
        if threading.current_thread() is self.loop_thread:
            return fn()
        done = {"event": threading.Event(), "lock": threading.Lock(), "state": "queued"}
        self._queue.put((fn, done))
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
