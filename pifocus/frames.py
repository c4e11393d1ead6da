"""The :class:`Frame`: one luma image plus what the camera knew when it took it."""

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Frame:
    """A luma (Y) frame and its metadata.

    Attributes:
        luma: 2-D ``uint8`` array, rows x columns.  May be a view into a camera buffer:
            copy it if you keep it beyond the next ``read()``.
        index: frame counter from the source, starting at 0.
        timestamp_ns: capture time in nanoseconds (sensor timestamp where known, else
            ``time.monotonic_ns()`` at capture).
        lens_position: lens/drive position when the frame was taken (steps, dioptres for
            libcamera lenses, or sweep index for recorded frames); ``None`` if unknown.
        exposure_us: exposure time in microseconds, ``None`` if unknown.
        analogue_gain: sensor analogue gain (1.0 = base ISO), ``None`` if unknown.
        path: the file the frame was read from, for recorded sources.
        color_bgr: the frame in colour, ``(rows, columns, 3)`` uint8 in OpenCV's B, G, R
            order, on a frame read after :meth:`~pifocus.sources.FrameSource.request_still`
            from a source that has colour; ``None`` otherwise (grey sources, live frames).
        dng: the frame as DNG file bytes (raw sensor data, picamera2 with a raw stream) on a
            frame read after ``request_still("dng")``; ``None`` otherwise.
        extra: further per-frame metadata (source specific).
    """

    luma: np.ndarray
    index: int = 0
    timestamp_ns: int = 0
    lens_position: Optional[float] = None
    exposure_us: Optional[int] = None
    analogue_gain: Optional[float] = None
    path: Optional[str] = None
    extra: dict = field(default_factory=dict, compare=False)
    color_bgr: Optional[np.ndarray] = field(default=None, compare=False, repr=False)
    dng: Optional[bytes] = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        luma = self.luma
        if not isinstance(luma, np.ndarray) or luma.ndim != 2 or luma.dtype != np.uint8:
            raise TypeError(
                "Frame.luma must be a 2-D uint8 array (the Y plane); got "
                f"{type(luma).__name__} {getattr(luma, 'dtype', '')} {getattr(luma, 'shape', '')}"
            )
        c = self.color_bgr
        if c is not None and (not isinstance(c, np.ndarray) or c.dtype != np.uint8 or c.ndim != 3
                              or c.shape != luma.shape + (3,)):
            raise TypeError(
                f"Frame.color_bgr must be a uint8 array of shape {luma.shape + (3,)} (rows, columns, "
                f"B/G/R) matching the luma; got {type(c).__name__} {getattr(c, 'dtype', '')} "
                f"{getattr(c, 'shape', '')}")

    @property
    def height(self) -> int:
        """Rows of the luma plane, in pixels."""
        return self.luma.shape[0]

    @property
    def width(self) -> int:
        """Columns of the luma plane, in pixels."""
        return self.luma.shape[1]

    def with_luma(self, luma: np.ndarray) -> "Frame":
        """A copy of this frame's metadata around another luma array (the colour image and
        DNG stay when ``luma`` has the same size, and are dropped otherwise)."""
        if luma.shape != self.luma.shape:
            return replace(self, luma=luma, color_bgr=None, dng=None)
        return replace(self, luma=luma)
