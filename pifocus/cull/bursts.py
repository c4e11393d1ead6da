"""Bursts: photos taken within a short time of each other form a group, and the sharpest on
the subject is marked best of its group.  Pure functions on results.

* :func:`group_times` -- group indices from capture times (a new group after a gap).
* :func:`sharpness_key` -- the order "sharper on the subject" (motion, blur, edge width, CNN).
* :func:`rank_key` -- one photo's order: not rejected first, then :func:`sharpness_key`.
* :func:`burst_order` -- the order within a burst (rank sum of two subject measures).
* :func:`mark_bursts` -- set ``group``, ``group_size``, ``best`` and the rating of results.
"""

import math
from typing import List, Sequence



def group_times(times_s: Sequence[float], gap_s: float) -> List[int]:
    """Group index per photo: sorted by time, a gap above ``gap_s`` starts a new group.
    A photo without a time (NaN) is a group of its own; ``gap_s`` 0 puts every photo alone.

    Raises:
        ValueError: a negative ``gap_s``.
    """
    if not gap_s >= 0:
        raise ValueError(f"gap_s = {gap_s!r} must be >= 0 seconds")
    order = sorted(range(len(times_s)), key=lambda i: (not math.isfinite(times_s[i]), times_s[i], i))
    groups = [0] * len(times_s)
    g, prev = -1, None
    for i in order:  # one pass over the photos
        t = times_s[i]
        if prev is None or not math.isfinite(t) or not math.isfinite(prev) or t - prev > gap_s or gap_s == 0:
            g += 1
        groups[i] = g
        prev = t
    return groups


def sharpness_key(r):
    """Sort key: smaller is sharper on the subject.  No motion blur before motion blur, then
    the smaller blur radius (``blur_px``), then the narrower edges (``edge_sigma_px``, which
    still tells apart photos that both read 0 px), then the higher CNN probability."""
    def fin(v, default):
        return v if v is not None and math.isfinite(v) else default
    return (bool(r.motion_blur), round(fin(r.blur_px, math.inf), 1), round(fin(r.edge_sigma_px, math.inf), 3),
            -fin(r.p_in_focus, -1.0))


def rank_key(r):
    """A photo's own order (no group context): rejected after every other, then
    :func:`sharpness_key`."""
    return (r.verdict == "reject",) + sharpness_key(r)


def _ranks(values) -> List[float]:
    """Rank of each value (0 = smallest; ties share their mean rank; NaN last)."""
    v = [x if math.isfinite(x) else math.inf for x in values]
    order = sorted(range(len(v)), key=lambda i: v[i])
    out = [0.0] * len(v)
    k = 0
    while k < len(order):  # one pass over the sorted values, ties grouped
        j = k
        while j + 1 < len(order) and v[order[j + 1]] == v[order[k]]:
            j += 1
        for i in order[k:j + 1]:
            out[i] = (k + j) / 2.0
        k = j + 1
    return out


def burst_order(results) -> List[int]:
    """Indices of ``results`` (one burst: the same scene) from sharpest on the subject to
    softest.  Rejected photos and motion-blurred ones go last; the rest are ordered by the
    sum of their ranks in two measures of the subject -- edge width (``edge_sigma_px``,
    narrow first) and the analyzer's noise-corrected Laplacian variance (``sharpness``, high
    first) -- which beats either alone on the real focus sweeps (``tools/cull_bench.py
    sweeps``); :func:`sharpness_key` (blur, edge width, CNN) breaks ties, so of two photos
    the measures disagree on, the narrower edges win (best on the MFIFB pairs)."""
    rs = list(results)
    total = [a + b for a, b in zip(_ranks([r.edge_sigma_px for r in rs]), _ranks([-r.sharpness for r in rs]))]
    return sorted(range(len(rs)), key=lambda i: (rs[i].verdict == "reject", bool(rs[i].motion_blur), total[i],
                                                 sharpness_key(rs[i])))


def mark_bursts(results, gap_s: float) -> int:
    """Group ``results`` (:class:`~pifocus.cull.CullResult`) by time and mark the best of every
    group of two or more (its rating becomes 5 when it is kept).  Returns the number of
    groups with more than one photo."""
    groups = group_times([r.time_s for r in results], gap_s)
    members = {}
    for r, g in zip(results, groups):
        r.group = g
        members.setdefault(g, []).append(r)
    bursts = 0
    for g, rs in members.items():
        for r in rs:
            r.group_size = len(rs)
            r.best = False
        if len(rs) > 1:
            bursts += 1
            best = rs[burst_order(rs)[0]]
            best.best = True
            if best.verdict == "keep":
                best.rating = 5
    return bursts
