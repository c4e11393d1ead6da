"""Tile heat maps people can read: the frame in colour-coded tiles with a legend, the verdict,
``blur_px`` and the file name (``pifocus score --heatmap DIR``).

:func:`render_heatmap` is a pure function of the luma and its :class:`~pifocus.focus.FocusReport`
(OpenCV drawing only).  The colour scale is blue (soft) -> teal -> green (sharp), the same as
the page's heat map and never one of the peaking colours; tiles too flat or too noisy to judge
are left grey and hatched, those among them blurred one or two octaves coarser (they voted against
the in-focus share: ``FocusReport.tile_blurred``) hatched in the soft blue.
"""

import math
import os
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..validate import require
from .blur import CATEGORY_TEXT

#: BGR of the two ends of the scale: soft (p = 0) and sharp (p = 1).
SOFT_BGR = (255, 96, 0)
SHARP_BGR = (60, 200, 0)
#: Hatching of a tile not judged (grey, thin) and of a blurred one (soft blue, thick): BGR, px.
HATCH_BGR, HATCH_PX = (150, 150, 150), 1
BLURRED_HATCH_PX = 3
#: BGR of the verdict banner per verdict code.
VERDICT_BGR = {"in_focus": (60, 200, 0), "near": (0, 183, 255), "out_of_focus": (54, 65, 255),
               "motion_blur": (201, 13, 177), "no_detail": (110, 110, 110)}


@dataclass(frozen=True)
class HeatmapParams:
    """Validated parameters of a heat map image.

    Attributes:
        max_side_px: the frame is reduced so its long side is at most this (320..2048 px; a
            heat map is for looking at, not for pixel peeping: the file stays JPEG-sized).
        alpha: opacity of the tile colours over the frame (0..1).
        jpeg_quality: JPEG quality of :func:`encode_heatmap` (50..100).
    """

    max_side_px: int = 1600
    alpha: float = 0.45
    jpeg_quality: int = 85

    def __post_init__(self):
        for key, lo, hi, unit in (("max_side_px", 320, 2048, " px"), ("jpeg_quality", 50, 100, "")):
            v = getattr(self, key)
            require(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi, "heatmap", key, v,
                    f"an integer {lo}..{hi}{unit}")
        require(0.0 < self.alpha <= 1.0, "heatmap", "alpha", self.alpha, "0 < x <= 1")


#: file name endings :func:`encode_heatmap` knows, and the OpenCV extension each is written as
HEATMAP_FORMATS = {".jpg": ".jpg", ".jpeg": ".jpg", ".png": ".png"}


def encode_heatmap(img: np.ndarray, path: str, params: HeatmapParams = HeatmapParams()) -> bytes:
    """A heat map image as file bytes in the format ``path`` names: PNG for ``.png``,
    JPEG (``params.jpeg_quality``) for ``.jpg`` / ``.jpeg``.

    Raises:
        ConfigError: ``path`` ends in anything else (the message lists the endings).
        ValueError: OpenCV cannot encode the image.
    """
    import cv2

    from ..exc import ConfigError
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in HEATMAP_FORMATS:
        raise ConfigError(f"heat map {path!r}: ending {ext or '(none)'!r} is unknown; name it .jpg, .jpeg or .png")
    flags = [cv2.IMWRITE_JPEG_QUALITY, int(params.jpeg_quality)] if HEATMAP_FORMATS[ext] == ".jpg" else []
    ok, buf = cv2.imencode(HEATMAP_FORMATS[ext], img, flags)
    if not ok:
        raise ValueError(f"OpenCV cannot encode the heat map as {ext}")
    return buf.tobytes()


def tile_colour(p: float) -> Tuple[int, int, int]:
    """BGR of a tile judged in focus with probability ``p`` (0..1): soft blue to sharp green."""
    p = min(1.0, max(0.0, float(p)))
    return tuple(int(round(a + (b - a) * p)) for a, b in zip(SOFT_BGR, SHARP_BGR))


def _text(img, text, org, scale, colour=(255, 255, 255), thick=1):
    import cv2
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)


def render_heatmap(luma: np.ndarray, report, name: Optional[str] = None,
                   params: HeatmapParams = HeatmapParams()) -> np.ndarray:
    """The heat map of one judged frame as a BGR image.

    Top banner: file name, verdict (in its colour), ``blur_px`` (when the model estimates
    it), sharpness and in-focus share.  Frame: tiles tinted by in-focus probability,
    unjudged tiles hatched grey, the ROI outlined.  Bottom: the colour legend.

    Args:
        luma: the full-resolution 2-D ``uint8`` frame the report judged.
        report: its :class:`~pifocus.focus.FocusReport`.
        name: text for the banner (default: ``report.path``'s file name).
        params: :class:`HeatmapParams`.
    """
    import cv2

    h, w = luma.shape
    s = min(1.0, params.max_side_px / max(w, h))
    ow, oh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    small = cv2.resize(luma, (ow, oh), interpolation=cv2.INTER_AREA) if s < 1 else luma
    img = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
    overlay = img.copy()
    x0, y0, cw, ch = (v * s for v in report.grid_px)
    for r in range(report.rows):
        for c in range(report.cols):  # drawing only: a handful of rectangles
            p = report.tile_p[r, c]
            a = (int(round(x0 + c * cw)), int(round(y0 + r * ch)))
            b = (int(round(x0 + (c + 1) * cw)) - 1, int(round(y0 + (r + 1) * ch)) - 1)
            blurred = report.tile_blurred is not None and bool(report.tile_blurred[r, c])
            if report.tile_informative[r, c] and not np.isnan(p):
                cv2.rectangle(overlay, a, b, tile_colour(p), -1)
            else:
                # hatched grey: not judged; hatched soft blue: too flat here, blurred one
                # or two octaves coarser (it voted "not sharp")
                rect = (a[0], a[1], b[0] - a[0] + 1, b[1] - a[1] + 1)
                step = max(6, int(cw // 4))
                for k in range(-int(ch), int(cw) + 1, step):
                    ok, p1, p2 = cv2.clipLine(rect, (a[0] + k, a[1]), (a[0] + k + int(ch), a[1] + int(ch)))
                    if ok:
                        cv2.line(overlay, p1, p2, SOFT_BGR if blurred else HATCH_BGR,
                                 BLURRED_HATCH_PX if blurred else HATCH_PX)
            cv2.rectangle(img, a, b, (90, 90, 90), 1)
    img = cv2.addWeighted(overlay, params.alpha, img, 1 - params.alpha, 0)
    cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + report.cols * cw) - 1, int(y0 + report.rows * ch) - 1),
                  (255, 255, 255), max(1, ow // 640))
    fs = max(0.45, ow / 1600)
    band = int(34 * fs / 0.45 * 0.9)
    top = np.full((band * 2, ow, 3), 24, np.uint8)
    label = name or (os.path.basename(report.path) if report.path else "frame")
    _text(top, label, (8, int(band * 0.75)), fs)
    verdict = CATEGORY_TEXT.get(report.verdict, report.verdict)
    colour = VERDICT_BGR.get(report.verdict, (255, 255, 255))
    _text(top, verdict.upper(), (8, int(band * 1.75)), fs * 1.1, colour, 2)
    blur = "" if math.isnan(report.blur_px) else f"blur {report.blur_px:.2f} px (CoC {report.coc_px:g})   "
    _text(top, f"{blur}sharpness {report.sharpness:.0f}   in focus {100 * report.in_focus_fraction:.0f} %",
          (int(ow * 0.35), int(band * 1.75)), fs)
    legend = np.full((band, ow, 3), 24, np.uint8)
    lx0, lx1 = int(ow * 0.12), int(ow * 0.5)
    ramp = np.array([tile_colour(t) for t in np.linspace(0, 1, lx1 - lx0)], np.uint8)
    legend[int(band * 0.25):int(band * 0.75), lx0:lx1] = ramp[None, :, :]
    _text(legend, "soft", (max(2, lx0 - int(50 * fs / 0.45)), int(band * 0.7)), fs)
    _text(legend, "sharp", (lx1 + 6, int(band * 0.7)), fs)
    _text(legend, "hatched: too flat or noisy to judge (blue: blurred)", (lx1 + int(70 * fs / 0.45), int(band * 0.7)),
          fs * 0.8, (170, 170, 170))
    return np.vstack([top, img, legend])
