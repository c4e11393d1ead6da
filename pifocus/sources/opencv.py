"""OpenCV capture: USB/V4L2 webcams and network streams (``opencv:INDEX_OR_URL``), for desktop use.

Frames come from ``cv2.VideoCapture`` as BGR and are converted to 8-bit luma with
``cv2.COLOR_BGR2GRAY`` (Rec.601 Y); grey frames pass through.  A failed grab on an open live
device or stream raises :class:`~pifocus.exc.SourceDisconnected`, so the pipeline closes and
reopens it with backoff.  Pointed at a local video *file*, the source is finite and ends with
:class:`~pifocus.exc.SourceExhausted` (for recordings prefer the recorded source, which also
seeks and replays sweeps).
"""

import logging
import os
import re
import sys
import time
from typing import Optional, Union

from ..exc import ConfigError, SourceDisconnected, SourceError, SourceExhausted
from ..frames import Frame
from . import FrameSource

log = logging.getLogger(__name__)

_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact(url: str) -> str:
    """``url`` with any ``user:password@`` part replaced by ``***@`` (for logs and errors)."""
    return _CREDENTIALS.sub("***@", url)


class OpenCVSource(FrameSource):
    """Frames from a webcam, a V4L2 device or a stream URL through OpenCV.

    Args:
        device_or_url: a device index (``0`` or ``"0"``), a device node (``/dev/video2``), a
            stream URL (``rtsp://...``, ``http://.../stream.mjpg``) or a local video file.
        width, height: requested capture size in pixels (the device may pick the nearest it
            supports; the size actually delivered is logged).  Give both or neither.
        fps: requested frame rate (frames/s), if the device supports setting it.
        timeout_s: longest wait to open a stream URL or to read one frame from it, seconds.

    Raises:
        ConfigError: an invalid size or frame rate.
        SourceError: (on open) the device or stream cannot be opened; the message names it and
            how to check (``v4l2-ctl --list-devices``, group ``video``).
    """

    still_kinds = ("color",)

    def __init__(self, device_or_url: Union[int, str], width: Optional[int] = None,
                 height: Optional[int] = None, fps: Optional[float] = None,
                 timeout_s: float = 10.0):
        super().__init__()
        if not (0 < float(timeout_s) <= 600):
            raise ConfigError(f"opencv source: timeout_s = {timeout_s!r} is invalid; allowed 0..600 s")
        self.timeout_s = float(timeout_s)
        if isinstance(device_or_url, bool):
            raise ConfigError(f"opencv source: device {device_or_url!r} is invalid; give an index or URL")
        if isinstance(device_or_url, int) or str(device_or_url).strip().isdigit():
            self.device: Union[int, str] = int(device_or_url)
        else:
            self.device = str(device_or_url).strip()
            if not self.device:
                raise ConfigError("opencv source: empty device; give an index (opencv:0) or a URL")
        if (width is None) != (height is None):
            raise ConfigError("opencv source: give both width and height (or neither); got "
                              f"width={width!r}, height={height!r}")
        if width is not None and not (16 <= int(width) <= 16384 and 16 <= int(height) <= 16384):
            raise ConfigError(f"opencv source: size {width}x{height} is invalid; allowed 16..16384 "
                              "pixels each")
        if fps is not None and not (0 < float(fps) <= 1000):
            raise ConfigError(f"opencv source: fps = {fps!r} is invalid; allowed: 0 < fps <= 1000")
        self.width, self.height = (int(width), int(height)) if width is not None else (None, None)
        self.fps = float(fps) if fps is not None else None
        self.is_file = isinstance(self.device, str) and os.path.isfile(self.device)
        self.finite = self.is_file
        self.name = f"opencv:{self.device if isinstance(self.device, int) else redact(self.device)}"
        self._cap = None

    def _describe(self) -> str:
        if isinstance(self.device, int):
            return f"camera {self.device} (/dev/video{self.device})"
        return repr(redact(self.device))

    def _open(self) -> None:
        import cv2

        if isinstance(self.device, int) and sys.platform.startswith("linux"):
            cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
            if not cap.isOpened():
                cap.release()
                cap = cv2.VideoCapture(self.device)
        elif isinstance(self.device, str) and "://" in self.device:
            # Bounded open/read waits, so a dead stream becomes SourceDisconnected, not a hang.
            try:
                cap = cv2.VideoCapture(self.device, cv2.CAP_ANY,
                                       [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.timeout_s * 1000),
                                        cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.timeout_s * 1000)])
            except (AttributeError, TypeError, cv2.error):  # OpenCV without timeout properties
                cap = cv2.VideoCapture(self.device)
        else:
            cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            if isinstance(self.device, int) or self.device.startswith("/dev/"):
                hint = ("check that it exists (`v4l2-ctl --list-devices`, `ls -l /dev/video*`), "
                        "that your user is in group video (`sudo usermod -aG video $USER`, then log "
                        "in again), and that no other program holds it")
            elif "://" in self.device:
                hint = ("check the URL, the network and that OpenCV's FFmpeg/GStreamer backend "
                        "supports the protocol")
            else:
                hint = "no such device, file or URL; check the spelling"
            raise SourceError(f"cannot open {self.name} ({self._describe()}): {hint}")
        if self.width is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps is not None:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        if not self.is_file:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a stale queue (if supported)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if self.width is not None and (w, h) != (self.width, self.height) and w and h:
            log.warning("%s: asked for %dx%d, the device delivers %dx%d", self.name,
                        self.width, self.height, w, h)
        log.info("%s open: %dx%d @ %.1f fps", self.name, w, h, cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._cap = cap

    def _read(self) -> Frame:
        import cv2

        from .files import to_color8, to_luma8

        ok, img = self._cap.read()
        t_ns = time.monotonic_ns()
        if not ok or img is None:
            if self.is_file:
                raise SourceExhausted(f"{self.name}: end of file")
            raise SourceDisconnected(f"{self.name}: frame grab failed ({self._describe()} "
                                     "unplugged or stream interrupted?)")
        if self.is_file:
            msec = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            t_ns = int(round(msec * 1e6)) if msec and msec > 0 else int(round(self._index * 1e9 / (self.fps or 30.0)))
        try:
            luma = to_luma8(img)
            color = to_color8(img) if self.still_wanted else None  # BGR as OpenCV decoded it
        except ValueError as e:
            raise SourceError(f"{self.name}: unexpected frame format: {e}") from e
        return Frame(luma=luma, index=self._index, timestamp_ns=t_ns,
                     path=self.device if self.is_file else None, color_bgr=color)

    def _close(self) -> None:
        if self._cap is not None:
            cap, self._cap = self._cap, None
            cap.release()
