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
    """

    luma: np.ndarray
    index: int = 0
    timestamp_ns: int = 0
    lens_position: Optional[float] = None
    exposure_us: Optional[int] = None
    analogue_gain: Optional[float] = None
    path: Optional[str] = None
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        luma = self.luma
        if not isinstance(luma, np.ndarray) or luma.ndim != 2 or luma.dtype != np.uint8:
            raise TypeError(
                "Frame.luma must be a 2-D uint8 array (the Y plane); got "
                f"{type(luma).__name__} {getattr(luma, 'dtype', '')} {getattr(luma, 'shape', '')}"
            )

    @property
    def height(self) -> int:
        """Rows of the luma plane, in pixels."""
        return self.luma.shape[0]

    @property
    def width(self) -> int:
        """Columns of the luma plane, in pixels."""
        return self.luma.shape[1]

    def with_luma(self, luma: np.ndarray) -> "Frame":
        """A copy of this frame's metadata around another luma array."""
        return replace(self, luma=luma)
