"""Bursts: photos taken within a short time of each other form a group, and the sharpest on
the subject is marked best of its group.  Pure functions on results.

* :func:`group_times` -- group indices from capture times (a new group after a gap).
* :func:`sharpness_key` -- the order "sharper on the subject" (motion, blur, edge width, CNN).
* :func:`rank_key` -- the burst order: not rejected first, then :func:`sharpness_key`.
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
    """The burst order: a rejected photo (for any reason) after every other, then
    :func:`sharpness_key`."""
    return (r.verdict == "reject",) + sharpness_key(r)


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
            best = min(rs, key=rank_key)
            best.best = True
            if best.verdict == "keep":
                best.rating = 5
    return bursts
