"""The ``blur`` strategy: depth from defocus with the model's blur estimate.

A defocus disk's radius grows in proportion to the distance of the lens from focus, so the
subject's blur radius against lens position is a V: ``blur(x) = a |x - x*| + floor``.  Two
samples on one side of focus give the slope ``a`` and so the distance to ``x*``; a third
sample, where the first two predict focus, confirms it or (on the far side of the V) fixes
the side.  The search, as a person would describe it:

1. **look** where the lens is (:func:`_probe`) and once more a little further towards the
   side with more room (further still if the blur hardly changed);
2. **jump** (:func:`_jump_to_focus`) to where the V fitted through every sample so far
   puts focus, until the blur there is within ``near_factor`` circles of confusion;
3. **fine** (:func:`_fine`) -- one sample each side of the predicted focus, a depth of
   focus apart, approached from one side, and a contrast fit through the best three.

About 6 frames.  Without a blur estimate (a binary model or Laplacian-only mode) it runs
the ``model`` strategy instead.  Every loop is bounded by ``max_jumps``.
"""

import logging
import math
from typing import List, Optional, Tuple

import numpy as np

from .base import Strategy
from .fit import fit_peak
from .params import BlurParams
from .run import Sample, _Run

log = logging.getLogger("pifocus.autofocus")


def fit_v(xs, blurs, floor_px: float, lo: float, hi: float, n_grid: int = 401) -> Optional[Tuple[float, float, float]]:
    """Fit ``blur = a |x - c| + floor_px`` (``a > 0``) through samples; pure, vectorized.

    Candidate centres ``c`` on a grid over ``lo..hi`` (and every sample position); for each
    the least-squares slope, then the centre with the smallest squared residual.

    Returns:
        ``(c, a, rms_px)`` or None with fewer than two samples or no positive slope.
    """
    x = np.asarray(xs, np.float64)
    r = np.maximum(np.asarray(blurs, np.float64) - floor_px, 0.0)
    ok = ~np.isnan(r)
    x, r = x[ok], r[ok]
    if len(x) < 2:
        return None
    cands = np.unique(np.concatenate([np.linspace(lo, hi, n_grid), x]))
    d = np.abs(x[None, :] - cands[:, None])                 # (candidates, samples)
    den = (d * d).sum(axis=1)
    a = np.where(den > 0, (d * r[None, :]).sum(axis=1) / np.maximum(den, 1e-12), 0.0)
    res = ((a[:, None] * d - r[None, :]) ** 2).sum(axis=1)
    res[a <= 0] = np.inf
    i = int(np.argmin(res))
    if not np.isfinite(res[i]):
        return None
    return float(cands[i]), float(a[i]), float(math.sqrt(res[i] / len(x)))


class BlurStrategy(Strategy):
    """Depth-from-defocus search (:class:`~pifocus.autofocus.BlurParams`)."""

    name = "blur"
    params_field = "blur"

    def search(self, run: _Run) -> Tuple[Optional[dict], Optional[float]]:
        """Probe, jump to the V's centre, fine fit (see the module doc)."""
        p: BlurParams = self.params
        coc = float(getattr(run.analyzer.params, "coc_px", 1.0))
        first = run.here() if getattr(run.analyzer, "has_blur", False) else None
        if first is None or math.isnan(first.blur):
            # No blur estimate (a binary model, Laplacian-only mode, or a frame with nothing
            # to judge): the contrast search; the model strategy reuses the frame just read.
            log.info("autofocus: no blur estimate; using the model strategy")
            from .model import ModelStrategy
            return ModelStrategy(run.params.model).search(run)
        _probe(run, p, first)
        x_hat, slope = _jump_to_focus(run, p, coc)
        return _fine(run, p, coc, x_hat, slope)


def _v_of(run: _Run, p: BlurParams, samples: List[Sample]):
    """The V through ``samples`` with a blur estimate, or None."""
    pts = [s for s in samples if not math.isnan(s.blur)]
    return fit_v([s.position for s in pts], [s.blur for s in pts], p.blur_floor_px, run.lo, run.hi)


def _probe(run: _Run, p: BlurParams, first: Sample) -> None:
    """A second sample towards the side with more room; twice as far if the blur hardly
    changed (both samples on the flat bottom, or too far out for the model to tell)."""
    direction = 1.0 if (run.hi - first.position) >= (first.position - run.lo) else -1.0
    step = max(run.res, p.probe_step * run.span)
    for k in (1, 2):
        s = run.measure(first.position + direction * step * k)
        if abs(s.blur - first.blur) >= p.min_change_px or s.position in (run.lo, run.hi):
            return


def _predict(run: _Run, p: BlurParams) -> Tuple[float, float]:
    """Where focus is, and the V's slope (px per drive unit), from every sample so far.

    With two samples on one side of the V the fit cannot tell the side; the rule then is
    "towards the sharper sample", which is what the linear extrapolation gives.
    """
    samples = run.unique_sorted()
    v = _v_of(run, p, samples)
    best = min((s for s in samples if not math.isnan(s.blur)), key=lambda s: s.blur)
    if v is None:
        return best.position, 0.0
    c, a, _ = v
    if len(samples) == 2:
        s0, s1 = sorted(samples, key=lambda s: s.blur)            # s0 the sharper
        r0, r1 = max(s0.blur - p.blur_floor_px, 0.0), max(s1.blur - p.blur_floor_px, 0.0)
        if r1 > r0:
            a = (r1 - r0) / max(abs(s1.position - s0.position), run.res)
            c = s0.position + math.copysign(r0 / a, s0.position - s1.position)
    return min(max(c, run.lo), run.hi), a


def _jump_to_focus(run: _Run, p: BlurParams, coc: float) -> Tuple[float, float]:
    """Jump to the predicted focus until the blur there is within ``near_factor * coc``
    (at most ``max_jumps`` jumps); returns the last prediction and slope."""
    x_hat, slope = _predict(run, p)
    for _ in range(int(p.max_jumps)):
        if run.find(run.snap(x_hat)) is not None:
            break                                   # already looked there: the V will not move
        s = run.measure(x_hat)
        x_hat, slope = _predict(run, p)
        if s.blur <= p.near_factor * coc:
            break
    return x_hat, slope


def _fine(run: _Run, p: BlurParams, coc: float, x_hat: float,
          slope: float) -> Tuple[Optional[dict], Optional[float]]:
    """One sample each side of ``x_hat`` a depth of focus away (``coc / slope``), from the
    approach side, then a contrast fit through the best sample and its neighbours."""
    dof = coc / slope if slope > 0 else p.probe_step * run.span / 4
    h = max(run.res, min(p.fine_factor * dof, p.probe_step * run.span))
    if run.res >= 1:
        h = max(run.res, round(h / run.res) * run.res)
    centre = run.snap(x_hat)
    up = run.drive.params.approach_sign > 0
    pts = [centre - h, centre, centre + h]
    for x in (pts if up else pts[::-1]):
        if run.lo - run.res / 2 <= x <= run.hi + run.res / 2:
            run.measure(x, approach=True, tol=h / 4)
    near = sorted((u for u in run.unique_sorted() if abs(u.position - centre) <= 1.5 * h + run.res / 2),
                  key=lambda u: u.position)
    best = max(near, key=lambda u: u.score)
    i = near.index(best)
    if 0 < i < len(near) - 1:
        fit = fit_peak([u.position for u in near[i - 1:i + 2]], [u.score for u in near[i - 1:i + 2]], "gaussian")
        if fit is not None:
            v = _v_of(run, p, run.samples)
            if v is not None:
                fit["blur_v"] = {"centre": v[0], "slope_px": v[1], "rms_px": v[2]}
            return fit, min(max(fit["peak"], fit["x"][0]), fit["x"][-1])
    return None, best.position
