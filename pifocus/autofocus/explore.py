"""Where the ``dfd`` search looks besides its jumps: the bracket of the best sample, the
point that best covers the unsampled range, and the look past a peak where the 8x-reduced
measure says more of the scene comes into focus elsewhere (a bracketed local peak, or a best
at an end of the range).  Split from :mod:`pifocus.autofocus.dfd`, which uses them."""

from typing import List, Optional, Tuple

from .params import DfdParams
from .run import Sample, _Run


def _bracket(U: List[Sample]) -> Optional[Tuple[Sample, Sample, Sample]]:
    """``(left, best, right)`` when the best sample has a lower one on each side."""
    best = max(U, key=lambda u: u.score)
    i = U.index(best)
    if 0 < i < len(U) - 1:
        return U[i - 1], best, U[i + 1]
    return None


def gap_target(xs: List[float], lo: float, hi: float, res: float) -> Optional[float]:
    """Where one more sample best covers a range ``lo..hi`` sampled at ``xs`` (sorted): a
    peak between two samples is seen from both sides, one beyond the last sample from one
    side only, so an interior stretch of width ``g`` leaves at most ``g / 2`` unseen and an
    end stretch of width ``e`` leaves ``e``.  The stretch leaving most is split so both
    pieces leave the same: an interior one at its middle, an end one at two thirds of the
    way to the end.  None when no stretch is wider than a drive step.  Pure."""
    if not xs:
        return (lo + hi) / 2
    cands = []
    if xs[0] - lo > res:
        cands.append((xs[0] - lo, xs[0] - 2 * (xs[0] - lo) / 3))
    cands += [((b - a) / 2, (a + b) / 2) for a, b in zip(xs, xs[1:]) if b - a > 2 * res]
    if hi - xs[-1] > res:
        cands.append((hi - xs[-1], xs[-1] + 2 * (hi - xs[-1]) / 3))
    return max(cands)[1] if cands else None


def _largest_gap(run: _Run, U: List[Sample]) -> float:
    """The position that best covers the stretches of the range without a sample
    (:func:`gap_target`); the first sample's position when every stretch is covered."""
    xs = sorted(u.position for u in U)
    x = gap_target(xs, run.lo, run.hi, run.res)
    return xs[0] if x is None else x


def coarse_rise_side(left_8: float, best_8: float, right_8: float, rise: float) -> Optional[float]:
    """The side (-1 left, +1 right) on which the 8x-reduced measure of a bracket's neighbour
    is more than ``rise`` times the best sample's (the steeper one), or None.  Pure.

    The reduced measure sees focus from far away: a score peak where it still climbs past
    a neighbour is a local one (another plane with fine texture, a bump of the curve) with
    more of the scene coming into focus beyond it."""
    up = [(n / max(best_8, 1e-9), d) for n, d in ((left_8, -1.0), (right_8, 1.0)) if n > rise * best_8]
    return max(up)[1] if up else None


def _look_between(run: _Run, p: DfdParams, U: List[Sample], lo: float, hi: float) -> Optional[float]:
    """The point best covering the unsampled part of ``lo..hi`` (:func:`gap_target`) while a
    stretch wider than half ``explore_gap`` of the range is left there, else None."""
    xs = sorted(u.position for u in U if lo <= u.position <= hi)
    widest = max([b - a for a, b in zip(xs, xs[1:])] + [xs[0] - lo, hi - xs[-1]])
    if widest <= p.explore_gap * run.span / 2:
        return None
    return gap_target(xs, lo, hi, run.res)


def _explore_coarse(run: _Run, p: DfdParams, U: List[Sample], br) -> Optional[float]:
    """Where to look past a bracket whose 8x-reduced measure still climbs on one side
    (:func:`coarse_rise_side`): the point best covering the unsampled part of the range on
    that side, while a stretch wider than half ``explore_gap`` of the range is left there;
    None: nothing to look at."""
    left, best, right = br
    d = coarse_rise_side(left.coarse[8], best.coarse[8], right.coarse[8], p.coarse_rise)
    if d is None:
        return None
    lo, hi = (best.position, run.hi) if d > 0 else (run.lo, best.position)
    return _look_between(run, p, U, lo, hi)


def _explore_stalled(run: _Run, p: DfdParams) -> Optional[float]:
    """:func:`_explore_coarse` for the current bracket of every sample, or None."""
    U = run.unique_sorted()
    br = _bracket(U)
    return None if br is None else _explore_coarse(run, p, U, br)


def _explore_past_end(run: _Run, p: DfdParams, U: List[Sample], best: Sample,
                      direction: float) -> Optional[float]:
    """Where to look before accepting a best at the range end (``direction`` +1: the far
    end): when a sample further inside has an 8x-reduced measure more than ``coarse_rise``
    times the best's, the end holds a local peak -- another plane with fine texture (the
    other mandible's rim at the end of the beetle sweep) -- and more of the scene comes into
    focus inside; the point best covering the unsampled part of the range on that side,
    while a stretch wider than half ``explore_gap`` of the range is left there.  None:
    accept the end (the gate judges whether the curve turns over there)."""
    inside = [u for u in U if (best.position - u.position) * direction > 0]
    if not any(u.coarse[8] > p.coarse_rise * best.coarse[8] for u in inside):
        return None
    lo, hi = (run.lo, best.position) if direction > 0 else (best.position, run.hi)
    return _look_between(run, p, U, lo, hi)
