"""Stills saved from the live loop: :class:`CaptureQueue` (an HTTP thread waits for the
next frame the loop analyses) and :func:`write_capture` (written atomically, disk-full
aware).  Used by :class:`~pifocus.service.controls.ServiceControls`.
"""

import datetime
import logging
import threading
import time
from pathlib import Path
from typing import Optional

from .. import storage
from ..exc import ServiceError, StorageError

log = logging.getLogger("pifocus.service")

#: A frame stamp further than this from ``time.monotonic_ns()`` is not on that clock.
MONOTONIC_WINDOW_NS = 600 * 10**9


class CaptureQueue:
    """Captures waiting for the next frame: an HTTP thread waits in :meth:`next_frame`, the
    frame loop hands over a copy of its frame in :meth:`serve`."""

    def __init__(self):
        self._waiting = []
        self._lock = threading.Lock()

    def next_frame(self, timeout: float, not_before_ns: Optional[int] = None):
        """A copy of the next frame the loop analyses (with ``not_before_ns``: the next one
        stamped at or after that ``time.monotonic_ns()`` time; a frame whose stamp is not on
        that clock always counts).

        Raises:
            ServiceError: (503) none within ``timeout`` seconds, or the service is stopping.
        """
        req = {"event": threading.Event(), "not_before_ns": not_before_ns}
        with self._lock:
            self._waiting.append(req)
        if not req["event"].wait(timeout):
            with self._lock:
                if req in self._waiting:
                    self._waiting.remove(req)
            raise ServiceError("no frame from the camera to capture", 503)
        if "error" in req:
            raise ServiceError(req["error"], 503)
        return req["frame"]

    def serve(self, frame) -> None:
        """Frame loop thread, every frame: hand ``frame`` to the waiting captures."""
        if not self._waiting:
            return  # the common case, without taking the lock
        ts = frame.timestamp_ns
        monotonic = abs(time.monotonic_ns() - ts) < MONOTONIC_WINDOW_NS
        with self._lock:
            reqs, later = [], []
            for r in self._waiting:
                nb = r["not_before_ns"]
                (reqs if nb is None or not monotonic or ts >= nb else later).append(r)
            self._waiting = later
        if reqs:
            snap = frame.with_luma(frame.luma.copy())  # the loop reuses its buffer
            for r in reqs:
                r["frame"] = snap
                r["event"].set()

    def fail(self, why: str) -> None:
        """Shutdown: end every waiting capture with ``ServiceError(why)`` (503)."""
        with self._lock:
            reqs, self._waiting = self._waiting, []
        for r in reqs:
            r["error"] = why
            r["event"].set()


def write_capture(frame, folder: Path, fmt: str) -> dict:
    """Write ``frame``'s luma into ``folder`` as ``fmt`` (``"png"`` or ``"jpg"``), atomically
    (:func:`pifocus.storage.atomic_write`: a ``.part`` file renamed once synced, removed
    again on any error).

    Returns ``{"file", "path", "width", "height", "frame", "lens_position", "bytes",
    "timestamp_ns"}``.

    Raises:
        ServiceError: (507) the disk is full (the message names the file); (503) the folder
            or file cannot be written otherwise.
    """
    import cv2

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    name = f"pifocus-{stamp}-f{frame.index}.{fmt}"
    ok, buf = cv2.imencode("." + fmt, frame.luma, [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpg" else [])
    if not ok:
        raise ServiceError(f"cannot encode the capture as {fmt}; use 'png'", 503)
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise storage.storage_error(e, folder) from None
        storage.atomic_write(folder / name, buf.tobytes())
    except StorageError as e:
        log.error("capture failed: %s", e)
        raise ServiceError(f"capture not saved: {e}", 507 if e.disk_full else 503) from None
    log.info("captured %s", folder / name)
    return {"file": name, "path": str((folder / name).resolve()), "width": frame.width,
            "height": frame.height, "frame": frame.index, "lens_position": frame.lens_position,
            "bytes": len(buf), "timestamp_ns": frame.timestamp_ns}
