"""Bursts: photos taken within a short time of each other form a group, and the sharpest on
the subject is marked best of its group.  Pure functions on results.

* :func:`group_times` -- group indices from capture times (a new group after a gap).
* :func:`sharpness_key` -- the order "sharper on the subject" (motion, blur, edge width, CNN).
* :func:`rank_key` -- one photo's order: not rejected first, then :func:`sharpness_key`.
* :func:`burst_order` -- the order within a burst (rank sum of two subject measures).
* :func:`mark_bursts` -- set ``group``, ``group_size``, ``best`` and the rating of results
  (a RAW+JPEG pair is one shot: :func:`shot_key`).
* :func:`shared_regions` -- the one subject region every photo of a burst is judged on (the
  region of its most trusted detection, mapped by relative coordinates), so "best of the
  burst" compares like with like; :func:`reference_index`, :func:`map_box`, :func:`iou`.
"""

import math
import os
from dataclasses import replace
from typing import List, Optional, Sequence, Tuple

#: Subject kinds, most trusted first: a region found on the subject beats a fallback.
KIND_RANK = {"eyes": 3, "face": 2, "detail": 1, "centre": 0}
#: A photo whose own subject box overlaps the burst's region by at least this
#: intersection-over-union already shows that region (detector jitter): it is not scored again.
SAME_REGION_IOU = 0.9
#: Photos whose aspect ratio differs from the reference's by more than this (relative) --
#: a rotated frame, another camera -- keep their own region.
ASPECT_TOLERANCE = 0.02


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
    softest.  Rejected photos and ones with a measured motion streak (:func:`streaked`) go
    last; the rest are ordered by the sum of their ranks in two measures of the subject -- edge width (``edge_sigma_px``,
    narrow first) and the analyzer's noise-corrected Laplacian variance (``sharpness``, high
    first) -- which beats either alone on the real focus sweeps (``tools/cull_bench.py
    sweeps``); :func:`sharpness_key` (blur, edge width, CNN) breaks ties, so of two photos
    the measures disagree on, the narrower edges win (best on the MFIFB pairs)."""
    rs = list(results)
    total = [a + b for a, b in zip(_ranks([r.edge_sigma_px for r in rs]), _ranks([-r.sharpness for r in rs]))]
    return sorted(range(len(rs)), key=lambda i: (rs[i].verdict == "reject", streaked(rs[i]), total[i],
                                                 sharpness_key(rs[i])))


def streaked(r) -> bool:
    """The photo has a measured motion streak (the edge-width estimate's length), not only the
    motion head's flag.  The burst order puts such photos last; a flag from the head alone
    (``motion_px`` NaN: graded ``maybe``) does not move a photo down the order -- the head
    flags a few per cent of static, oriented textures, and in a burst that cost the sharpest
    frame its place (clear_tube_end_closeup's frame 8 on ``tools/cull_bench.py sweeps``); a
    photo the head flags rightly is softer on the order's measures anyway."""
    return bool(r.motion_blur) and math.isfinite(r.motion_px)


def shot_key(path: str) -> Tuple[str, str]:
    """The shot a file belongs to: its folder and name without the extension (case-folded),
    so a camera's RAW+JPEG pair (``IMG_0001.DNG`` + ``IMG_0001.JPG``, picamera2's DNG + JPEG)
    is one shot."""
    folder, name = os.path.split(os.path.abspath(path))
    return folder, os.path.splitext(name)[0].casefold()


def mark_bursts(results, gap_s: float) -> int:
    """Group ``results`` (:class:`~pifocus.cull.CullResult`) by time and mark the best of every
    group of two or more shots (:func:`shot_key`: the files of a RAW+JPEG pair are one shot
    and are marked together); a kept best gets rating 5.  Returns the number of groups with
    more than one shot."""
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
        if len({shot_key(r.path) for r in rs}) > 1:
            bursts += 1
            shot = shot_key(rs[burst_order(rs)[0]].path)
            for best in (r for r in rs if shot_key(r.path) == shot):
                best.best = True
                if best.verdict == "keep":
                    best.rating = 5
    return bursts


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes (0 when either is empty)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def map_box(box: Sequence[float], from_wh: Tuple[int, int], to_wh: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """``box`` (px of a ``from_wh`` photo) at the same relative place in a ``to_wh`` photo,
    kept inside it."""
    (fw, fh), (tw, th) = from_wh, to_wh
    x, y, w, h = box
    sx, sy = tw / float(fw), th / float(fh)
    w2, h2 = min(int(round(w * sx)), tw), min(int(round(h * sy)), th)
    x2 = min(max(int(round(x * sx)), 0), tw - w2)
    y2 = min(max(int(round(y * sy)), 0), th - h2)
    return x2, y2, w2, h2


def reference_index(results) -> int:
    """Index of the photo whose subject detection the burst trusts most: the best kind
    (:data:`KIND_RANK`: eyes, face, detail, centre), then the highest confidence (comparable
    within a kind), then the larger region (share of the photo), then the earlier photo."""
    def key(i):
        r = results[i]
        s = r.subject
        area = s.box_px[2] * s.box_px[3] / float(max(1, r.width * r.height))
        conf = s.confidence if math.isfinite(s.confidence) else -math.inf
        return (KIND_RANK.get(s.kind, -1), conf, area, -i)
    return max(range(len(results)), key=key)


def shared_regions(results, gap_s: float) -> List[Optional[object]]:
    """Per photo, the :class:`~pifocus.cull.Subject` it must be scored again on so that all
    photos of its burst are judged on one region, or None (already judged on it, alone, or
    of another shape).  Bursts are :func:`group_times` groups of two or more; the region is
    that of the burst's :func:`reference_index` photo, mapped by relative coordinates
    (:func:`map_box`).  A photo whose own box overlaps it by :data:`SAME_REGION_IOU` or more
    is not scored again.  The returned subjects keep the photo's own face count and name
    the reference photo in ``shared_from``.  Pure: the results are not changed."""
    groups = group_times([r.time_s for r in results], gap_s)
    members = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    out: List[Optional[object]] = [None] * len(results)
    for idx in members.values():
        if len(idx) < 2:
            continue
        ref = results[idx[reference_index([results[i] for i in idx])]]
        aspect = ref.width / float(ref.height)
        for i in idx:
            r = results[i]
            if r is ref or abs(r.width / float(r.height) / aspect - 1.0) > ASPECT_TOLERANCE:
                continue
            box = map_box(ref.subject.box_px, (ref.width, ref.height), (r.width, r.height))
            if iou(box, r.subject.box_px) >= SAME_REGION_IOU:
                continue
            out[i] = replace(ref.subject, box_px=box, faces=r.subject.faces, shared_from=ref.path)
    return out
