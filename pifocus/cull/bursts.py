"""Bursts: photos taken within a short time of each other form a group, and the sharpest on
the subject is marked best of its group.  Pure functions on results.

* :func:`group_times` -- group indices from capture times (a new group after a gap).
* :func:`rank_key` -- the order "sharper on the subject" (verdict, then blur, then CNN).
* :func:`mark_bursts` -- set ``group``, ``group_size``, ``best`` and the rating of results.
"""

import math
from typing import List, Sequence

from . import VERDICTS


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


def rank_key(r):
    """Sort key: smaller is sharper on the subject.  Verdict first (a keep beats a maybe),
    no motion before motion, then the smaller blur radius, then the higher CNN probability,
    then the higher sharpness."""
    blur = r.blur_px if math.isfinite(r.blur_px) else math.inf
    p = r.p_in_focus if math.isfinite(r.p_in_focus) else -1.0
    return (VERDICTS.index(r.verdict), bool(r.motion_blur), round(blur, 2), -p, -r.sharpness)


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
