"""Stills saved from the live loop: :class:`CaptureQueue` (an HTTP thread waits for the
next frame the loop analyses), :func:`write_capture` (written atomically, disk-full
aware; colour or DNG where the source gives them) and :class:`CaptureControls` (the
controls' ``capture``).  Used by :class:`~pifocus.service.controls.ServiceControls`.
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

    def next_frame(self, timeout: float, not_before_ns: Optional[int] = None, need: Optional[str] = None):
        """A copy of the next frame the loop analyses (with ``not_before_ns``: the next one
        stamped at or after that ``time.monotonic_ns()`` time; a frame whose stamp is not on
        that clock always counts; with ``need`` ``"color"`` / ``"dng"``: the next one that
        carries it, or the source's ``StillError``; frames read before the request do not).

        Raises:
            ServiceError: (503) none within ``timeout`` seconds, or the service is stopping.
        """
        req = {"event": threading.Event(), "not_before_ns": not_before_ns, "need": need}
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
                ok = (nb is None or not monotonic or ts >= nb) and _carries(frame, r["need"])
                (reqs if ok else later).append(r)
            self._waiting = later
        if reqs:
            snap = frame.with_luma(frame.luma.copy())  # the loop reuses its buffer (colour: a copy already)
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


def _carries(frame, need: Optional[str]) -> bool:
    """True when ``frame`` has what a capture needs (``None``, ``"color"``, ``"dng"``)."""
    if need is None or "StillError" in frame.extra:
        return True
    return frame.dng is not None if need == "dng" else frame.color_bgr is not None


def still_kind(fmt: str) -> str:
    """What a capture in ``fmt`` asks the source for (:meth:`FrameSource.request_still`)."""
    return "dng" if fmt == "dng" else "color"


def encode_still(frame, fmt: str) -> bytes:
    """``frame`` as file bytes: ``"png"`` / ``"jpg"`` in colour (``frame.color_bgr``) when the
    source gave it, else grey (the luma); ``"dng"`` the source's DNG (``frame.dng``).

    Raises:
        ServiceError: (409) a DNG from a frame without one (the message says how to get one);
            (503) the source's still failed (its reason) or the image cannot be encoded.
    """
    import cv2

    error = frame.extra.get("StillError")
    if fmt == "dng":
        if frame.dng is None:
            raise ServiceError("this camera gives no raw frames to save as DNG"
                               + (f" ({error})" if error else "") + "; DNG needs a picamera2 source "
                               "with [web] capture_format = \"dng\" (or [source] raw = true); "
                               "capture as 'png' or 'jpg'", 409 if error is None else 503)
        return bytes(frame.dng)
    if error is not None:
        raise ServiceError(f"the camera's colour still failed ({error}); try again", 503)
    img = frame.color_bgr if frame.color_bgr is not None else frame.luma
    ok, buf = cv2.imencode("." + fmt, img, [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpg" else [])
    if not ok:
        raise ServiceError(f"cannot encode the capture as {fmt}; use 'png'", 503)
    return buf.tobytes()


def write_capture(frame, folder: Path, fmt: str) -> dict:
    """Write ``frame`` into ``folder`` as ``fmt`` (``"png"``, ``"jpg"``: colour where the
    source gave it, else the luma; ``"dng"``: see :func:`encode_still`), atomically
    (:func:`pifocus.storage.atomic_write`: a ``.part`` file renamed once synced, removed
    again on any error).

    Returns ``{"file", "path", "width", "height", "frame", "lens_position", "bytes",
    "timestamp_ns", "color"}`` (``color``: true for a colour PNG/JPEG or a DNG).

    Raises:
        ServiceError: (507) the disk is full (the message names the file); (503) the folder
            or file cannot be written otherwise; (409) a DNG the source cannot give.
    """
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    name = f"pifocus-{stamp}-f{frame.index}.{fmt}"
    buf = encode_still(frame, fmt)
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise storage.storage_error(e, folder) from None
        storage.atomic_write(folder / name, buf)
    except StorageError as e:
        log.error("capture failed: %s", e)
        raise ServiceError(f"capture not saved: {e}", 507 if e.disk_full else 503) from None
    log.info("captured %s", folder / name)
    return {"file": name, "path": str((folder / name).resolve()), "width": frame.width,
            "height": frame.height, "frame": frame.index, "lens_position": frame.lens_position,
            "bytes": len(buf), "timestamp_ns": frame.timestamp_ns,
            "color": fmt == "dng" or frame.color_bgr is not None}


class CaptureControls:
    """The controls' part for stills (a mixin of
    :class:`~pifocus.service.controls.ServiceControls`: needs ``self._svc`` and
    ``self.captures``; call :meth:`_init_captures` from ``__init__``)."""

    def _init_captures(self) -> None:
        self._still_lock = threading.Lock()
        self._still_kinds: list = []  # the stills waiting captures asked the source for

    def capture(self, fmt: Optional[str] = None, timeout: float = 3.0, not_before_ns: Optional[int] = None) -> dict:
        """Save the next full-resolution frame as PNG or JPEG (in colour when the source has
        colour, else its luma) or DNG (picamera2 with a raw stream) in the captures folder.

        ``not_before_ns``: take the first frame stamped at or after this ``time.monotonic_ns()``
        time (a synchronised rig capture), not one read before and still being analysed.

        Returns ``{"file", "path", "width", "height", "frame", "lens_position", "bytes",
        "timestamp_ns", "color"}``.

        Raises:
            ServiceError: (400) unknown format; (409) DNG from a source without raw; (503) no
                frame within ``timeout``, or the file cannot be written.
        """
        web = self._svc.cfg.web
        fmt = (fmt or (web.capture_format if web else "png")).lower()
        if fmt == "jpeg":
            fmt = "jpg"
        if fmt not in ("png", "jpg", "dng"):
            raise ServiceError(f"format {fmt!r} is unknown; use 'png', 'jpg' or 'dng'")
        source = self._svc.source
        if source is None:
            raise ServiceError("no camera to capture from", 503)
        if fmt == "dng" and "dng" not in tuple(getattr(source, "still_kinds", ())):
            raise ServiceError("this camera gives no raw frames to save as DNG; DNG needs a picamera2 "
                               "source with [web] capture_format = \"dng\" (or [source] raw = true); "
                               "capture as 'png' or 'jpg'", 409)
        with self._still_lock:
            self._still_kinds.append(still_kind(fmt))
            source.request_still("dng" if "dng" in self._still_kinds else "color")
        try:
            need = still_kind(fmt) if still_kind(fmt) in tuple(getattr(source, "still_kinds", ())) else None
            frame = self.captures.next_frame(timeout, not_before_ns, need)
        finally:
            with self._still_lock:
                self._still_kinds.remove(still_kind(fmt))
                source.request_still(("dng" if "dng" in self._still_kinds else "color")
                                     if self._still_kinds else None)
        return write_capture(frame, Path(web.captures_dir if web else "captures"), fmt)
