"""One photo -> :class:`~pifocus.cull.CullResult`: the pipeline's own measures on the subject.

1. the subject region (:mod:`.subject`, or the burst's shared region given by the caller);
2. :class:`~pifocus.focus.FocusAnalyzer` on that region (tile grid, texture gate, CNN
   ``p_in_focus``; ``blur_px`` and motion when the model has the blur heads);
3. :func:`pifocus.focus.blurest.estimate_blur` on the region gives the motion streak (either
   it or the model's motion head flags motion blur) and, without the heads, the defocus radius;
4. :func:`pifocus.focus.exposure.exposure_stats` of the region (EV offset, clipping) with the
   frame's noise sigma (:func:`~pifocus.focus.exposure.noise_sigma_dn`);
5. :func:`judge`: each measure against the tolerances of :class:`~pifocus.cull.CullParams`.
"""

import math
import os
import time
from typing import List, Optional, Tuple

import numpy as np

from . import CullParams, CullResult, Subject, VERDICTS
from ..focus import blurest, exposure
from ..frames import Frame

#: ``xmp:Rating`` per verdict (the best of a burst that is kept gets 5).
RATINGS = {"keep": 4, "maybe": 2, "reject": 1}


def _grade(value: float, keep_limit: float) -> int:
    """0 = fine, 1 = maybe (past the keep limit), 2 = reject (past twice the limit)."""
    if not math.isfinite(value):
        return 0
    return 2 if value > 2.0 * keep_limit else 1 if value > keep_limit else 0


def judge(r: CullResult, p: CullParams) -> Tuple[str, List[str]]:
    """The verdict and its reasons from a result's measures and the tolerances.

    Focus: the subject's ``blur_px`` against :attr:`CullParams.keep_blur_px`; a motion streak
    against :attr:`CullParams.motion_keep_px` (motion the model's head flags without a measured
    streak: ``maybe``); a subject the CNN clearly calls soft
    (``p_in_focus`` below ``min_p_in_focus x 2 x focus``) is at best ``maybe``; no measurable blur and no CNN verdict is ``maybe`` ("no detail").
    Noise: sigma against :attr:`CullParams.noise_keep_dn`.  Exposure: the subject's
    |EV offset| against :attr:`CullParams.ev_keep`, clipped highlights/shadows against
    :attr:`CullParams.clip_keep_pct`.
    """
    grades, reasons = [], []

    def add(g, text):
        if g:
            grades.append(g)
            reasons.append(("reject: " if g == 2 else "maybe: ") + text)

    if r.motion_blur and math.isfinite(r.motion_px):
        g = max(1, _grade(r.motion_px, p.motion_keep_px))
        add(g, f"motion blur {r.motion_px:.1f} px at {r.motion_angle_deg:.0f} deg "
               f"(keep <= {p.motion_keep_px:.1f} px)")
    elif r.motion_blur:
        add(1, "motion blur (the model's motion head; no streak length measured)")
    if math.isfinite(r.blur_px):
        add(_grade(r.blur_px, p.keep_blur_px),
            f"subject blur {r.blur_px:.1f} px (keep <= {p.keep_blur_px:.1f} px)")
    elif not math.isfinite(r.p_in_focus):
        add(1, "no detail on the subject to judge focus")
    p_min = p.min_p_in_focus * 2.0 * p.focus  # the CNN judges critical focus: lenient tolerances ignore it
    if math.isfinite(r.p_in_focus) and r.p_in_focus < p_min and not grades:
        add(1, f"CNN: subject soft (p_in_focus {r.p_in_focus:.2f} < {p_min:.2f})")
    add(_grade(r.noise_sigma_dn, p.noise_keep_dn),
        f"noise sigma {r.noise_sigma_dn:.1f} DN (keep <= {p.noise_keep_dn:.1f})")
    if math.isfinite(r.ev_offset):
        add(_grade(abs(r.ev_offset), p.ev_keep),
            f"subject {'under' if r.ev_offset < 0 else 'over'}exposed {r.ev_offset:+.1f} EV "
            f"(keep within +/-{p.ev_keep:.2f})")
    add(_grade(r.clip_high_pct, p.clip_keep_pct),
        f"{r.clip_high_pct:.0f} % of the subject clipped white (keep <= {p.clip_keep_pct:.0f} %)")
    add(_grade(r.clip_low_pct, p.clip_keep_pct),
        f"{r.clip_low_pct:.0f} % of the subject crushed black (keep <= {p.clip_keep_pct:.0f} %)")
    worst = max(grades) if grades else 0
    return VERDICTS[worst], reasons


def cull_analysis(analysis):
    """The analyzer settings the cull scores with: ``analysis`` without the analyzer's own
    edge-width motion test -- :func:`score_luma` judges photos as stills (the motion head
    counts) and measures the streak itself, so that test would only repeat it."""
    from dataclasses import replace
    return replace(analysis, motion_check="off")


def file_time(path: str) -> Tuple[float, str]:
    """``(capture time s, "exif")`` from EXIF, else ``(modification time, "mtime")``."""
    from .exif import capture_time_s
    t = capture_time_s(path)
    if t is not None:
        return t, "exif"
    try:
        return os.stat(path).st_mtime, "mtime"
    except OSError:
        return math.nan, "none"


def score_luma(luma: np.ndarray, path: str, analyzer, finder, params: CullParams,
               timings=None, subject: Optional[Subject] = None) -> CullResult:
    """Score one decoded photo (2-D uint8 luma at full resolution).

    Args:
        luma: the photo's luma.
        path: its file (for the capture time and the result).
        analyzer: a :class:`~pifocus.focus.FocusAnalyzer` (its ROI is set to the subject).
        finder: a :class:`~pifocus.cull.subject.SubjectFinder`.
        params: the tolerances.
        timings: milliseconds measured before (``decode``), copied into the result.
        subject: judge this region (px of this photo: a burst's shared region) instead of
            asking ``finder``.
    """
    t = dict(timings or {})
    t0 = time.perf_counter()
    h, w = luma.shape
    subj = finder.find(luma) if subject is None else subject
    t1 = time.perf_counter()
    x, y, bw, bh = subj.box_px
    analyzer.set_roi((x / w, y / h, min(bw / w, 1.0 - x / w), min(bh / h, 1.0 - y / h)))
    rep = analyzer.analyze(Frame(luma, path=path), track=False, still=True)
    t2 = time.perf_counter()
    noise = exposure.noise_sigma_dn(luma)
    # The edge-width estimate always runs: it gives the streak's length and angle, and it
    # catches long streaks on one-orientation content that a motion head misses (either flag
    # is motion blur; the head's own flag has no length).
    est = blurest.estimate_blur(luma[y:y + bh, x:x + bw], noise_sigma_dn=noise)
    motion, motion_px, angle = est.motion, est.motion_px, est.motion_angle_deg
    sigma = est.median_sigma_px       # edge width: one of the burst order's two measures
    if analyzer.has_blur and math.isfinite(rep.blur_px_sensor):
        blur, source = rep.blur_px_sensor, "heads"
        if rep.motion_blur and not motion:
            motion, motion_px, angle = True, math.nan, math.nan
    else:
        blur, source = est.blur_px, "blurest"
    t3 = time.perf_counter()
    ex = exposure.exposure_stats(luma, roi_px=subj.box_px, noise_sigma=noise)
    t4 = time.perf_counter()
    when, src = file_time(path)
    r = CullResult(
        path=path, width=w, height=h, time_s=when, time_source=src, subject=subj,
        blur_px=float(blur), blur_source=source, edge_sigma_px=float(sigma), motion_blur=bool(motion), motion_px=float(motion_px),
        motion_angle_deg=float(angle), p_in_focus=float(rep.p_in_focus), sharpness=float(rep.sharpness),
        focus_verdict=rep.verdict, noise_sigma_dn=float(ex.noise_sigma_dn), snr_db=ex.snr_db,
        ev_offset=float(ex.ev_offset_roi), clip_high_pct=float(ex.clip_high_pct_roi),
        clip_low_pct=float(ex.clip_low_pct_roi),
        tiles={"grid_px": [int(v) for v in rep.grid_px],
               "p": [[None if math.isnan(v) else round(float(v), 3) for v in row] for row in rep.tile_p],
               "textured": [[bool(v) for v in row] for row in rep.tile_informative]})
    r.verdict, r.reasons = judge(r, params)
    r.rating = RATINGS[r.verdict]
    t.update(subject=(t1 - t0) * 1e3, analyzer=(t2 - t1) * 1e3, blur=(t3 - t2) * 1e3,
             exposure=(t4 - t3) * 1e3)
    t["total"] = sum(v for k, v in t.items() if k != "total")
    r.timings_ms = t
    return r
