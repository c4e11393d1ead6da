"""The ``dfd`` strategy: depth from defocus to jump close to focus, a short local fit to land.

Defocus blur grows with the lens's distance from focus, so a frame's blur says how far
focus is, and two frames on one side of it say where: the blur against lens position is a
V, ``blur(x) = a |x - x*| + floor``.  The blur comes from the model's blur head when it has
one (:attr:`Sample.blur`), otherwise from a model-free estimate, :func:`relative_blur`: the
square root of the ratio of the ROI's noise-corrected Laplacian variance 8x reduced to the
one at full resolution.  A disk blur of radius ``r`` removes the full-resolution detail long
before the 8x-reduced one, and on the simulated lens the ratio grows as ``r^1.9`` from
about 0.6 px to 7 px of blur (``sqrt`` makes it near-linear in ``r``, in arbitrary units;
the V's slope absorbs the unit).  On real sweeps it is a V on most subjects and meaningless
on some (noise-limited or multi-plane ROIs), so it only ever proposes where to look next:
which sample is *best* is decided by the curve score alone.

The search, as a person would describe it:

1. **look** here and one probe step further towards the side with more room -- or, when
   this frame shows nothing even 8x reduced (far out in the tails, where a step away looks
   the same), straight to the point that best covers the unsampled range (:func:`_probe`,
   :func:`~pifocus.autofocus.explore.gap_target`);
2. **jump** (:func:`_next_position`) -- while the best sample is not bracketed by lower
   ones, to where the blur V (from frames with fine detail only) or, with three samples
   rising towards it, a log-parabola of the score puts focus, never more than ``max_jump``
   of the range at once and always towards rising score; from a best with fine detail and
   no usable V, only as far as its own blur says (:func:`_blur_step`); bracketed, to the
   log-parabola's vertex;
3. **look past** a bracketed peak where the 8x-reduced measure still climbs beyond one of
   its neighbours (:func:`~pifocus.autofocus.explore.coarse_rise_side`: more of the scene
   comes into focus there -- another plane with fine texture made this peak), while an
   unsampled stretch wider than half ``explore_gap`` is left on that side; the same past a
   best at an end of the range whose reduced measure a sample further inside exceeds
   (:func:`~pifocus.autofocus.explore._explore_past_end`);
4. **land** (:func:`_land`) -- the run's best frame read approached if it was not; until the
   best sample has approached neighbours at most one fine spacing away on both sides (the
   spacing from the width of the fitted peak, so about one depth of focus), sample the
   missing side; the target is the log-parabola's vertex through the best and its two
   neighbours, clamped between them.  A best whose blur estimate reads sharp may keep a
   wider bracket (``bracket_sigmas_sharp``, neighbours within ``close_dofs`` depths of
   focus); its target is the vertex kept between the midpoints to the neighbours, or the
   best frame itself within half a depth of focus of it -- often the last frame read, so
   the engine's verification costs no frame.

The whole range is never scanned, but the bracket is on the curve score, so one sample on
another plane cannot end the search: a peak counts only once lower samples stand on both
sides of it.  At an end of the range the curve must turn over there (the quality gate).
A bracket wider than ``explore_gap`` of the range is never tight (:func:`_tight`): three
samples that far apart fit a narrow peak as a wide one.
On ``tools/af_bench.py``: median 6 frames (p95 9) on 200 simulated scenes and on the shared
sweeps from every start, the engine's final verification frame included; on every replayed
run the success flag agrees with the judged range.
"""

import logging
import math
from typing import List, Optional, Tuple

from .base import Strategy
from .blur import fit_v
from .explore import _bracket, _explore_coarse, _explore_past_end, _explore_stalled, _largest_gap
from .fit import fit_peak
from .gate import depth_of_focus
from .params import DfdParams
from .run import Sample, _Run

log = logging.getLogger("pifocus.autofocus")


def relative_blur(coarse_1: float, coarse_8: float) -> float:
    """Model-free defocus estimate (arbitrary units, grows about linearly with the blur
    radius): ``sqrt(coarse_8 / coarse_1)`` of the noise-corrected Laplacian variances at full
    resolution and 8x reduced; infinite when only the reduced one is positive (nothing left
    at full resolution), NaN when neither is."""
    if not coarse_8 > 0:
        return math.nan
    if not coarse_1 > 0:
        return math.inf         # nothing left at full resolution: far from focus
    return math.sqrt(coarse_8 / coarse_1)


def v_jump(near: Tuple[float, float], far: Tuple[float, float], floor: float) -> Optional[float]:
    """Where two ``(position, blur)`` samples on one side of focus put it: the line through
    them reaches ``floor`` at ``near``'s side; None when the blur does not fall towards
    ``near`` (no slope to extrapolate)."""
    (x0, b0), (x1, b1) = near, far
    if math.isnan(b0) or math.isnan(b1) or not b1 > b0 or x0 == x1:
        return None
    slope = (b1 - b0) / abs(x1 - x0)
    return x0 + math.copysign(max(b0 - floor, 0.0) / slope, x0 - x1)


#: At most this many noise terms of the full-resolution measure count as its noise residual.
NOISE_RESIDUAL_FLOORS = 5.0


class DfdStrategy(Strategy):
    """Depth from defocus, then a short local fit (:class:`~pifocus.autofocus.DfdParams`)."""

    name = "dfd"
    params_field = "dfd"

    def search(self, run: _Run) -> Tuple[Optional[dict], Optional[float]]:
        """Probe, jump, land (see the module doc)."""
        p: DfdParams = self.params
        use_head = bool(p.use_head and getattr(run.analyzer, "has_blur", False))
        step = max(run.res, p.probe_step * run.span)
        _probe(run, p, step)
        for _ in range(int(p.max_jumps)):
            run.tick()
            x = _next_position(run, p, step, use_head)
            if x is None or run.find(run.snap(x), tol=_tol(run, step)) is not None:
                # Nothing left to sample inside the bracket: before landing, look past it
                # where the reduced measure still climbs (a local bump's neighbour: the
                # bracket was never tight enough for _explore_if_soft to be asked).
                x = _explore_stalled(run, p)
                if x is None or run.find(run.snap(x), tol=_tol(run, step)) is not None:
                    break
            run.measure(x, approach=True)
        return _land(run, p, step)


def _tol(run: _Run, step: float) -> float:
    """Two positions closer than this are the same sample (a tenth of the probe step)."""
    return max(run.res / 2, step / 10)


def _blur(s: Sample, use_head: bool, run: Optional[_Run] = None) -> float:
    """The sample's defocus estimate (model head, else :func:`relative_blur`).

    Far from focus the full-resolution measure is what the noise correction left over, the
    same at every position; the run's lowest full-resolution value (at most
    ``NOISE_RESIDUAL_FLOORS`` noise terms) is taken off first, so it reads as no detail."""
    if use_head and not math.isnan(s.blur):
        return s.blur
    m1 = s.coarse.get(1, 0.0)
    if run is not None and run.samples:
        residual = min(min(u.coarse.get(1, 0.0) for u in run.samples),
                       NOISE_RESIDUAL_FLOORS * s.coarse_floor.get(1, 0.0))
        m1 -= 0.9 * max(residual, 0.0)
    return relative_blur(m1, s.coarse.get(8, 0.0))


def _probe(run: _Run, p: DfdParams, step: float) -> None:
    """Here, and one step towards the side with more room -- or, when this frame shows no
    detail at all even 8x reduced (far out in the curve's tails, where a probe step away
    looks the same), straight to the point that best covers the unsampled range
    (:func:`_largest_gap`)."""
    first = run.here()
    if not first.coarse_ok(8, p.detail_factor):
        run.measure(_largest_gap(run, [first]), approach=True)
        return
    direction = 1.0 if (run.hi - first.position) >= (first.position - run.lo) else -1.0
    run.measure(first.position + direction * step, approach=True)


def _vertex(three) -> Optional[dict]:
    """Log-parabola (Gaussian) fit through three samples."""
    return fit_peak([u.position for u in three], [u.score for u in three], "gaussian")


def _dfd_target(run: _Run, p: DfdParams, U: List[Sample], use_head: bool) -> Optional[float]:
    """Where the blur V through the samples puts focus (None: no usable blur estimates)."""
    # Only frames with fine detail: far out the estimate reads what the noise left over.
    pts = [(u.position, _blur(u, use_head, run)) for u in U if _has_detail(p, u)]
    pts = [(x, b) for x, b in pts if math.isfinite(b)]
    if len(pts) < 2:
        return None
    if len(pts) == 2:
        (xa, ba), (xb, bb) = sorted(pts, key=lambda t: t[1])
        return v_jump((xa, ba), (xb, bb), p.blur_floor)
    v = fit_v([x for x, _ in pts], [b for _, b in pts], p.blur_floor, run.lo, run.hi)
    return None if v is None else v[0]


def _extrapolated(U: List[Sample], best: Sample, direction: float) -> Optional[float]:
    """The vertex of a log-parabola through the best (at an end of the samples) and its two
    inner neighbours, when it is concave and lies beyond the best: the score curve is
    Gaussian near focus, so three samples rising towards it point at its peak."""
    side = [u for u in U if (best.position - u.position) * direction > 0]
    side = sorted(side, key=lambda u: abs(u.position - best.position))[:2]
    if len(side) < 2:
        return None
    f = fit_peak([u.position for u in side] + [best.position], [u.score for u in side] + [best.score],
                 "gaussian")
    if f is None or (f["peak"] - best.position) * direction <= 0:
        return None
    return f["peak"]


def _next_position(run: _Run, p: DfdParams, step: float, use_head: bool) -> Optional[float]:
    """Where to look next while jumping, or None when the peak is bracketed closely enough
    for :func:`_land` (see the module doc)."""
    U = run.unique_sorted()
    if len(U) < 2:
        return None
    scores = [u.score for u in U]
    if (max(scores) + 1e-9) / (min(scores) + 1e-9) < p.flat_ratio:
        return _largest_gap(run, U)                   # nothing changes yet: look where we have not
    h = _fine_spacing(run, p, step)
    br = _bracket(U)
    if br is not None:
        soft = _is_soft(run, p, br[1], use_head)
        narrow = br[2].position - br[0].position <= p.explore_gap * run.span
        clear = br[1].score > p.flat_ratio * max(br[0].score, br[2].score)
        if narrow and not _has_detail(p, br[1]) and not clear:
            # A small bump in the far tails (no fine detail anywhere yet, hardly above its
            # neighbours): look elsewhere.  A clear one is a real peak seen from afar: go in.
            x = _largest_gap(run, U)
            return None if run.find(run.snap(x), tol=_tol(run, step)) is not None else x
        if (_tight(run, p, br) or (narrow and _converged(run, p, br))) and (narrow or not soft):
            return _explore_if_soft(run, p, U, br, use_head)
        return _inside(run, step, br)
    best = max(U, key=lambda u: u.score)
    i = U.index(best)
    inner = U[1] if i == 0 else U[-2]                 # the best is at an end of the samples
    direction = math.copysign(1.0, best.position - inner.position)
    end = run.hi if direction > 0 else run.lo
    if abs(end - best.position) <= run.res / 2:
        # At the range end: close in from inside; the gate judges whether the curve turns over
        # -- unless the reduced measure says more of the scene comes into focus inside.
        if abs(best.position - inner.position) <= 2.5 * h:
            return _explore_past_end(run, p, U, best, direction)
        return _inside(run, step, (inner, best, best) if direction > 0 else (best, best, inner))
    gap = abs(best.position - inner.position)
    x = _extrapolated(U, best, direction)
    if x is None:
        x = _dfd_target(run, p, U, use_head)
    if (x is None or (x - best.position) * direction <= 0) and _has_detail(p, best):
        # Fine detail here and no usable V: focus is near, on either side.  Step as far as
        # the sample's own blur says (a probe step at ``sharp_blur``, a quarter near focus),
        # not on towards the range end.
        dist = _blur_step(run, p, best, step, use_head)
    elif x is None or (x - best.position) * direction <= 0:
        dist = p.grow * gap                           # the blur says nothing: keep going, faster
    else:
        dist = min(max(abs(x - best.position), gap / 2), p.grow * gap)
    dist = min(max(dist, run.res), p.max_jump * run.span)
    return min(max(best.position + direction * dist, run.lo), run.hi)


def _blur_step(run: _Run, p: DfdParams, s: Sample, step: float, use_head: bool) -> float:
    """How far focus may be from a sample with fine detail, by its own blur estimate: the
    probe ``step`` at ``sharp_blur`` above the floor (or more), down to a quarter of it at
    the floor (drive units)."""
    b = _blur(s, use_head, run)
    sharp = p.sharp_blur_px if use_head else p.sharp_blur
    frac = (b - p.blur_floor) / sharp if math.isfinite(b) else 1.0
    return step * min(max(frac, 0.25), 1.0)


def _has_detail(p: DfdParams, s: Sample) -> bool:
    """Fine detail at the sample: its 2x-reduced measure is ``detail_factor`` times its noise
    term (2x, not full resolution, so an oversampled rig's focus has it too)."""
    return s.coarse_ok(2, p.detail_factor)


def _is_soft(run: _Run, p: DfdParams, s: Sample, use_head: bool) -> bool:
    """The sample's own blur estimate says it is not at focus (above ``sharp_blur``)."""
    b = _blur(s, use_head, run)
    return not math.isnan(b) and b > (p.sharp_blur_px if use_head else p.sharp_blur)


def _explore_if_soft(run: _Run, p: DfdParams, U: List[Sample], br,
                     use_head: bool) -> Optional[float]:
    """Before a bracketed peak is accepted: where the 8x-reduced measure says more is
    coming into focus past it, look there first (:func:`_explore_coarse`); a peak whose own
    blur estimate is still high is a local one (a side lobe, an edge of another plane):
    look at the widest unsampled stretch of the range (while there is one wider than
    ``explore_gap`` of it).  None: accept the peak."""
    best = br[1]
    x = _explore_coarse(run, p, U, br)
    if x is not None:
        return x
    if p.trust_sharp and not _is_soft(run, p, best, use_head):
        return None
    xs = [u.position for u in U]
    widest = max([b - a for a, b in zip(xs, xs[1:])] + [xs[0] - run.lo, run.hi - xs[-1]])
    if widest <= p.explore_gap * run.span:
        return None
    return _largest_gap(run, U)


def _tight(run: _Run, p: DfdParams, br) -> bool:
    """The bracket ``(left, best, right)`` is narrow enough for its log-parabola vertex to be
    the target: within ``bracket_sigmas`` sigmas of the fitted peak, or its neighbours the
    next drive steps."""
    left, best, right = br
    width = right.position - left.position
    if width <= 2 * run.res:
        return True        # the neighbours are the next drive steps: nothing in between
    if width > p.explore_gap * run.span:
        return False       # wider than a third of the range: its fit is only as good as far samples
    gaps = sorted((best.position - left.position, right.position - best.position))
    if gaps[1] > p.max_skew * max(gaps[0], run.res):
        return False       # lopsided: the curve's cusp would pull the vertex to the wide side
    if not _has_detail(p, best):
        return False       # no fine detail at the best: still in the far tails
    f = _vertex(br)
    if f is None or not f.get("sigma"):
        return False
    if width <= p.bracket_sigmas * f["sigma"]:
        return True
    # A best whose own blur estimate reads sharp (within ``sharp_margin`` of the floor) is at
    # the peak already: a wider bracket around it will do, as long as both neighbours are
    # within twice the depth of focus (then the peak is within it of the best: the gate's
    # close bracket).
    b = _blur(best, bool(p.use_head and getattr(run.analyzer, "has_blur", False)), run)
    return (b <= p.blur_floor + p.sharp_margin and width <= p.bracket_sigmas_sharp * f["sigma"]
            and gaps[1] <= p.close_dofs * depth_of_focus(f))


def _level_vertex(br) -> float:
    """The vertex of the bracket ``(left, best, right)`` on the finest measure level whose
    log-parabola through the three is at most ``3.5`` of its sigmas wide (its Gaussian part:
    a wide bracket is judged on a reduced level, a narrow one at full resolution), else on
    the 8x-reduced one; the best sample's position when no level is concave."""
    width = br[2].position - br[0].position
    xs = [u.position for u in br]
    last = None
    for lvl in (1, 2, 4, 8):
        f = fit_peak(xs, [u.coarse.get(lvl, 0.0) for u in br], "gaussian")
        if f is None:
            continue
        last = f
        if width <= 3.5 * f["sigma"]:
            break
    return last["peak"] if last is not None else br[1].position


def _converged(run: _Run, p: DfdParams, br) -> bool:
    """The bracket's vertex (on the level that suits its width) falls within
    ``converge_sigmas`` of the full-resolution peak's sigma of the best sample: the best
    sample is at the peak, however wide the bracket still is."""
    left, best, right = br
    f = fit_peak([u.position for u in br], [u.coarse.get(1, 0.0) for u in br], "gaussian")
    g = _vertex(br)
    sig = min([x["sigma"] for x in (f, g) if x is not None and x.get("sigma")], default=None)
    if sig is None:
        return False
    return abs(_level_vertex(br) - best.position) <= max(run.res / 2, p.converge_sigmas * sig)


def _inside(run: _Run, step: float, br) -> float:
    """The next sample inside a bracket ``(left, best, right)``: the log-parabola's vertex
    through the three, kept off the samples; the wider half's middle when the vertex is the
    best itself (or there is no vertex)."""
    left, best, right = br
    peak = best.position
    if left is not best and right is not best:
        peak = _level_vertex(br)
    lo, hi = left.position, right.position
    peak = min(max(peak, lo + (best.position - lo) / 4), hi - (hi - best.position) / 4)
    if abs(peak - best.position) < _tol(run, step):
        wide = left if best.position - left.position > right.position - best.position else right
        peak = (best.position + wide.position) / 2
    return peak


def _fine_spacing(run: _Run, p: DfdParams, step: float) -> float:
    """Spacing of the landing samples: ``fine_factor`` x the width (sigma) of the peak
    fitted through the best and its neighbours, else a quarter probe step; whole drive steps."""
    U = run.unique_sorted()
    br = _bracket(U)
    sigma = None
    if br is not None:
        f = _vertex(br)
        if f is not None and f.get("sigma"):
            sigma = f["sigma"]
    h = p.fine_factor * sigma if sigma else step / 4
    h = min(max(h, run.res), step)
    if run.res >= 1:
        h = max(run.res, round(h / run.res) * run.res)
    return h


def _land(run: _Run, p: DfdParams, step: float) -> Tuple[Optional[dict], Optional[float]]:
    """Bracket the best approached sample by approached neighbours at most ``h`` away, then
    the log-parabola vertex through the three (clamped between them).  The best frame of
    the run, when it was not approached (the start), is read approached first."""
    top = run.best()
    if not top.approached and run.find(top.position, approached=True) is None:
        # The best frame so far was not reached from the approach side (the start): its
        # position is only as good as the play the drive knows of; read it approached.
        run.measure(top.position, approach=True)
    for _ in range(int(p.max_landing)):
        run.tick()
        h = _fine_spacing(run, p, step)
        A = run.unique_sorted(approached=True)
        best = max(A, key=lambda u: u.score)
        i = A.index(best)
        left = A[i - 1] if i > 0 else None
        right = A[i + 1] if i < len(A) - 1 else None
        if left is not None and right is not None and _tight(run, p, (left, best, right)):
            break
        # At a range end the gate needs the end's own neighbour: no wider spacing there.
        at_end = best.position <= run.lo + run.res / 2 or best.position >= run.hi - run.res / 2
        tol = (1.0 if at_end else 1.5) * h + (run.res / 2 if at_end else 0.0)
        inside = [x for x, nb in ((best.position - h, left), (best.position + h, right))
                  if (nb is None or abs(best.position - nb.position) > tol)
                  and run.lo - run.res / 2 <= x <= run.hi + run.res / 2
                  and run.find(run.snap(x), tol=h / 4, approached=True) is None]
        if not inside:
            break          # bracketed closely, or the open side is beyond the range (the gate judges)
        run.measure(inside[0], approach=True, tol=h / 4)
    A = run.unique_sorted(approached=True)
    best = max(A, key=lambda u: u.score)
    i = A.index(best)
    if 0 < i < len(A) - 1:
        fit = _vertex(A[i - 1:i + 2])
        if fit is not None:
            fit["stage"] = "dfd"
            target = min(max(fit["peak"], fit["x"][0]), fit["x"][-1])
            if abs(target - best.position) <= p.snap_sigmas * fit["sigma"]:
                target = best.position     # as good as the sample itself: no frame to re-read it
            elif fit["x"][-1] - fit["x"][0] > p.bracket_sigmas * fit["sigma"]:
                # A wide bracket (accepted around a best that reads sharp): the peak is nearer
                # the best than either neighbour, so the vertex (of a cusp-shaped curve through
                # far samples) is kept between the midpoints.
                # Within half a depth of focus of the best, the best frame itself will do.
                lo_mid, hi_mid = (fit["x"][0] + best.position) / 2, (best.position + fit["x"][-1]) / 2
                target = min(max(target, lo_mid), hi_mid)
                if abs(target - best.position) <= 0.5 * depth_of_focus(fit):
                    target = best.position
            return fit, target
    return None, best.position
