"""The ``sweep`` strategy: the contrast-detect baseline.

A coarse sweep over the whole range, a fine sweep over +-1 coarse step around the best
sample, then a peak fit (Gaussian = parabola in log-sharpness, or a plain parabola) through
the best samples.  Every sample is approached from the drive's approach side.  Several
dozen frames.  The model strategy uses :func:`sweep_search` for short ranges, where
sampling every position is cheapest.
"""

from typing import Optional, Tuple

from .base import Strategy
from .fit import _fit_around
from .params import SweepParams
from .run import _grid, _Run


class SweepStrategy(Strategy):
    """Coarse-to-fine contrast sweep (:class:`~pifocus.autofocus.SweepParams`)."""

    name = "sweep"
    params_field = "sweep"

    def search(self, run: _Run) -> Tuple[Optional[dict], Optional[float]]:
        """Coarse sweep, fine sweep, fit; see :func:`sweep_search`."""
        return sweep_search(run, self.params)


def sweep_search(run: _Run, p: SweepParams) -> Tuple[Optional[dict], Optional[float]]:
    """Coarse sweep upwards over the range, fine sweep around the best, fit.

    Returns ``(fit, target)`` as :meth:`Strategy.search`; the target never lies beyond the
    best sample's neighbours.
    """
    step = _coarse_pass(run, p)
    _fine_pass(run, p, step)
    return _fit_between_neighbours(run, p)


def _measure_from_approach_side(run: _Run, positions) -> None:
    """Sample ``positions`` in the order the approach side reaches them."""
    up = run.drive.params.approach_sign > 0
    for x in (positions if up else positions[::-1]):
        run.measure(x, approach=True)   # ascending on the approach side: no overshoot needed


def _coarse_pass(run: _Run, p: SweepParams) -> float:
    """``coarse_points`` samples over the whole range; returns their spacing (drive units)."""
    coarse = _grid(run.lo, run.hi, p.coarse_points, run.res)
    _measure_from_approach_side(run, coarse)
    return coarse[1] - coarse[0] if len(coarse) > 1 else run.res


def _fine_pass(run: _Run, p: SweepParams, step: float) -> None:
    """``fine_points`` samples over +-``step`` around the best sample (none when the
    coarse spacing is already the drive's resolution)."""
    best = run.best()
    if p.fine_points > 0 and step > run.res:
        fine = _grid(max(run.lo, best.position - step), min(run.hi, best.position + step),
                     p.fine_points, run.res)
        _measure_from_approach_side(run, fine)


def _fit_between_neighbours(run: _Run, p: SweepParams) -> Tuple[Optional[dict], Optional[float]]:
    """Fit through ``fit_points`` samples around the best; the target is the fitted peak,
    clamped between the best sample's neighbours (refit through three if it lands far
    off-centre)."""
    fit, best = _fit_around(run, p.fit, p.fit_points)
    target = None
    if fit is not None:
        # The fit interpolates between samples: never further than the neighbours of the best.
        srt = run.unique_sorted()
        i = srt.index(best)
        a = srt[i - 1].position if i > 0 else best.position
        b = srt[i + 1].position if i < len(srt) - 1 else best.position
        target = min(max(fit["peak"], a), b)
        if abs(target - best.position) > 0.5 * (b - a) / 2 + 1e-9:
            # A multi-peaked or skewed neighbourhood: refit with the best and its two neighbours.
            f3, _ = _fit_around(run, p.fit, 3)
            if f3 is not None:
                fit = f3
                target = min(max(f3["peak"], a), b)
    return fit, target
