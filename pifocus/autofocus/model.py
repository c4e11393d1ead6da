"""The ``model`` strategy: model-guided search, using the *shape* of the focus measure.

Laplacian variance of a frame reduced 8x is, near focus, a Gaussian of the lens position
whose width is ~8x that of the full-resolution measure, so it sees the peak from far away.
The search, as a person would describe it:

1. **coarse scan** (:class:`_CoarseScan`) -- big steps of the wide-range measure until three
   samples bracket its peak; a log-parabola through them gives the peak position and the
   curve width;
2. **fine search** (:func:`_fine_search`) -- three samples around the predicted peak,
   spaced by the width, then a walk until the best sample has close neighbours on both
   sides (and one rescan of the range if the "peak" turns out to have no detail);
3. **look further if flat** (:func:`_look_further_if_flat`) -- samples that hardly differ
   get two far ones, so the gate judges on evidence;
4. **refit** (:func:`_refit`) -- a full-resolution Gaussian through the best fine sample
   and its neighbours gives the target.

About 10 frames.  Short ranges (recorded sweeps) are simply all sampled by the sweep.
"""

import math
from collections import namedtuple
from typing import Optional, Tuple

from .base import Strategy
from .fit import _neighbourhood, fit_peak
from .params import ModelParams, SweepParams
from .run import Sample, _grid, _Run
from .sweep import sweep_search


class ModelStrategy(Strategy):
    """Model-guided search (:class:`~pifocus.autofocus.ModelParams`)."""

    name = "model"
    params_field = "model"

    def search(self, run: _Run) -> Tuple[Optional[dict], Optional[float]]:
        """Coarse scan, fine search, look further if flat, refit (see the module doc)."""
        p = self.params
        n_pos = int(round(run.span / run.res)) + 1
        if n_pos <= max(3, p.exhaustive_below):
            return sweep_search(run, SweepParams(coarse_points=n_pos, fine_points=0, fit="gaussian",
                                                 fit_points=3))
        scan = _CoarseScan(run, p)
        x_hat = scan.find_peak()
        centre, h = _fine_search(run, p, x_hat, scan.cfit, scan.step)
        _look_further_if_flat(run, centre, h, scan.step)
        return _refit(run, centre, h, scan.cfit)


# ---------------------------------------------------------------------------------------
# Phase 1: the coarse scan
# ---------------------------------------------------------------------------------------

#: What the coarse scan sees after each sample: one sample per position (``U``), those
#: above their noise floor (``inf``), the best by the wide measure and its neighbours, and
#: whether the best stands clearly above the lowest (``significant``).
_ScanView = namedtuple("_ScanView", "U inf best left right significant")


class _CoarseScan:
    """Phase 1: find the peak of the wide-range measure (reduced ``coarse_scale`` x).

    Scan with big steps (towards the side with more room, reversing at once if the first
    probe is clearly worse) until the best sample stands clearly above the rest with lower
    samples on both sides; a concave one-sided trend jumps ahead to the predicted peak.
    Small ripples (the side lobes of a strongly defocused disk blur) neither stop nor turn
    the scan.

    Attributes:
        step: the scan step (drive units; ``first_step`` of the range).
        cfit: the last Gaussian fit through three bracketing coarse samples (or None).
    """

    def __init__(self, run: _Run, p: ModelParams):
        self.run, self.p = run, p
        self.sc = int(p.coarse_scale)
        self.step = max(run.res, run.span * p.first_step)
        self.start = run.here()
        self.direction = 1 if (run.hi - self.start.position) >= (self.start.position - run.lo) else -1
        self.turned = False
        self.cfit: Optional[dict] = None
        self.scan_pos = self.start.position

    def c(self, smp: Sample) -> float:
        """The wide-range measure of a sample."""
        return smp.coarse[self.sc]

    def find_peak(self) -> float:
        """Scan; returns the predicted peak (drive units; the best sample when the scan
        found none)."""
        x_hat = self._scan()
        return self.run.best().position if x_hat is None else x_hat

    def _scan(self) -> Optional[float]:
        """The scan loop: one probe per pass.  Returns the predicted peak, or None (the
        whole range was scanned, or the frames ran out)."""
        run, p, res = self.run, self.p, self.run.res
        while run.frames < p.max_frames - 5:
            run.tick()
            last = run.samples[-1]
            if p.cnn_confident > 0 and last.p_in_focus >= p.cnn_confident:
                # The CNN (when loaded) is sure this frame is in focus: refine right here.
                return last.position
            v = self._view()
            at_end = ((v.best.position >= run.hi - res / 2 and v.right is None)
                      or (v.best.position <= run.lo + res / 2 and v.left is None))
            if v.significant and v.left is not None and v.right is not None:
                done, x = self._bracketed(v)
            elif v.significant and at_end and len(v.U) >= 3:
                done, x = self._towards_range_end(v)
            else:
                done, x = self._scan_on(v)
            if done:
                return x
            nxt = run.snap(x)
            if run.find(nxt) is not None:
                # Sampled already (e.g. the drive only stops at recorded positions): the scan
                # moves on from the position it asked for, not from the snapped one, so it
                # always progresses towards the end of the range.
                if v.significant:
                    return v.best.position
                self.scan_pos = min(max(float(x), run.lo), run.hi)
                if self.turned and (nxt <= run.lo + res / 2 or nxt >= run.hi - res / 2):
                    return None
                continue
            run.measure(nxt)
        return None

    def _view(self) -> _ScanView:
        """Look at the samples so far (see :data:`_ScanView`)."""
        U = self.run.unique_sorted()
        inf = [u for u in U if u.coarse_ok(self.sc, self.p.informative_factor)]
        floor_c = min(self.c(u) for u in U)
        best = max(U, key=self.c)
        i = U.index(best)
        left = U[i - 1] if i > 0 else None
        right = U[i + 1] if i < len(U) - 1 else None
        significant = best in inf and self.c(best) >= self.p.significance * floor_c
        return _ScanView(U, inf, best, left, right, significant)

    def _bracketed(self, v: _ScanView) -> Tuple[bool, Optional[float]]:
        """Lower samples on both sides of a significant best: fit a Gaussian through the
        three.  Done (``(True, peak)``) once they lie within 3 sigma; else ``(False, x)``:
        sample the predicted peak next (or the wider half, if that is sampled already)."""
        run, c = self.run, self.c
        left, best, right = v.left, v.best, v.right
        f = fit_peak([left.position, best.position, right.position],
                     [c(left), c(best), c(right)], "gaussian")
        if f is None:
            return True, best.position
        self.cfit = f
        peak = min(max(f["peak"], left.position), right.position)
        width = right.position - left.position
        if width <= 3.0 * f["sigma"] or width <= 4 * run.res:
            return True, peak
        nxt = peak
        if run.find(run.snap(nxt)) is not None:  # sample the wider half instead
            nxt = (best.position + (left.position if best.position - left.position >
                                    right.position - best.position else right.position)) / 2
        return False, nxt

    def _towards_range_end(self, v: _ScanView) -> Tuple[bool, Optional[float]]:
        """A significant best at an end of the range: done when its inner neighbour is
        close, else look between the two."""
        inner = v.right if v.right is not None else v.left
        if abs(inner.position - v.best.position) <= max(4 * self.run.res, self.step / 4):
            return True, v.best.position  # rising to the end of the range: the gate will say so
        return False, (inner.position + v.best.position) / 2  # the peak may lie between: look

    def _scan_on(self, v: _ScanView) -> Tuple[bool, Optional[float]]:
        """No bracketed peak yet: the next step of the scan (turning, jumping ahead or
        turning at the end of the range as needed).  ``(True, None)``: the whole range
        was scanned -- let the gate say why."""
        run, res = self.run, self.run.res
        self._turn_if_wrong_way(v)
        nxt = self._jump_ahead(v, self.scan_pos + self.direction * self.step)
        if nxt > run.hi + res / 2 or nxt < run.lo - res / 2:
            nxt = self._past_range_end(v)
            if nxt is None:
                return True, None
        self.scan_pos = run.snap(nxt)
        return False, nxt

    def _turn_if_wrong_way(self, v: _ScanView) -> None:
        """After the first probe: turn at once if the start was clearly better."""
        run, c = self.run, self.c
        if len(run.samples) == 2 and not self.turned:
            a0, a1 = run.samples[0], run.samples[1]
            if a0 in v.inf and c(a0) >= 2.0 * c(a1):
                self.direction = -self.direction  # clearly the wrong way: turn now
                self.turned = True
                self.scan_pos = self.start.position

    def _jump_ahead(self, v: _ScanView, nxt: float) -> float:
        """Rising in the scan direction: a concave trend predicts the peak; jump there
        (at most two steps).  Returns the next probe position."""
        best, d, c = v.best, self.direction, self.c
        if v.significant and v.U[-1 if d > 0 else 0] is best:
            others = [u for u in v.U if (u.position - best.position) * d < 0]
            others = sorted(others, key=lambda u: abs(u.position - best.position))[:2]
            if len(others) == 2:
                f = fit_peak([o.position for o in others] + [best.position],
                             [c(o) for o in others] + [c(best)], "gaussian")
                if f is not None and (f["peak"] - best.position) * d > self.run.res:
                    nxt = best.position + d * min(abs(f["peak"] - best.position), 2 * self.step)
        return nxt

    def _past_range_end(self, v: _ScanView) -> Optional[float]:
        """The next probe would leave the range: look at the end itself, else turn once
        (continuing beyond the samples on the other side).  None: scanned both ways."""
        run, res = self.run, self.run.res
        lo, hi = run.lo, run.hi
        # Compared as the drive reaches them: with fractional soft limits (20.5..979.5) on a
        # step drive the end is reached at the whole step 979, never at 979.5.
        end = hi if self.direction > 0 else lo
        if run.snap(self.scan_pos) != run.snap(end):
            return hi if self.direction > 0 else lo  # look at the end of the range too
        if self.turned:
            return None  # whole range scanned
        self.turned = True
        self.direction = -self.direction
        edge = min(u.position for u in v.U) if self.direction < 0 else max(u.position for u in v.U)
        nxt = edge + self.direction * self.step
        if nxt > hi + res / 2 or nxt < lo - res / 2:
            nxt = hi if self.direction > 0 else lo
        return nxt


# ---------------------------------------------------------------------------------------
# Phase 2: the fine search
# ---------------------------------------------------------------------------------------

def _fine_search(run: _Run, p: ModelParams, x_hat: float, cfit: Optional[dict],
                 step: float) -> Tuple[float, float]:
    """Phase 2: fine samples around the predicted peak ``x_hat``, spaced by the width of
    the curve; walk (with growing steps) while the best sample has no close neighbour on a
    side.  If the best sample then shows no real detail, rescan the range once and start
    again from the coarse peak found there.

    Returns ``(centre, h)``: the best approached sample and the fine spacing (drive units).
    """
    h = _fine_spacing(run, p, cfit, step)
    centre = run.snap(x_hat)
    for attempt in range(2):
        _fine_triplet(run, centre, h)
        hx = _walk_to_bracket(run, h)
        best = run.best()
        if attempt == 0 and best.informative < run.params.gate.min_informative:
            moved = _side_lobe_rescan(run, p, step, centre, h)
            if moved is not None:
                centre, h = moved
                continue
        break
    centre = max(run.unique_sorted(approached=True), key=lambda u: u.score).position
    return centre, max(h, hx)


def _fine_spacing(run: _Run, p: ModelParams, cfit: Optional[dict], step: float) -> float:
    """Fine sample spacing: ``fine_factor`` of the coarse curve's sigma (half a scan step
    without a coarse fit), at least one resolution step, whole steps on stepped drives."""
    res = run.res
    sigma = cfit["sigma"] if cfit is not None else step / 2
    h = max(res, min(step, p.fine_factor * sigma))
    if res >= 1:
        h = max(res, round(h / res) * res)
    return h


def _fine_triplet(run: _Run, centre: float, h: float) -> None:
    """Sample ``centre`` and ``centre +- h`` (inside the range) from the approach side."""
    up = run.drive.params.approach_sign > 0
    pts = [centre - h, centre, centre + h]
    for x in (pts if up else pts[::-1]):
        if run.lo - run.res / 2 <= x <= run.hi + run.res / 2:
            run.measure(x, approach=True, tol=h / 4)


def _walk_to_bracket(run: _Run, h: float) -> float:
    """Walk from the best approached sample towards a side without a neighbour within
    ``h`` (steps grow 1.5x after the second; at most 10).  Returns the last step size."""
    lo, hi, res = run.lo, run.hi, run.res
    hx, walked = h, 0
    while walked < 10 and run.frames < run.max_frames - 2:
        run.tick()
        U = run.unique_sorted(approached=True)
        best = max(U, key=lambda u: u.score)
        i = U.index(best)
        gap_l = best.position - U[i - 1].position if i > 0 else math.inf
        gap_r = U[i + 1].position - best.position if i < len(U) - 1 else math.inf
        tol = hx * 1.01 + res / 2
        if gap_l > tol and best.position - hx >= lo - res / 2:
            nxt = best.position - min(hx, gap_l / 2)
        elif gap_r > tol and best.position + hx <= hi + res / 2:
            nxt = best.position + min(hx, gap_r / 2)
        else:
            break
        if run.find(run.snap(nxt), approached=True) is not None:
            break
        run.measure(nxt, approach=True)
        walked += 1
        if walked >= 2:
            hx = hx * 1.5
    return hx


def _side_lobe_rescan(run: _Run, p: ModelParams, step: float, centre: float,
                      h: float) -> Optional[Tuple[float, float]]:
    """No real detail at the best sample: the coarse peak was a side lobe of a strong
    defocus (or there is nothing to focus on).  Scan what is left of the range once.

    Returns the new ``(centre, h)`` when the best informative coarse sample lies elsewhere,
    else None.
    """
    sc = int(p.coarse_scale)
    for x in _grid(run.lo, run.hi, int(round(run.span / step)) + 1, run.res):
        if all(abs(u.position - x) > step / 2 for u in run.samples):
            if run.frames >= run.max_frames - 6:
                break
            run.measure(x)
    sig = [u for u in run.unique_sorted() if u.coarse_ok(sc, p.informative_factor)]
    if sig:
        cbest = max(sig, key=lambda u: u.coarse[sc])
        if run.find(cbest.position) is not None and abs(cbest.position - centre) > 2 * h:
            return run.snap(cbest.position), max(run.res, min(h, step / 4))
    return None


# ---------------------------------------------------------------------------------------
# Phases 3 and 4: look further if flat, refit
# ---------------------------------------------------------------------------------------

def _look_further_if_flat(run: _Run, centre: float, h: float, step: float) -> None:
    """All samples close to the peak and hardly different (a deep depth of focus, or a
    lens that does not move at all): look further out once, so the gate judges on
    evidence."""
    U = run.unique_sorted()
    if (max(u.score for u in U) + 1) / (min(u.score for u in U) + 1) < run.params.gate.flat_ratio:
        far = max(4 * h, step)
        for x in (centre - far, centre + far):
            if run.lo - run.res / 2 <= x <= run.hi + run.res / 2 and run.frames < run.max_frames - 2:
                run.measure(x)


def _refit(run: _Run, centre: float, h: float,
           cfit: Optional[dict]) -> Tuple[Optional[dict], Optional[float]]:
    """Gaussian through the best approached fine sample and its two neighbours.

    Returns ``(fit, target)``: the target is the fitted peak, clamped to the three samples;
    ``fit["r2"]`` is the R² over up to five samples around the best (three always fit
    exactly), ``fit["coarse"]`` the coarse fit's peak, sigma and R².  ``(None, None)``
    when the best fine sample has no neighbour on a side.
    """
    fine = [u for u in run.unique_sorted(approached=True) if abs(u.position - centre) <= 6.5 * h + run.res / 2]
    best = max(fine, key=lambda u: u.score)
    srt = sorted(fine, key=lambda u: u.position)
    i = srt.index(best)
    target = None
    fit = None
    if 0 < i < len(srt) - 1:
        nb = srt[i - 1:i + 2]
        fit = fit_peak([u.position for u in nb], [u.score for u in nb], "gaussian")
    if fit is not None:
        target = min(max(fit["peak"], fit["x"][0]), fit["x"][-1])
        # Three points always fit exactly: R² over the wider neighbourhood is the quality check.
        wide = _neighbourhood(srt, best, min(5, len(srt)))
        if len(wide) >= 4:
            fw = fit_peak([u.position for u in wide], [u.score for u in wide], "gaussian")
            fit["r2"] = fw["r2"] if fw is not None else 0.0
        elif cfit is not None:
            fit["r2"] = cfit["r2"]
        if cfit is not None:
            fit["coarse"] = {"peak": cfit["peak"], "sigma": cfit["sigma"], "r2": cfit["r2"]}
    return fit, target
