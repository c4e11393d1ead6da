"""Blur-based judgement: the subject's blur radius, the verdict category, the meter.

Pure functions on tile arrays (tested on literal arrays).  The model's blur head estimates,
per tile, the radius in pixels of the defocus disk (pillbox) that would blur a sharp tile
into this one, and its motion head the probability that the tile is motion-blurred.  From
those:

* :func:`weighted_quantile` -- the subject's blur: the radius that ``on_fraction`` of the
  informative tile weight is at or below, so "the subject blur is within the circle of
  confusion" and "enough of the subject is sharp" are one and the same statement;
* :func:`sharp_fraction` -- that share, which the hysteresis verdict runs on;
* :func:`category` -- ``in_focus``, ``near``, ``out_of_focus``, ``motion_blur``, ``no_detail``;
* :func:`blur_meter` -- an absolute 0..1 closeness to focus (``coc / blur``), so the peak-hold
  meter cannot read 100 % on a soft first frame;
* :func:`motion_check` -- the model-free motion test (beside the motion head, if any)
  (:mod:`.blurest`) of a frame that would otherwise be called sharp.
"""

import math
from typing import Optional, Tuple

import numpy as np

from . import blurest
from .measures import roi_pixels

#: The motion test of :func:`motion_check`: :mod:`.blurest`'s defaults (which the cull uses)
#: with streaks from 3 px.  Measured (scratch script of issue 9's closing note) on the ROI of
#: real frames at the analysis scale: 269 negatives (the shared sweeps' frames within a frame
#: of the judged range, the 210 MFIFB photos' centres): none flagged; the sweeps' best frames
#: with synthetic linear motion at random angles: 3 / 5 / 7 / 9 px flagged 7 / 17 / 40 / 50 %.
#: A more sensitive ratio (1.6: 12 / 57 / 62 / 69 %) flags the sharpest frame of pcb-7, whose
#: edges are 1.87x wider across than along the traces at best focus (the optics, not motion).
MOTION_CHECK = blurest.BlurEstParams(motion_ratio=1.9, motion_min_px=3.0, motion_cells=0.7)

#: The verdict categories, from best to worst (``verdict`` in reports and JSON).
CATEGORIES = ("in_focus", "near", "out_of_focus", "motion_blur", "no_detail")
#: How each category reads to a person (CLI lines, systemd STATUS, the page).
CATEGORY_TEXT = {"in_focus": "in focus", "near": "near", "out_of_focus": "out of focus",
                 "motion_blur": "motion blur", "no_detail": "no detail"}


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value ``v`` such that the weight of values ``<= v`` is at least ``q`` of
    the total (NaN values and zero weights ignored); NaN when nothing is left.

    Args:
        values: any shape; weights: the same shape, >= 0; q: 0..1.
    """
    v = np.asarray(values, np.float64).ravel()
    w = np.asarray(weights, np.float64).ravel()
    ok = ~np.isnan(v) & (w > 0)
    if not ok.any():
        return math.nan
    v, w = v[ok], w[ok]
    order = np.argsort(v, kind="stable")
    cum = np.cumsum(w[order])
    i = int(np.searchsorted(cum, q * cum[-1] - 1e-12 * cum[-1], side="left"))
    return float(v[order][min(i, len(v) - 1)])


def sharp_fraction(blur_px: np.ndarray, weights: np.ndarray, coc_px: float,
                   exclude: Optional[np.ndarray] = None) -> float:
    """Weighted share of the judged tiles (non-NaN blur) whose blur is within ``coc_px``.

    Tiles in ``exclude`` (motion-blurred) count as judged but not sharp: a streaked tile is
    never "in focus", however small its defocus estimate.
    """
    b = np.asarray(blur_px, np.float64)
    w = np.asarray(weights, np.float64)
    judged = ~np.isnan(b)
    total = float(w[judged].sum())
    if total <= 0:
        return 0.0
    sharp = judged & (b <= coc_px)
    if exclude is not None:
        sharp &= ~np.asarray(exclude, bool)
    return float(w[sharp].sum() / total)


def motion_share(p_motion: np.ndarray, weights: np.ndarray, p_threshold: float = 0.5) -> float:
    """Weighted share of the judged tiles (non-NaN ``p_motion``) flagged as motion-blurred."""
    p = np.asarray(p_motion, np.float64)
    w = np.asarray(weights, np.float64)
    judged = ~np.isnan(p)
    total = float(w[judged].sum())
    if total <= 0:
        return 0.0
    return float(w[judged & (p >= p_threshold)].sum() / total)


def category(in_focus: bool, judgeable: bool, blur_px: float, coc_px: float, near_factor: float,
             motion: bool, meter: float = math.nan, near_meter: float = math.nan,
             near_needs_meter: bool = False) -> str:
    """The verdict category of one frame (see :data:`CATEGORIES`).

    ``in_focus`` is the debounced verdict (what the LED shows), so the category and the LED
    never disagree; the other categories describe a frame that is not in focus.  A frame
    not in focus is ``near`` when its blur is within ``near_factor x coc_px``; without a
    blur estimate (NaN ``blur_px``: a model without the blur head, Laplacian-only mode) when
    the ``meter`` (0..1, capped by the subject's in-focus probability: see the analyzer) is
    at least ``near_meter``; else ``out_of_focus``.  With ``near_needs_meter`` (the analyzer's
    ``focus_rule = "classifier"``) a frame needs both: its blur within ``near_factor x coc_px``
    *and* the meter at least ``near_meter`` -- the blur head reads the shallow flanks of a real
    focus curve (1-2 px for several frames on each side) as close, the peak-hold meter says
    how close to this pass's best.
    """
    if not judgeable:
        return "no_detail"
    if motion:
        return "motion_blur"
    if in_focus:
        return "in_focus"
    if not math.isnan(blur_px):
        close = blur_px <= near_factor * coc_px
        if close and near_needs_meter and not math.isnan(meter) and not math.isnan(near_meter):
            close = meter >= near_meter
        return "near" if close else "out_of_focus"
    if not math.isnan(meter) and not math.isnan(near_meter) and meter >= near_meter:
        return "near"
    return "out_of_focus"


def blur_meter(blur_px: float, coc_px: float) -> float:
    """Absolute closeness to focus, 0..1: 1 within the circle of confusion, ``coc / blur``
    beyond (half-way at twice the acceptable blur); NaN blur gives NaN."""
    if math.isnan(blur_px):
        return math.nan
    return float(min(1.0, coc_px / max(blur_px, 1e-6)))


def motion_check(luma: np.ndarray, roi: Tuple[float, float, float, float]) -> bool:
    """Whether the ROI of ``luma`` (the frame at the analysis scale; ``roi`` normalized
    ``x, y, w, h``) shows motion blur, by the model-free per-orientation edge widths
    (:func:`pifocus.focus.blurest.estimate_blur` with :data:`MOTION_CHECK`).  Costs tens of
    ms on a large ROI, so the analyzer runs it only on frames that would be called sharp."""
    x, y, w, h = roi_pixels(roi, luma.shape[1], luma.shape[0])
    if min(w, h) < 16:
        return False
    return bool(blurest.estimate_blur(luma[y:y + h, x:x + w], MOTION_CHECK).motion)
