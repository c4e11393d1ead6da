"""Critical-focus aids drawn from the full-resolution luma: sensor-resolution peaking for the
overview, the magnifier ("1:1 zoom") crop, and the zebra overlay of clipped highlights.

Pure functions of numpy arrays (OpenCV calls only, which release the GIL), used by the
preview encoder (:class:`~pifocus.web.preview.PreviewHub`) and ``GET /api/zoom``.

Why sensor resolution: peaking computed on a 640 px preview of a 2028 px frame cannot see the
last fraction of a pixel of blur (each preview pixel averages ~3 x 3 sensor pixels, so a
0.8 px defocus vanishes), so its coverage hardly changes over the last few per cent of the
focus range.  Here the edges are found at sensor resolution and the mask is reduced onto the
preview: a preview pixel is painted when at least ``min_share`` of the sensor pixels under it
carry a sharp edge.
"""

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..validate import require

#: Magnifications of the zoom, in screen pixels per sensor pixel.
ZOOM_SCALES = (1, 2, 4)


@dataclass(frozen=True)
class ZoomParams:
    """Validated parameters of one magnifier view (``GET /api/zoom``).

    Attributes:
        x, y: centre of the view, normalized frame coordinates (0..1).
        scale: screen pixels per sensor pixel: 1, 2 or 4 (1 = 100 %, no downscale).
        width_px, height_px: size of the returned image in pixels.
    """

    x: float = 0.5
    y: float = 0.5
    scale: int = 1
    width_px: int = 480
    height_px: int = 360

    def __post_init__(self):
        s = "zoom"
        require(0.0 <= self.x <= 1.0, s, "x", self.x, "0..1 (fraction of the frame width)")
        require(0.0 <= self.y <= 1.0, s, "y", self.y, "0..1 (fraction of the frame height)")
        require(self.scale in ZOOM_SCALES, s, "scale", self.scale, "1, 2 or 4 (screen px per sensor px)")
        require(64 <= int(self.width_px) <= 1920, s, "width_px", self.width_px, "64..1920 px")
        require(64 <= int(self.height_px) <= 1920, s, "height_px", self.height_px, "64..1920 px")


def zoom_window(frame_w: int, frame_h: int, zp: ZoomParams) -> Tuple[int, int, int, int]:
    """The sensor rectangle ``(x0, y0, w, h)`` (px) the magnifier shows: ``width_px / scale``
    by ``height_px / scale`` sensor pixels centred on ``(x, y)``, moved inside the frame
    (and no larger than it)."""
    w = min(frame_w, max(1, int(zp.width_px) // zp.scale))
    h = min(frame_h, max(1, int(zp.height_px) // zp.scale))
    x0 = int(round(zp.x * frame_w - w / 2))
    y0 = int(round(zp.y * frame_h - h / 2))
    return min(max(x0, 0), frame_w - w), min(max(y0, 0), frame_h - h), w, h


def sensor_peaking(luma: np.ndarray, out_wh: Tuple[int, int], mask_fn, min_share: float) -> np.ndarray:
    """Peaking found at sensor resolution, reduced to ``out_wh`` (``(w, h)`` px).

    Args:
        luma: the full-resolution 2-D ``uint8`` luma.
        out_wh: size of the preview.
        mask_fn: ``fn(luma) -> 0/255 uint8 mask`` at the luma's resolution (the peaking
            rule with its threshold and noise floor).
        min_share: a preview pixel is painted when at least this share (0..1) of the sensor
            pixels it covers is painted.

    Returns:
        0/255 ``uint8`` mask of shape ``(h, w)``.
    """
    import cv2

    full = mask_fn(luma)
    w, h = out_wh
    if (w, h) == (luma.shape[1], luma.shape[0]):
        return full
    area = cv2.resize(full, (int(w), int(h)), interpolation=cv2.INTER_AREA)
    return cv2.compare(area, float(255.0 * min_share), cv2.CMP_GE)


def zebra_mask(small: np.ndarray, clip_high_dn: int, period_px: int = 8) -> np.ndarray:
    """Diagonal stripes over clipped highlights (pixels at or above ``clip_high_dn``).

    Returns:
        0/255 ``uint8`` mask of ``small``'s shape: half of every ``period_px`` diagonal band.
    """
    import cv2

    h, w = small.shape
    yy, xx = np.ogrid[:h, :w]
    stripes = ((((xx + yy) // max(1, period_px // 2)) % 2) == 0).astype(np.uint8) * 255
    return cv2.bitwise_and(cv2.compare(small, int(clip_high_dn), cv2.CMP_GE), stripes)


def paint(bgr: np.ndarray, mask: np.ndarray, colour: Tuple[int, int, int]) -> None:
    """Set the pixels of ``bgr`` under the 0/255 ``mask`` to ``colour`` (BGR), in place."""
    bgr[mask > 0] = colour


def render_zoom(luma: np.ndarray, zp: ZoomParams, mask_fn=None,
                colour: Tuple[int, int, int] = (0, 0, 255)) -> Tuple[np.ndarray, Tuple[int, int, int, int]]:
    """The magnifier image: a crop of the full-resolution ``luma`` enlarged ``zp.scale`` x
    with nearest-neighbour (each sensor pixel a ``scale x scale`` block, nothing
    interpolated), peaking from ``mask_fn`` computed on the crop at sensor resolution.

    Returns:
        ``(bgr, window)``: the image (``height_px x width_px`` or smaller for a small frame)
        and the sensor rectangle ``(x0, y0, w, h)`` it shows.
    """
    import cv2

    x0, y0, w, h = zoom_window(luma.shape[1], luma.shape[0], zp)
    crop = np.ascontiguousarray(luma[y0:y0 + h, x0:x0 + w])
    bgr = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    if mask_fn is not None:
        paint(bgr, mask_fn(crop), colour)
    if zp.scale != 1:
        bgr = cv2.resize(bgr, (w * zp.scale, h * zp.scale), interpolation=cv2.INTER_NEAREST)
    return bgr, (x0, y0, w, h)
