"""The quality gate every AF run ends with.

:func:`_gate` fails a run, with the reason a person can act on, for too little light or
texture, a flat curve, a peak at the edge of the range, no peak fit or a poor one (judged
by :func:`_quality_r2`); :func:`~pifocus.autofocus.autofocus` then returns the drive to the
best position seen.  :func:`confidence` and :func:`depth_of_focus` summarize how sure the
run is and how much focus error it tolerates (both in :class:`~pifocus.autofocus.AutofocusResult`).
"""

import math
from typing import Optional, Tuple

from .fit import fit_peak
from .params import GateParams
from .run import _Run


def _quality_r2(run: _Run, peak: float, scale: int = 8) -> Optional[float]:
    """R² of a Gaussian through the wide-range measure near the peak (None: too few samples).

    The full-resolution measure is cusp-shaped at the peak, so three points fit it exactly
    and more do not fit a parabola at all; the 8x-reduced measure is a clean Gaussian over
    +-2 sigma, and a noisy, flat or multi-peaked curve shows there as a poor fit.
    """
    top = max(u.score for u in run.samples)
    # The main lobe only: side lobes of a strong defocus (and far tails) are not the peak.
    U = [u for u in run.unique_sorted() if u.coarse_ok(scale, 5.0) and u.score >= 0.01 * top]
    # Prefer samples approached from the same side: with uncalibrated play the others sit
    # up to the backlash away from where the drive thinks they are.
    same_side = [u for u in U if u.approached]
    if len(same_side) >= 4:
        U = same_side
    elif any(u.approached for u in run.samples) and run.drive.params.backlash <= 0:
        return None  # mixed approach directions with unknown play: R² would measure the play
    if len(U) < 4:
        return None
    near = sorted(U, key=lambda u: abs(u.position - peak))[:7]

    def r2_of(value) -> float:
        f = fit_peak([u.position for u in near], [value(u) for u in near], "gaussian")
        if f is None:
            return 0.0
        inner = [u for u in near if abs(u.position - peak) <= 2.0 * f["sigma"]]
        if 4 <= len(inner) < len(near):
            f2 = fit_peak([u.position for u in inner], [value(u) for u in inner], "gaussian")
            return f2["r2"] if f2 is not None else 0.0
        return f["r2"]

    # Samples bunched close to the peak see the wide measure's flat top (noise decides its
    # curvature) but the curve value's sharp peak: a real peak fits well on one of the two,
    # a jumbled or noise-only curve on neither.
    return max(r2_of(lambda u: u.coarse[scale]), r2_of(lambda u: u.score))


def _peaks_at_edge(from_edge, beyond: float = 0.5) -> bool:
    """Does the curve peak *at* the range end (``from_edge[0]`` is the end sample, the
    rest go inwards), rather than still rising past it?

    The scores must fall inwards from the end, and a log-parabola through the end sample
    and its two inner neighbours must be concave with its vertex no further than ``beyond``
    of a step outside the range -- so the end sample is the sample nearest the peak, within
    half a step of it (a curve still climbing steeply at the limit puts it well outside:
    focus lies beyond).
    """
    if len(from_edge) < 3:
        return False
    e, n1, n2 = from_edge[:3]
    if not (e.score >= n1.score > n2.score):
        return False
    f = fit_peak([e.position, n1.position, n2.position], [e.score, n1.score, n2.score], "gaussian")
    if f is None:
        return False
    step = n1.position - e.position                      # signed: points inwards
    return (f["peak"] - e.position) / step >= -beyond


def _gate(run: _Run, fit: Optional[dict], gate: GateParams) -> Tuple[bool, str]:
    """Judge the samples of ``run`` and the peak ``fit`` against ``gate``.

    Returns ``(ok, reason)``: ``(True, "ok")``, or False and why, with what to do about
    it.  Sets ``fit["r2"]`` to the quality R² (:func:`_quality_r2`) when there are enough
    samples for it.
    """
    samples = run.unique_sorted()
    best = max(samples, key=lambda s: s.score)
    brightest = max(s.brightness for s in samples)
    if brightest < gate.min_brightness_dn:
        return False, (f"too little light: ROI mean {brightest:.1f} DN < {gate.min_brightness_dn:g}; "
                       "add light or raise exposure/gain")
    # Texture the analyzer's tile gate missed (an oversampled frame: detail only at 2x or 4x
    # reduced) is texture all the same: the reason must be true.
    coarse_detail = any(u.coarse_ok(k, DETAIL_FLOORS) for u in samples for k in (2, 4))
    if max(s.informative for s in samples) < gate.min_informative and not coarse_detail:
        return False, ("too little texture: no part of the ROI has detail above the noise at any "
                       "position; aim at a detailed subject or move the ROI (--roi)")
    lo_score = min(s.score for s in samples)
    ratio = (best.score + 1.0) / (lo_score + 1.0)
    if len(samples) >= 3 and ratio < gate.flat_ratio:
        return False, (f"flat focus curve: best/worst score {ratio:.2f} < {gate.flat_ratio:g}; "
                       "nothing in the ROI changes with focus")
    at_lo = best.position <= samples[0].position + run.res / 2 and samples[0].position <= run.lo + run.res / 2
    at_hi = best.position >= samples[-1].position - run.res / 2 and samples[-1].position >= run.hi - run.res / 2
    if at_lo or at_hi:
        side = "near" if at_lo else "far"
        if _peaks_at_edge(samples if at_lo else samples[::-1]):
            # The curve turns over at the limit: the subject is sharpest right there.
            return True, (f"ok: the subject is sharpest at the {side} end of the range ({best.position:g}); "
                          "the curve flattens there, so focus is at the limit, not beyond it")
        # Still climbing at the limit -- unless another peak inside the range scores nearly as
        # well: then the curve has two subjects, and "focus lies beyond" would not be true.
        pool = run.unique_sorted(approached=True)
        rival = _rival_peak(pool, max(pool, key=lambda u: u.score), gate.rival_ratio)
        if rival is not None:
            return False, _multi_peaked(rival, best)
        return False, (f"peak at the {side} edge of the range ({best.position:g}): "
                       "focus may lie beyond the limits; widen drive.min_position/max_position or move the camera")
    if fit is None:
        return False, "no peak fit: the curve around the best sample is not peaked"
    # On the samples reached from the approach side (unknown play shifts the others and
    # makes a jagged curve of one peak), and more than two depths of focus from the best.
    pool = run.unique_sorted(approached=True)
    rival = _rival_peak(pool, max(pool, key=lambda u: u.score), gate.rival_ratio,
                        2.0 * (depth_of_focus(fit) or 0.0))
    if rival is not None:
        return False, _multi_peaked(rival, best)
    r2 = _quality_r2(run, fit["peak"])
    if r2 is not None:
        fit["r2"] = r2
    dof = depth_of_focus(fit)
    if dof is not None:
        # success = the best is within the depth of focus of the peak: lower samples close
        # enough on both sides say so, whatever the wide measure's fit (R²) says.
        # Judged on the samples reached from the approach side when there are enough (with
        # play the drive does not know, the others sit up to the play away from their label).
        pool = run.unique_sorted(approached=True)
        top = max(pool, key=lambda u: u.score)
        if not close_bracket(pool, top, dof, gate.close_dofs, run.res):
            return False, _not_bracketed(pool, top, dof, gate.close_dofs)
        return True, "ok"
    if fit.get("r2", 1.0) < gate.min_r2:
        return False, f"poor peak fit: R² {fit['r2']:.2f} < {gate.min_r2:g}; noisy or multi-peaked curve"
    return True, "ok"


#: A coarse level this many times its noise term (+0.5) counts as detail for the texture reason.
DETAIL_FLOORS = 5.0


def close_bracket(samples, best, dof: Optional[float], k: float = 2.0, res: float = 0.0) -> bool:
    """``best`` (one of ``samples``, sorted by position) has a lower sample on each side,
    both within ``k dof`` of it (or the next drive step, ``res``): with ``k = 2`` a
    symmetric single-peaked curve then peaks within ``dof`` of ``best`` (it is higher than
    both, so the peak is nearer to it than to either).  Pure."""
    if not dof:
        return False
    i = next((k for k, u in enumerate(samples) if u is best), None)
    if i is None or i == 0 or i == len(samples) - 1:
        return False
    left, right = samples[i - 1], samples[i + 1]
    return (left.score < best.score and right.score < best.score
            and max(best.position - left.position, right.position - best.position) <= max(k * dof, res))


def _not_bracketed(samples, best, dof: float, k: float) -> str:
    """The reason for a best that :func:`close_bracket` rejects, with what is missing."""
    i = samples.index(best)
    nbs = [samples[j] for j in (i - 1, i + 1) if 0 <= j < len(samples)]
    if len(nbs) < 2 or any(u.score >= best.score for u in nbs):
        return (f"peak not bracketed: the best ({best.position:g}) lacks a lower sample on one side; "
                "the search ran out of frames, or the curve is too irregular to trust")
    d = max(abs(u.position - best.position) for u in nbs)
    return (f"peak not bracketed closely: a sample next to the best ({best.position:g}) is {d:g} away, "
            f"more than {k:g} depths of focus ({dof:.3g}); the search ran out of frames, or the curve "
            "is too irregular to trust")


def _multi_peaked(rival, best) -> str:
    """The gate's reason for a curve with a ``rival`` peak scoring nearly as well as ``best``."""
    return (f"multi-peaked curve: another peak at {rival.position:g} scores "
            f"{rival.score / best.score:.0%} of the best at {best.position:g} (two subjects at "
            "different depths, or a moving one); aim the ROI at one subject (--roi)")


def _rival_peak(samples, best, ratio: float, min_distance: float = 0.0):
    """The highest other local maximum of the sampled curve (``samples`` sorted by
    position) scoring at least ``ratio`` of ``best``, not next to it, more than
    ``min_distance`` from it and behind a dip below ``ratio`` of it, or None.  Pure."""
    i_best = next(k for k, u in enumerate(samples) if u is best)
    rivals = []
    for k, u in enumerate(samples):
        if (abs(k - i_best) <= 1 or u.score < ratio * best.score
                or abs(u.position - best.position) <= min_distance):
            continue
        lower_left = k == 0 or samples[k - 1].score < u.score
        lower_right = k == len(samples) - 1 or samples[k + 1].score < u.score
        between = samples[min(k, i_best) + 1:max(k, i_best)]
        dip = min((v.score for v in between), default=u.score)
        if lower_left and lower_right and dip < ratio * u.score:
            rivals.append(u)
    return max(rivals, key=lambda u: u.score) if rivals else None


#: Half width at half maximum of a Gaussian, in sigmas.
HWHM_SIGMAS = math.sqrt(2.0 * math.log(2.0))


def depth_of_focus(fit: Optional[dict]) -> Optional[float]:
    """The depth of focus the curve shows (drive units): the half width at half maximum of
    the peak fitted through the best sample and its neighbours (``sqrt(2 ln 2)`` sigmas of
    the log-parabola) -- the lens positions where the curve score is at least half its
    peak.  On the simulated lens this is 0.8..1.3 x the true depth of focus (defocus blur
    radius <= 1 px); on the shared sweeps it spans the photographer's accepted range.
    None without a Gaussian fit."""
    if not fit or not fit.get("sigma"):
        return None
    return float(HWHM_SIGMAS * fit["sigma"])


def confidence(run: _Run, ok: bool, best, final_score: float, fit: Optional[dict]) -> float:
    """How sure the run is that it stands at the subject's focus, 0..1.

    The product of four terms, each 0..1:

    * **bracket** -- 1 when the best sample has a lower sample on each side, 0.8 when it is
      at an end of the range the curve turns over at, 0.3 otherwise;
    * **fit** -- the quality fit's R² (clipped to 0..1; 0.8 when there is none);
    * **coverage** -- ``1 - widest unsampled stretch / range``: a higher peak could hide in
      a wide stretch nobody looked at (another plane, a local maximum of the curve);
    * **reproduced** -- ``min(1, final score / best score)`` of the verification frame.

    A run that failed the gate is capped at 0.3 of that.  It is a heuristic for a person
    or a caller deciding whether to look again, not a probability.
    """
    U = run.unique_sorted()
    i = next((k for k, u in enumerate(U) if u is best), None)
    if i is None:
        i = max(range(len(U)), key=lambda k: U[k].score)
    at_end = i in (0, len(U) - 1)
    bracket = 0.8 if (at_end and ok) else (0.3 if at_end else 1.0)
    r2 = (fit or {}).get("r2")
    fit_term = min(1.0, max(0.0, float(r2))) if r2 is not None else 0.8
    xs = [u.position for u in U]
    gaps = [b - a for a, b in zip(xs, xs[1:])] + [xs[0] - run.lo, run.hi - xs[-1]]
    coverage = 1.0 - min(1.0, max(gaps) / run.span) if run.span > 0 else 1.0
    reproduced = min(1.0, max(0.0, float(final_score) / max(best.score, 1e-9)))
    c = bracket * fit_term * coverage * reproduced
    return float(c if ok else 0.3 * c)
