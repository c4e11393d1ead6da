"""The bookkeeping of one AF run and its measure.

* :class:`Sample` -- one measured frame (position, curve score, multi-scale scores, ...);
* :func:`multiscale` -- the noise-corrected Laplacian variance of the ROI at each of
  :data:`~pifocus.autofocus.SCALES` (optionally centre-weighted: :func:`centre_weights`,
  :func:`weighted_var`);
* :class:`_Run` -- move, settle, read, score, count frames against the budget, remember
  every sample (also used by ``pifocus calibrate``);
* :func:`_grid` -- evenly spaced positions snapped to the drive's resolution.
"""

import math
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..exc import AutofocusError, SourceExhausted
from ..focus.scale import MIN_WIDE_SIDE_PX
from .base import SCALES
from .params import AutofocusParams

#: The curve score (``multiscale``) uses a reduced level only while the ROI keeps at least
#: this many of that level's pixels on its short side.  On fewer the Laplacian variance is
#: a handful of edges, and one high-contrast edge of another depth plane decides it: the
#: beetle sweep's 70-px ROI is 17 px at scale 4 and 8 px at 8, where the lower jaw's big
#: edge outscored the sharp mandible tip (AF landed on the far plane from 17 of 28 starts).
#: 24 px drops those (70 // 4 = 17) and keeps the wicker sweep's scale 8 (216 // 8 = 27),
#: whose curve turns over at the far end only there; the simulated 640 x 480 frames keep
#: every level (288 px ROI).  One value with the analysis scale's wide-range sharpness.
MIN_CURVE_SIDE_PX = MIN_WIDE_SIDE_PX


def curve_scales(roi_side_px: int) -> Tuple[int, ...]:
    """The levels the ``multiscale`` curve score averages for an ROI ``roi_side_px`` pixels on
    its short side: full resolution and every :data:`SCALES` level that leaves at least
    :data:`MIN_CURVE_SIDE_PX` pixels (pure; fixed for a run, as the ROI is)."""
    return (1,) + tuple(s for s in SCALES if int(roi_side_px) // s >= MIN_CURVE_SIDE_PX)


def curve_score(scores: Dict[int, float], floors: Dict[int, float], roi_side_px: int) -> float:
    """The ``multiscale`` curve score of one frame: the geometric mean, over
    :func:`curve_scales` of the ROI's short side ``roi_side_px``, of the noise-corrected
    Laplacian variances ``scores`` (per level, as :func:`multiscale` returns them with their
    noise terms ``floors``), each floored at a twentieth of its noise term -- far from focus
    the corrected values are noise themselves and their logs would be wild (pure)."""
    vals = [max(scores[k], 0.05 * floors[k] + 1e-3) for k in curve_scales(roi_side_px)]
    return float(np.exp(np.mean(np.log(vals))))


def roi_box(shape, roi) -> Tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` of the normalized ``roi`` (x, y, w, h) on a frame of
    ``shape`` (rows, cols): rounded, and at least 8 px on each side (pure)."""
    h, w = shape[:2]
    x, y, rw, rh = roi
    x0, y0 = int(round(x * w)), int(round(y * h))
    x1, y1 = max(x0 + 8, int(round((x + rw) * w))), max(y0 + 8, int(round((y + rh) * h)))
    return x0, y0, x1, y1


def roi_side_px(shape, roi) -> int:
    """Short side, in pixels, of the normalized ``roi`` on a frame of ``shape`` (rows, cols),
    cut as :func:`multiscale` cuts it (:func:`roi_box`)."""
    x0, y0, x1, y1 = roi_box(shape, roi)
    return int(min(x1 - x0, y1 - y0))


@dataclass
class Sample:
    """One measured frame of an AF run."""

    position: float
    score: float                       # the curve value (see AutofocusParams.score)
    coarse: Dict[int, float]           # noise-corrected Laplacian variance at each scale
    coarse_floor: Dict[int, float]     # noise contribution at each scale
    brightness: float
    informative: float
    p_in_focus: float
    frame_index: int = 0
    sharpness: float = 0.0             # the analyzer's sharpness
    approached: bool = False           # reached from the drive's approach side
    blur: float = math.nan             # subject blur radius, px at the analysis scale (blur model)

    def coarse_ok(self, scale: int, factor: float) -> bool:
        """The coarse score at ``scale`` is clearly above its noise floor."""
        return self.coarse[scale] > factor * (self.coarse_floor[scale] + 0.5)


def centre_weights(n: int, sigma: float) -> np.ndarray:
    """Normalized 1-D Gaussian weights over ``n`` pixels centred on the middle, ``sigma`` in
    units of the ``n``-pixel side (``0`` = uniform).  Pure; sums to 1."""
    if n < 1:
        raise ValueError(f"centre_weights: n must be >= 1, got {n}")
    if not sigma > 0:
        return np.full(n, 1.0 / n)
    t = (np.arange(n) + 0.5) / n - 0.5
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def weighted_var(a: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> float:
    """Variance of the 2-D array ``a`` under the separable weights ``wy`` (rows) x ``wx``
    (columns), each summing to 1.  Pure."""
    a = np.asarray(a, np.float64)
    m = float(wy @ a @ wx)
    return float(wy @ (a * a) @ wx) - m * m


def multiscale(luma: np.ndarray, roi, noise_sigma: float,
               centre_sigma: float = 0.0) -> Tuple[Dict[int, float], Dict[int, float], float]:
    """Laplacian variance of the ROI at full resolution (key 1) and reduced by each of
    :data:`SCALES`, noise-corrected.

    ``centre_sigma`` > 0 weights the ROI's pixels by a Gaussian about its centre, that many
    ROI sides wide (the subject is where the ROI is aimed: a background plane at its edges
    counts less); 0 weighs every pixel alike.  The noise term does not change with the
    weights (white noise has the same variance everywhere).

    Returns ``(scores, floors, mean)``: per scale the variance minus the noise term
    (``20 sigma² / s²`` for the 4-neighbour Laplacian of white noise averaged over s x s),
    that noise term, and the ROI mean luma.
    """
    import cv2

    x0, y0, x1, y1 = roi_box(luma.shape, roi)
    a = luma[y0:y1, x0:x1].astype(np.float32)
    scores, floors = {}, {}
    var_n = float(noise_sigma) ** 2
    for s in (1,) + tuple(SCALES):
        ww, hh = max(3, a.shape[1] // s), max(3, a.shape[0] // s)
        b = a if s == 1 else cv2.resize(a, (ww, hh), interpolation=cv2.INTER_AREA)
        lap = cv2.Laplacian(b, cv2.CV_32F, ksize=1)[1:-1, 1:-1]
        noise = 20.0 * var_n / (s * s)
        if centre_sigma > 0:
            v = weighted_var(lap, centre_weights(lap.shape[0], centre_sigma),
                             centre_weights(lap.shape[1], centre_sigma))
        else:
            v = float(lap.var())
        scores[s] = max(v - noise, 1e-3)
        floors[s] = noise
    return scores, floors, float(a.mean())


class _Run:
    """Shared machinery of one AF run: move, settle, measure, count, remember.

    Attributes:
        samples: every :class:`Sample` taken, in order (the result's curve).
        frames: frames read so far (settling frames included); reading past
            ``max_frames`` raises :class:`_OutOfFrames`.
        lo, hi, res: the drive's soft limits and resolution (drive units).
        settle: frames discarded after each move (AF's, the drive's and the pipeline's).
        overshoot: the approach overshoot (drive units).
    """

    def __init__(self, drive, source, analyzer, params: AutofocusParams, max_frames: int = 400):
        self.drive = drive
        self.source = source
        self.analyzer = analyzer
        self.params = params
        self.max_frames = max_frames
        self.samples: List[Sample] = []
        self.frames = 0
        #: search-loop passes so far (see :meth:`tick`) and their cap, independent of frames
        self.steps = 0
        self.max_steps = 10 * int(max_frames) + 100
        self.t0 = time.perf_counter()
        self.moves0 = drive.moves
        lo, hi = drive.limits
        self.lo, self.hi = lo, hi
        self.res = max(float(getattr(drive, "resolution", 1.0)), 1e-9)
        self.settle = (int(params.settle_frames) + int(getattr(drive.params, "settle_frames", 0))
                       + int(getattr(drive, "pipeline_frames", 0)))
        roi = analyzer.params.effective_roi
        self.roi = roi
        self.overshoot = params.approach_overshoot * (hi - lo)

    @property
    def span(self) -> float:
        """Width of the drive's range (drive units)."""
        return self.hi - self.lo

    def snap(self, x: float) -> float:
        """``x`` as the drive would reach it (clamped to the limits, rounded to steps)."""
        return self.drive.clamp(x)

    def find(self, x: float, tol: Optional[float] = None, approached: bool = False) -> Optional[Sample]:
        """The first sample within ``tol`` of ``x`` (default half a resolution step; never
        less); ``approached``: only samples reached from the approach side.  None if none."""
        tol = self.res / 2 if tol is None else max(tol, self.res / 2)
        for s in self.samples:
            if abs(s.position - x) <= tol and (s.approached or not approached):
                return s
        return None

    def tick(self) -> None:
        """Count one pass of a search loop (every :meth:`measure` is one too).

        A loop that keeps choosing positions already sampled reads no frame, so the frame
        budget alone cannot end it; this cap (``max_steps``, ten passes per budgeted frame)
        always does.

        Raises:
            _SearchStalled: the cap is reached (the run finishes with what it has).
        """
        self.steps += 1
        if self.steps > self.max_steps:
            raise _SearchStalled(f"autofocus: search stopped after {self.max_steps} passes without "
                                 f"progress ({self.frames} frames read)")

    def read(self):
        """Read one frame, counted against the budget.

        Raises:
            _OutOfFrames: the budget (``max_frames``) is used up.
            AutofocusError: the source ran dry.
        """
        if self.frames >= self.max_frames:
            raise _OutOfFrames()
        self.frames += 1
        try:
            return self.source.read()
        except SourceExhausted as e:
            raise AutofocusError(f"the frame source ran out during autofocus ({e})") from e

    def measure(self, x: float, approach: Optional[bool] = None, reuse: bool = True,
                tol: Optional[float] = None) -> Sample:
        """Move to ``x`` (snapped to the drive), settle, read a frame, score it; a sample
        already taken within ``tol`` (default half a resolution step) is reused."""
        self.tick()
        x = self.snap(x)
        if reuse:
            s = self.find(x, tol, approached=bool(approach))
            if s is not None:
                return s
        if x != self.drive.position or approach:
            before = self.drive.moves
            self.drive.move_to(x, approach=approach, overshoot=self.overshoot if approach else None)
            if self.drive.moves != before:
                self.settle_after_move()
        s = self._score(self.read(), self.drive.position)
        s.approached = bool(approach)
        return s

    def settle_after_move(self) -> None:
        """After a move: ask for a fresh frame, let the drive wait until its lens is there
        (``wait_settled``: the libcamera drive reads until the camera's metadata reports the
        target), then drop ``settle`` frames -- every frame counted against the budget."""
        self.fresh()
        wait = getattr(self.drive, "wait_settled", None)
        if wait is not None:
            wait(self.read)
        for _ in range(self.settle):
            self.read()

    def fresh(self) -> None:
        """Ask a live camera for a frame exposed after the move (picamera2: flush)."""
        fresh = getattr(self.source, "request_fresh", None)
        if fresh is not None:
            fresh()

    def here(self) -> Sample:
        """Score a frame at the current position without moving."""
        return self._score(self.read(), self.drive.position)

    def _score(self, frame, position: float) -> Sample:
        """Analyze ``frame`` taken at ``position``, remember and return its :class:`Sample`."""
        rep = self.analyzer.analyze(frame, track=False)
        sc, fl, mean = multiscale(frame.luma, self.roi, rep.noise_sigma_dn, self.params.centre_sigma)
        p = rep.p_in_focus if rep.mode == "cnn" else math.nan  # the CNN's, never the Laplacian mapping
        s = Sample(position=float(position), score=float(rep.sharpness), coarse=sc, coarse_floor=fl,
                   brightness=mean, informative=float(rep.informative_fraction),
                   p_in_focus=float(p) if p is not None and not math.isnan(p) else math.nan,
                   frame_index=frame.index, sharpness=float(rep.sharpness),
                   blur=float(getattr(rep, "blur_px", math.nan)))
        if self.params.score == "multiscale":
            # Every level measured here, at fixed scales: the analyzer's own sharpness is at its
            # analysis scale, which "auto" may change between frames.
            s.score = curve_score(sc, fl, roi_side_px(frame.luma.shape, self.roi))
        self.samples.append(s)
        return s

    def best(self) -> Sample:
        """The highest-scoring sample so far."""
        return max(self.samples, key=lambda s: s.score)

    def unique_sorted(self, approached: bool = False) -> List[Sample]:
        """One sample per position (the best), sorted; ``approached``: only samples reached
        from the approach side (consistent positions even with uncalibrated play), when
        there are at least three of them."""
        pool = self.samples
        if approached:
            same = [s for s in pool if s.approached]
            if len({round(s.position / self.res) for s in same}) >= 3:
                pool = same
        by = {}
        for s in pool:
            k = round(s.position / self.res)
            if k not in by or s.score > by[k].score:
                by[k] = s
        return [by[k] for k in sorted(by)]


class _OutOfFrames(Exception):
    """The run's frame budget is used up (the run finishes with what it has)."""


class _SearchStalled(_OutOfFrames):
    """A search loop passed :attr:`_Run.max_steps` times (the run finishes with what it has)."""


def _grid(lo: float, hi: float, n: int, res: float) -> List[float]:
    """``n`` (at least 2) evenly spaced positions over ``lo..hi``, snapped to multiples of
    ``res`` from ``lo``; positions closer than half a step to the previous are dropped."""
    pts = np.linspace(lo, hi, max(2, n))
    out = []
    for v in pts:
        v = lo + round((v - lo) / res) * res
        v = min(max(v, lo), hi)
        if not out or v - out[-1] >= res / 2:
            out.append(float(v))
    return out

