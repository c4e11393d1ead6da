"""Autofocus: turn the focus verdict into focus.

Strategies (selectable by name, one parameter object each):

* ``sweep`` (:class:`SweepParams`) -- the contrast-detect baseline: a coarse sweep over the
  whole range, a fine sweep around the best sample, a peak fit (Gaussian = parabola in
  log-sharpness, or a plain parabola) through the best samples, all approached from one
  side.  Several dozen frames.
* ``model`` (:class:`ModelParams`) -- model-guided: uses the *shape* of the focus measure.
  Laplacian variance of a frame reduced 8x is, near focus, a Gaussian of the lens position
  whose width is ~8x that of the full-resolution measure, so it sees the peak from far
  away: three samples of it give the peak position and the curve width by a log-parabola
  fit; the jump goes straight there, the width sets the spacing of the fine samples, and a
  full-resolution fit through three samples around the peak finishes.  ~10 frames.
* ``continuous`` (:class:`ContinuousAF`, :class:`ContinuousParams`) -- watch the ROI; search
  locally only when sharpness drops and stays down (not a one-frame flicker, not a scene
  cut), without hunting while focus is good.

Every run ends with the **quality gate** (:class:`GateParams`): too little light or
texture, a flat curve, a peak at the edge of the range or a poor fit make the run fail with
the reason, and the drive is returned to the best position seen -- never left wandering.
The :class:`AutofocusResult` carries final position, frames used, moves, time, the sampled
curve (``[[position, score], ...]``), success, reason and the fit.

The score is the analyzer's noise-corrected Laplacian variance of the ROI
(:attr:`~pifocus.focus.FocusReport.sharpness`).  The CNN's ``p_in_focus`` (when a model is
loaded) is recorded per sample, reported for the final frame and used by continuous AF to
decide whether a new scene needs focusing; everything works in Laplacian-only mode.
"""

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .exc import AutofocusError, ConfigError, SourceExhausted
from .validate import require

log = logging.getLogger(__name__)

STRATEGIES = ("model", "sweep", "continuous")
#: Down-scaling factors of the multi-scale focus measure.
SCALES = (2, 4, 8)


def _sub(cls, value, section):
    """Nested params from a TOML sub-table (dict) or an instance."""
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        from .config import build
        return build(cls, value, section)
    raise ConfigError(f"{section} must be a table of {cls.__name__} keys, got {value!r}")


@dataclass(frozen=True)
class GateParams:
    """Quality gate of every AF run (``[autofocus.gate]``).

    Attributes:
        min_brightness_dn: ROI mean luma at the best sample below this -> "too little light".
        min_informative: weighted share of ROI tiles with real texture at the best sample
            below this -> "too little texture".
        flat_ratio: (best + 1) / (worst + 1) score of the curve below this -> "flat curve".
        min_r2: R² of the peak fit (log domain) below this -> "poor fit".
        edge_margin: the peak counts as at the edge when the best sample is the first or
            last position of the range and the fit does not put the peak inside.
        verify_ratio: the final frame's score must reach this share of the best sample's,
            else the run moves back to the best sample (and fails if that does not hold either).
    """

    min_brightness_dn: float = 12.0
    min_informative: float = 0.05
    flat_ratio: float = 2.0
    min_r2: float = 0.6
    verify_ratio: float = 0.5

    def __post_init__(self):
        s = "autofocus.gate"
        require(0 <= self.min_brightness_dn <= 255, s, "min_brightness_dn", self.min_brightness_dn, "0..255")
        require(0 <= self.min_informative <= 1, s, "min_informative", self.min_informative, "0..1")
        require(1 <= self.flat_ratio <= 1000, s, "flat_ratio", self.flat_ratio, "1..1000")
        require(-1 <= self.min_r2 <= 1, s, "min_r2", self.min_r2, "-1..1")
        require(0 <= self.verify_ratio <= 1, s, "verify_ratio", self.verify_ratio, "0..1")


@dataclass(frozen=True)
class SweepParams:
    """Coarse-to-fine contrast sweep (``[autofocus.sweep]``).

    Attributes:
        coarse_points: samples spread over the whole range.
        fine_points: samples over +-1 coarse step around the best coarse sample.
        fit: ``"gaussian"`` (parabola through log-scores) or ``"parabola"`` (through scores).
        fit_points: samples around the best used in the fit (odd, >= 3).
    """

    coarse_points: int = 17
    fine_points: int = 9
    fit: str = "gaussian"
    fit_points: int = 5

    def __post_init__(self):
        s = "autofocus.sweep"
        require(3 <= int(self.coarse_points) <= 1000, s, "coarse_points", self.coarse_points, "3..1000")
        require(0 <= int(self.fine_points) <= 1000, s, "fine_points", self.fine_points, "0..1000")
        require(self.fit in ("gaussian", "parabola"), s, "fit", self.fit, "gaussian, parabola")
        require(int(self.fit_points) >= 3 and int(self.fit_points) % 2 == 1, s, "fit_points",
                self.fit_points, "odd, >= 3")


@dataclass(frozen=True)
class ModelParams:
    """Model-guided search (``[autofocus.model]``).

    Attributes:
        coarse_scale: down-scaling of the wide-range focus measure (2, 4 or 8).
        first_step: first probe distance, as a fraction of the range.
        informative_factor: a coarse score counts once it is this many times its noise floor.
        significance: the coarse peak must exceed the lowest coarse score this many times
            before it is trusted (defocus side lobes ripple by less).
        fine_factor: fine sample spacing as a fraction of the coarse curve's sigma.
        max_frames: hard cap on frames for one run.
        exhaustive_below: ranges with at most this many distinct positions are simply all
            sampled (short recorded sweeps).
        cnn_confident: when the CNN is loaded and a frame's ``p_in_focus`` reaches this, the
            wide-range search stops and the fine search starts around that frame (0 = never).
    """

    coarse_scale: int = 8
    first_step: float = 0.125
    informative_factor: float = 5.0
    significance: float = 20.0
    fine_factor: float = 0.35
    max_frames: int = 40
    exhaustive_below: int = 12
    cnn_confident: float = 0.9

    def __post_init__(self):
        s = "autofocus.model"
        require(int(self.coarse_scale) in SCALES, s, "coarse_scale", self.coarse_scale, "2, 4, 8")
        require(0 < self.first_step <= 1, s, "first_step", self.first_step, "0 < x <= 1")
        require(1 <= self.informative_factor <= 1000, s, "informative_factor", self.informative_factor, "1..1000")
        require(1 <= self.significance <= 1000, s, "significance", self.significance, "1..1000")
        require(0.05 <= self.fine_factor <= 2, s, "fine_factor", self.fine_factor, "0.05..2")
        require(6 <= int(self.max_frames) <= 1000, s, "max_frames", self.max_frames, "6..1000")
        require(0 <= int(self.exhaustive_below) <= 1000, s, "exhaustive_below", self.exhaustive_below, "0..1000")
        require(0 <= self.cnn_confident <= 1, s, "cnn_confident", self.cnn_confident, "0..1 (0 = off)")


@dataclass(frozen=True)
class ContinuousParams:
    """Continuous AF (``[autofocus.continuous]``).

    Attributes:
        drop_ratio: sharpness below this share of the in-focus reference counts as a drop.
        drop_frames: frames the drop must last before searching (ignores flicker).
        scene_cut: relative change of ROI brightness between frames that marks a scene cut
            (no search for it; the reference is re-learnt).
        relearn_frames: frames to re-learn the reference after a cut or a search.
        search_step: first local search step, as a fraction of the range.
        search_frames: most frames one local search may use.
        cnn_out_of_focus: after a scene cut, search only if the CNN's p_in_focus stays
            below this (Laplacian-only mode: never search just because of a cut).
        initial_search: start with one full (model-guided) autofocus run, so watching
            begins from focus.
        turn_tolerance: a refocus that finds the peak moved by more than this share of the
            range, with a curve of the same shape, is reported as a manual ring turn (or the
            subject moved along the axis).
    """

    drop_ratio: float = 0.6
    drop_frames: int = 4
    scene_cut: float = 0.25
    relearn_frames: int = 3
    search_step: float = 0.04
    search_frames: int = 16
    cnn_out_of_focus: float = 0.3
    initial_search: bool = True
    turn_tolerance: float = 0.02

    def __post_init__(self):
        s = "autofocus.continuous"
        require(0 < self.drop_ratio < 1, s, "drop_ratio", self.drop_ratio, "0 < x < 1")
        require(1 <= int(self.drop_frames) <= 1000, s, "drop_frames", self.drop_frames, "1..1000")
        require(0 < self.scene_cut <= 10, s, "scene_cut", self.scene_cut, "0 < x <= 10")
        require(1 <= int(self.relearn_frames) <= 100, s, "relearn_frames", self.relearn_frames, "1..100")
        require(0 < self.search_step <= 0.5, s, "search_step", self.search_step, "0 < x <= 0.5")
        require(4 <= int(self.search_frames) <= 200, s, "search_frames", self.search_frames, "4..200")
        require(0 <= self.cnn_out_of_focus <= 1, s, "cnn_out_of_focus", self.cnn_out_of_focus, "0..1")
        require(0 <= self.turn_tolerance <= 1, s, "turn_tolerance", self.turn_tolerance, "0..1")


@dataclass(frozen=True)
class AutofocusParams:
    """Autofocus configuration (config table ``[autofocus]``, sub-tables per strategy).

    Attributes:
        strategy: ``model`` (default), ``sweep`` or ``continuous``.
        score: the focus measure of the curve: ``multiscale`` (default: geometric mean of
            the noise-corrected Laplacian variance at full resolution and reduced 2x, 4x and
            8x -- every frequency band counts, so a small very sharp edge in a 3-D scene does
            not outvote the subject) or ``laplacian`` (the analyzer's sharpness alone).
        settle_frames: frames discarded after each move in addition to the drive's own.
        approach_overshoot: fine samples and the final position are approached from the
            drive's ``approach`` side after overshooting at least this share of the range
            (more when the drive's backlash is larger), so play that was never calibrated
            drops out too.  Costs travel, not frames.  0 = the drive's backlash only.
        start: position to start from (``None`` = wherever the drive is).
        sweep, model, continuous, gate: the per-strategy parameters and the quality gate.
    """

    strategy: str = "model"
    score: str = "multiscale"
    settle_frames: int = 0
    approach_overshoot: float = 0.05
    start: Optional[float] = None
    sweep: SweepParams = field(default_factory=SweepParams)
    model: ModelParams = field(default_factory=ModelParams)
    continuous: ContinuousParams = field(default_factory=ContinuousParams)
    gate: GateParams = field(default_factory=GateParams)

    def __post_init__(self):
        s = "autofocus"
        require(self.strategy in STRATEGIES, s, "strategy", self.strategy, ", ".join(STRATEGIES))
        require(self.score in ("multiscale", "laplacian"), s, "score", self.score, "multiscale, laplacian")
        require(0 <= int(self.settle_frames) <= 30, s, "settle_frames", self.settle_frames, "0..30")
        require(self.start is None or math.isfinite(float(self.start)), s, "start", self.start, "a number")
        require(0 <= self.approach_overshoot <= 0.5, s, "approach_overshoot", self.approach_overshoot, "0..0.5")
        for name, cls in (("sweep", SweepParams), ("model", ModelParams),
                          ("continuous", ContinuousParams), ("gate", GateParams)):
            object.__setattr__(self, name, _sub(cls, getattr(self, name), f"autofocus.{name}"))


# ---------------------------------------------------------------------------------------
# Measurements and fits
# ---------------------------------------------------------------------------------------

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

    def coarse_ok(self, scale: int, factor: float) -> bool:
        """The coarse score at ``scale`` is clearly above its noise floor."""
        return self.coarse[scale] > factor * (self.coarse_floor[scale] + 0.5)


def multiscale(luma: np.ndarray, roi, noise_sigma: float) -> Tuple[Dict[int, float], Dict[int, float], float]:
    """Laplacian variance of the ROI reduced by each of :data:`SCALES`, noise-corrected.

    Returns ``(scores, floors, mean)``: per scale the variance minus the noise term
    (``20 sigma² / s²`` for the 4-neighbour Laplacian of white noise averaged over s x s),
    that noise term, and the ROI mean luma.
    """
    import cv2

    h, w = luma.shape
    x, y, rw, rh = roi
    x0, y0 = int(round(x * w)), int(round(y * h))
    x1, y1 = max(x0 + 8, int(round((x + rw) * w))), max(y0 + 8, int(round((y + rh) * h)))
    a = luma[y0:y1, x0:x1].astype(np.float32)
    scores, floors = {}, {}
    var_n = float(noise_sigma) ** 2
    for s in SCALES:
        ww, hh = max(3, a.shape[1] // s), max(3, a.shape[0] // s)
        b = cv2.resize(a, (ww, hh), interpolation=cv2.INTER_AREA)
        lap = cv2.Laplacian(b, cv2.CV_32F, ksize=1)
        noise = 20.0 * var_n / (s * s)
        scores[s] = max(float(lap[1:-1, 1:-1].var()) - noise, 1e-3)
        floors[s] = noise
    return scores, floors, float(a.mean())


def fit_peak(xs, ys, model: str = "gaussian") -> Optional[dict]:
    """Fit a peak through samples: ``gaussian`` = parabola through log(y), or ``parabola``.

    Returns ``{"model", "peak", "sigma", "r2", "coef", "x", "y"}`` (``coef`` in the
    normalized coordinate ``u = (x - x_mid) / x_scale``; ``sigma`` only for gaussian), or
    None when there are fewer than 3 distinct positions or the curve is not concave.
    """
    xs = np.asarray(xs, np.float64)
    ys = np.asarray(ys, np.float64)
    if len(np.unique(xs)) < 3:
        return None
    mid = float((xs.max() + xs.min()) / 2)
    scale = float(max((xs.max() - xs.min()) / 2, 1e-9))
    u = (xs - mid) / scale
    t = np.log(np.maximum(ys, 1e-6)) if model == "gaussian" else ys
    try:
        coef = np.polyfit(u, t, 2)
    except (np.linalg.LinAlgError, ValueError):
        return None
    a, b, c = (float(v) for v in coef)
    pred = np.polyval(coef, u)
    ss_res = float(((t - pred) ** 2).sum())
    ss_tot = float(((t - t.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
    if not a < 0:
        return None
    peak_u = -b / (2 * a)
    out = {"model": model, "peak": mid + peak_u * scale, "r2": r2, "coef": [a, b, c],
           "x_mid": mid, "x_scale": scale, "x": xs.tolist(), "y": ys.tolist()}
    out["sigma"] = math.sqrt(-1.0 / (2 * a)) * scale if model == "gaussian" else None
    return out


def fit_eval(fit: dict, x) -> np.ndarray:
    """Evaluate a :func:`fit_peak` result at positions ``x`` (in score units)."""
    u = (np.asarray(x, np.float64) - fit["x_mid"]) / fit["x_scale"]
    t = np.polyval(fit["coef"], u)
    return np.exp(t) if fit["model"] == "gaussian" else t


@dataclass
class AutofocusResult:
    """The outcome of one AF run.

    Attributes:
        final_position: where the drive was left (drive units).
        frames_used: frames read (including frames discarded while settling).
        moves: physical drive moves (an overshoot + approach counts as two).
        time_s: wall time of the run.
        curve: ``[[position, score], ...]`` in sampling order.
        success: the quality gate passed.
        reason: ``"ok"`` or why the run failed.
        fit: the peak fit used (model, peak, r2, sigma, coefficients) or None.
        strategy: the strategy name.
        best_position, best_score: the best sample.
        final_score: score of the verification frame at the final position.
        p_in_focus: CNN in-focus probability of that frame (None in Laplacian-only mode).
    """

    final_position: float
    frames_used: int
    moves: int
    time_s: float
    curve: List[List[float]]
    success: bool
    reason: str
    fit: Optional[dict] = None
    strategy: str = ""
    best_position: Optional[float] = None
    best_score: Optional[float] = None
    final_score: Optional[float] = None
    p_in_focus: Optional[float] = None
    coarse_curve: List[List[float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dict (the ``autofocus --json`` object)."""
        def num(v, nd=3):
            if v is None:
                return None
            v = float(v)
            return round(v, nd) if math.isfinite(v) else None

        fit = None
        if self.fit:
            fit = {k: (num(v, 6) if isinstance(v, float) else v) for k, v in self.fit.items()
                   if k in ("model", "peak", "r2", "sigma", "coef", "x_mid", "x_scale", "stage")}
            if isinstance(fit.get("coef"), list):
                fit["coef"] = [num(c, 6) for c in fit["coef"]]
        return {
            "final_position": num(self.final_position, 4),
            "frames_used": int(self.frames_used),
            "moves": int(self.moves),
            "time_s": num(self.time_s, 3),
            "success": bool(self.success),
            "reason": self.reason,
            "strategy": self.strategy,
            "curve": [[num(p, 4), num(s, 3)] for p, s in self.curve],
            "fit": fit,
            "best_position": num(self.best_position, 4),
            "best_score": num(self.best_score, 3),
            "final_score": num(self.final_score, 3),
            "p_in_focus": num(self.p_in_focus, 4),
        }


class _Run:
    """Shared machinery of one AF run: move, settle, measure, count, remember."""

    def __init__(self, drive, source, analyzer, params: AutofocusParams, max_frames: int = 400):
        self.drive = drive
        self.source = source
        self.analyzer = analyzer
        self.params = params
        self.max_frames = max_frames
        self.samples: List[Sample] = []
        self.frames = 0
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
        return self.hi - self.lo

    def snap(self, x: float) -> float:
        return self.drive.clamp(x)

    def find(self, x: float, tol: Optional[float] = None, approached: bool = False) -> Optional[Sample]:
        tol = self.res / 2 if tol is None else max(tol, self.res / 2)
        for s in self.samples:
            if abs(s.position - x) <= tol and (s.approached or not approached):
                return s
        return None

    def read(self):
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
        x = self.snap(x)
        if reuse:
            s = self.find(x, tol, approached=bool(approach))
            if s is not None:
                return s
        if x != self.drive.position or approach:
            before = self.drive.moves
            self.drive.move_to(x, approach=approach, overshoot=self.overshoot if approach else None)
            if self.drive.moves != before:
                self.fresh()
                for _ in range(self.settle):
                    self.read()
        s = self._score(self.read(), self.drive.position)
        s.approached = bool(approach)
        return s

    def fresh(self) -> None:
        """Ask a live camera for a frame exposed after the move (picamera2: flush)."""
        fresh = getattr(self.source, "request_fresh", None)
        if fresh is not None:
            fresh()

    def here(self) -> Sample:
        """Score a frame at the current position without moving."""
        return self._score(self.read(), self.drive.position)

    def _score(self, frame, position: float) -> Sample:
        rep = self.analyzer.analyze(frame, track=False)
        sc, fl, mean = multiscale(frame.luma, self.roi, rep.noise_sigma_dn)
        p = rep.p_in_focus if rep.mode == "cnn" else math.nan  # the CNN's, never the Laplacian mapping
        s = Sample(position=float(position), score=float(rep.sharpness), coarse=sc, coarse_floor=fl,
                   brightness=mean, informative=float(rep.informative_fraction),
                   p_in_focus=float(p) if p is not None and not math.isnan(p) else math.nan,
                   frame_index=frame.index, sharpness=float(rep.sharpness))
        if self.params.score == "multiscale":
            vals = [max(s.sharpness, 1e-3)] + [sc[k] for k in SCALES]
            s.score = float(np.exp(np.mean(np.log(vals))))
        self.samples.append(s)
        return s

    def best(self) -> Sample:
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
    pass


# ---------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------

def _grid(lo: float, hi: float, n: int, res: float) -> List[float]:
    pts = np.linspace(lo, hi, max(2, n))
    out = []
    for v in pts:
        v = lo + round((v - lo) / res) * res
        v = min(max(v, lo), hi)
        if not out or v - out[-1] >= res / 2:
            out.append(float(v))
    return out


def _neighbourhood(samples: List[Sample], best: Sample, k: int, key=lambda s: s.score) -> List[Sample]:
    """``k`` samples (sorted by position) centred on ``best``."""
    srt = sorted(samples, key=lambda s: s.position)
    i = srt.index(best)
    half = k // 2
    a = max(0, min(i - half, len(srt) - k))
    return srt[a:a + k]


def _fit_around(run: _Run, model: str = "gaussian", k: int = 3, pool: Optional[List[Sample]] = None):
    pool = run.unique_sorted() if pool is None else pool
    if len(pool) < 3:
        return None, None
    best = max(pool, key=lambda s: s.score)
    nb = _neighbourhood(pool, best, min(k, len(pool)))
    fit = fit_peak([s.position for s in nb], [s.score for s in nb], model)
    return fit, best


def _sweep(run: _Run, p: SweepParams) -> Tuple[Optional[dict], Optional[float]]:
    """Coarse sweep upwards over the range, fine sweep around the best, fit."""
    up = run.drive.params.approach_sign > 0
    coarse = _grid(run.lo, run.hi, p.coarse_points, run.res)
    order = coarse if up else coarse[::-1]
    for x in order:
        run.measure(x, approach=True)   # ascending on the approach side: no overshoot needed
    best = run.best()
    step = coarse[1] - coarse[0] if len(coarse) > 1 else run.res
    if p.fine_points > 0 and step > run.res:
        fine = _grid(max(run.lo, best.position - step), min(run.hi, best.position + step),
                     p.fine_points, run.res)
        order = fine if up else fine[::-1]
        for x in order:
            run.measure(x, approach=True)
    fit, best = _fit_around(run, p.fit, p.fit_points)
    target = None
    if fit is not None:
        # The fit interpolates between samples: never further than the neighbours of the best.
        srt = run.unique_sorted()
        i = srt.index(best)
        a = srt[i - 1].position if i > 0 else best.position
        b = srt[i + 1].position if i < len(srt) - 1 else best.position
        target = min(max(fit["peak"], a), b)
        if abs(target - best.position) > 0.5 * (b - a) / 2 + 1e-9:
            # A multi-peaked or skewed neighbourhood: refit with the best and its two neighbours.
            f3, _ = _fit_around(run, p.fit, 3)
            if f3 is not None:
                fit = f3
                target = min(max(f3["peak"], a), b)
    return fit, target


def _model(run: _Run, p: ModelParams) -> Tuple[Optional[dict], Optional[float]]:
    """Model-guided search (see the module doc)."""
    res, lo, hi = run.res, run.lo, run.hi
    n_pos = int(round(run.span / res)) + 1
    if n_pos <= max(3, p.exhaustive_below):
        return _sweep(run, SweepParams(coarse_points=n_pos, fine_points=0, fit="gaussian", fit_points=3))
    sc = int(p.coarse_scale)
    step = max(res, run.span * p.first_step)
    start = run.here()
    direction = 1 if (hi - start.position) >= (start.position - lo) else -1
    turned = False
    cfit = None
    x_hat = None

    def c(smp):
        return smp.coarse[sc]

    # Phase 1: find the peak of the wide-range measure.  Scan with big steps (towards the
    # side with more room, reversing at once if the first probe is clearly worse) until the
    # best sample stands clearly above the rest with lower samples on both sides; a concave
    # one-sided trend jumps ahead to the predicted peak.  Small ripples (the side lobes of a
    # strongly defocused disk blur) neither stop nor turn the scan.
    scan_pos = start.position
    while run.frames < p.max_frames - 5:
        last = run.samples[-1]
        if p.cnn_confident > 0 and last.p_in_focus >= p.cnn_confident:
            # The CNN (when loaded) is sure this frame is in focus: refine right here.
            x_hat = last.position
            break
        U = run.unique_sorted()
        inf = [u for u in U if u.coarse_ok(sc, p.informative_factor)]
        floor_c = min(c(u) for u in U)
        nxt = None
        best = max(U, key=c)
        i = U.index(best)
        left = U[i - 1] if i > 0 else None
        right = U[i + 1] if i < len(U) - 1 else None
        significant = best in inf and c(best) >= p.significance * floor_c
        if significant and left is not None and right is not None:
            f = fit_peak([left.position, best.position, right.position],
                         [c(left), c(best), c(right)], "gaussian")
            if f is None:
                x_hat = best.position
                break
            cfit = f
            peak = min(max(f["peak"], left.position), right.position)
            width = right.position - left.position
            if width <= 3.0 * f["sigma"] or width <= 4 * res:
                x_hat = peak
                break
            nxt = peak
            if run.find(run.snap(nxt)) is not None:  # sample the wider half instead
                nxt = (best.position + (left.position if best.position - left.position >
                                        right.position - best.position else right.position)) / 2
        elif significant and ((best.position >= hi - res / 2 and right is None)
                              or (best.position <= lo + res / 2 and left is None)) and len(U) >= 3:
            inner = right if right is not None else left
            if abs(inner.position - best.position) <= max(4 * res, step / 4):
                x_hat = best.position  # rising to the end of the range: the gate will say so
                break
            nxt = (inner.position + best.position) / 2  # the peak may lie between: look
        else:
            if len(run.samples) == 2 and not turned:
                a0, a1 = run.samples[0], run.samples[1]
                if a0 in inf and c(a0) >= 2.0 * c(a1):
                    direction = -direction  # clearly the wrong way: turn now
                    turned = True
                    scan_pos = start.position
            nxt = scan_pos + direction * step
            if significant and U[-1 if direction > 0 else 0] is best:
                # Rising in the scan direction: a concave trend predicts the peak; jump there.
                others = [u for u in U if (u.position - best.position) * direction < 0]
                others = sorted(others, key=lambda u: abs(u.position - best.position))[:2]
                if len(others) == 2:
                    f = fit_peak([o.position for o in others] + [best.position],
                                 [c(o) for o in others] + [c(best)], "gaussian")
                    if f is not None and (f["peak"] - best.position) * direction > res:
                        nxt = best.position + direction * min(abs(f["peak"] - best.position), 2 * step)
            if nxt > hi + res / 2 or nxt < lo - res / 2:
                if scan_pos != (hi if direction > 0 else lo):
                    nxt = hi if direction > 0 else lo  # look at the end of the range too
                elif turned:
                    break  # whole range scanned: let the gate say why
                else:
                    turned = True
                    direction = -direction
                    edge = min(u.position for u in U) if direction < 0 else max(u.position for u in U)
                    nxt = edge + direction * step
                    if nxt > hi + res / 2 or nxt < lo - res / 2:
                        nxt = hi if direction > 0 else lo
            scan_pos = run.snap(nxt)
        nxt = run.snap(nxt)
        if run.find(nxt) is not None:
            if significant:
                x_hat = best.position
                break
            scan_pos = nxt
            if turned and (nxt <= lo + res / 2 or nxt >= hi - res / 2):
                break
            continue
        run.measure(nxt)
    if x_hat is None:
        x_hat = run.best().position
    # Phase 2: fine samples around the predicted peak, spaced by the width of the curve;
    # walk (with growing steps) while the best sample has no close neighbour on a side.
    sigma = cfit["sigma"] if cfit is not None else step / 2
    h = max(res, min(step, p.fine_factor * sigma))
    if res >= 1:
        h = max(res, round(h / res) * res)
    up = run.drive.params.approach_sign > 0
    centre = run.snap(x_hat)
    for attempt in range(2):
        pts = [centre - h, centre, centre + h]
        for x in (pts if up else pts[::-1]):
            if lo - res / 2 <= x <= hi + res / 2:
                run.measure(x, approach=True, tol=h / 4)
        hx, walked = h, 0
        while walked < 10 and run.frames < run.max_frames - 2:
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
        best = run.best()
        if attempt == 0 and best.informative < run.params.gate.min_informative:
            # No real detail at the best sample: the coarse peak was a side lobe of a strong
            # defocus (or there is nothing to focus on).  Scan what is left of the range once.
            for x in _grid(lo, hi, int(round(run.span / step)) + 1, res):
                if all(abs(u.position - x) > step / 2 for u in run.samples):
                    if run.frames >= run.max_frames - 6:
                        break
                    run.measure(x)
            sig = [u for u in run.unique_sorted() if u.coarse_ok(sc, p.informative_factor)]
            if sig:
                cbest = max(sig, key=c)
                if run.find(cbest.position) is not None and abs(cbest.position - centre) > 2 * h:
                    centre = run.snap(cbest.position)
                    h = max(res, min(h, step / 4))
                    continue
        break
    centre = max(run.unique_sorted(approached=True), key=lambda u: u.score).position
    h = max(h, hx)
    # All samples close to the peak and hardly different (a deep depth of focus, or a lens
    # that does not move at all): look further out once, so the gate judges on evidence.
    U = run.unique_sorted()
    if (max(u.score for u in U) + 1) / (min(u.score for u in U) + 1) < run.params.gate.flat_ratio:
        far = max(4 * h, step)
        for x in (centre - far, centre + far):
            if lo - res / 2 <= x <= hi + res / 2 and run.frames < run.max_frames - 2:
                run.measure(x)
    fine = [u for u in run.unique_sorted(approached=True) if abs(u.position - centre) <= 6.5 * h + res / 2]
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


# ---------------------------------------------------------------------------------------
# The gate and the run
# ---------------------------------------------------------------------------------------

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


def _gate(run: _Run, fit: Optional[dict], gate: GateParams) -> Tuple[bool, str]:
    samples = run.unique_sorted()
    best = max(samples, key=lambda s: s.score)
    brightest = max(s.brightness for s in samples)
    if brightest < gate.min_brightness_dn:
        return False, (f"too little light: ROI mean {brightest:.1f} DN < {gate.min_brightness_dn:g}; "
                       "add light or raise exposure/gain")
    if max(s.informative for s in samples) < gate.min_informative:
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
        return False, (f"peak at the {'near' if at_lo else 'far'} edge of the range ({best.position:g}): "
                       "focus may lie beyond the limits; widen drive.min_position/max_position or move the camera")
    if fit is None:
        return False, "no peak fit: the curve around the best sample is not peaked"
    r2 = _quality_r2(run, fit["peak"])
    if r2 is not None:
        fit["r2"] = r2
    if fit.get("r2", 1.0) < gate.min_r2:
        return False, f"poor peak fit: R² {fit['r2']:.2f} < {gate.min_r2:g}; noisy or multi-peaked curve"
    return True, "ok"


def autofocus(drive, analyzer, params: AutofocusParams = AutofocusParams(), source=None,
              strategy: Optional[str] = None, start: Optional[float] = None) -> AutofocusResult:
    """Run one autofocus pass.

    Args:
        drive: an open (or openable) :class:`~pifocus.drive.FocusDrive`.
        analyzer: a :class:`~pifocus.focus.FocusAnalyzer` (Laplacian-only mode is fine).
        params: :class:`AutofocusParams`.
        source: where frames come from; default ``drive.source``.
        strategy: ``model`` or ``sweep`` (default ``params.strategy``; ``continuous`` runs
            one local search from the current position).
        start: move here first (default ``params.start``, else stay).

    Returns:
        :class:`AutofocusResult` (a quality-gate failure is ``success=False`` with the reason;
        the drive then stands at the best position seen).

    Raises:
        AutofocusError: no frame source, or the source ran dry.
    """
    strategy = strategy or params.strategy
    if strategy not in STRATEGIES:
        raise ConfigError(f"autofocus strategy {strategy!r} is unknown; use one of {', '.join(STRATEGIES)}")
    source = source if source is not None else getattr(drive, "source", None)
    if source is None:
        raise AutofocusError(f"drive {drive.name!r} shows no frames by itself; give a camera source")
    if drive.closed:
        drive.open()
    start = params.start if start is None else start
    settle = (int(params.settle_frames) + int(getattr(drive.params, "settle_frames", 0))
              + int(getattr(drive, "pipeline_frames", 0)))
    budget = max(params.model.max_frames, 3 * params.sweep.coarse_points + params.sweep.fine_points + 8)
    run = _Run(drive, source, analyzer, params, max_frames=budget * (1 + settle))
    if start is not None:
        drive.move_to(drive._legal(start))  # LimitError with on_limit="error"
    # Frames in flight may predate the last move (ours, homing, a previous run): drop them.
    for _ in range(run.settle):
        run.read()
    fit, target = None, None
    try:
        if strategy == "sweep":
            fit, target = _sweep(run, params.sweep)
        elif strategy == "model":
            fit, target = _model(run, params.model)
        else:
            fit, target = _local_search(run, params.continuous)
    except _OutOfFrames:
        log.warning("autofocus: frame budget exhausted; finishing with the best sample")
    if not run.samples:
        run.here()
    ok, reason = _gate(run, fit, params.gate)
    best = run.best()
    final_score = p_final = None
    if ok and target is not None:
        final = run.snap(target)
    else:
        final = best.position
    # Final approach, always from the same side, then one frame to verify.
    run.max_frames += 2 + run.settle  # the verification may exceed the search budget
    drive.move_to(final, approach=True, overshoot=run.overshoot)
    run.fresh()
    for _ in range(run.settle):
        run.read()
    v = run.here()
    if ok and v.score < params.gate.verify_ratio * best.score and final != best.position:
        log.info("autofocus: fitted peak %.3g scored %.3g < %.0f%% of best %.3g; going to the best sample",
                 final, v.score, 100 * params.gate.verify_ratio, best.score)
        drive.move_to(best.position, approach=True, overshoot=run.overshoot)
        run.fresh()
        for _ in range(run.settle):
            run.read()
        v = run.here()
        final = best.position
    if ok and v.score < params.gate.verify_ratio * best.score:
        ok, reason = False, (f"focus not reproducible: the final frame scores {v.score:.3g}, below "
                             f"{params.gate.verify_ratio:.0%} of the best {best.score:.3g} (lens slipping, "
                             "missed steps or a moving subject)")
    final_score, p_final = v.score, v.p_in_focus
    # The verification sample is part of the curve but not a candidate for "best" later.
    res = AutofocusResult(
        final_position=float(drive.position), frames_used=run.frames, moves=drive.moves - run.moves0,
        time_s=time.perf_counter() - run.t0,
        curve=[[s.position, s.score] for s in run.samples], success=ok, reason=reason, fit=fit,
        strategy=strategy, best_position=best.position, best_score=best.score, final_score=final_score,
        p_in_focus=None if p_final is None or math.isnan(p_final) else p_final,
        coarse_curve=[[s.position, s.coarse[8]] for s in run.samples])
    return res


def _local_search(run: _Run, p: ContinuousParams) -> Tuple[Optional[dict], Optional[float]]:
    """Hill-climb from the current position with a shrinking step, then fit (continuous AF)."""
    res = run.res
    step = max(res, round(run.span * p.search_step / res) * res)
    run.max_frames = run.frames + p.search_frames
    cur = run.here()
    while True:
        a = run.measure(cur.position - step, approach=True) if cur.position - step >= run.lo - res / 2 else None
        b = run.measure(cur.position + step, approach=True) if cur.position + step <= run.hi + res / 2 else None
        cands = [s for s in (a, b) if s is not None and s.position != cur.position]
        better = max(cands, key=lambda s: s.score, default=None)
        if better is not None and better.score > cur.score:
            cur = better          # climb; keep the step while climbing
            continue
        if step <= res or step <= run.span * 0.005:
            break
        step = max(res, round(step / 2 / res) * res)
    pool = [s for s in run.unique_sorted() if abs(s.position - cur.position) <= 2 * step + res]
    fit, _ = _fit_around(run, "gaussian", 3, pool=pool)
    target = fit["peak"] if fit is not None and min(fit["x"]) <= fit["peak"] <= max(fit["x"]) else cur.position
    return fit, target


# ---------------------------------------------------------------------------------------
# Continuous AF
# ---------------------------------------------------------------------------------------

class ContinuousAF:
    """Continuous autofocus: keep the subject sharp over a stream of frames.

    Feed every frame's report to :meth:`update` (or call :meth:`step` to read and judge one
    frame from the drive's source).  States:

    * ``learn`` -- collect ``relearn_frames`` frames: the in-focus reference sharpness;
    * ``watch`` -- compare each frame with the reference: a drop below ``drop_ratio`` must
      last ``drop_frames`` frames (flicker is ignored); a jump in ROI brightness is a scene
      cut: the reference is re-learnt, no search (unless the CNN says the new scene is out
      of focus);
    * a sustained drop runs one local search (:func:`autofocus` with the ``continuous``
      strategy) and re-learns.

    Attributes:
        searches: local searches run so far; ``results`` their :class:`AutofocusResult` s.
    """

    def __init__(self, drive, analyzer, params: AutofocusParams = AutofocusParams(), source=None):
        self.drive = drive
        self.analyzer = analyzer
        self.params = params
        self.source = source if source is not None else drive.source
        self.p = params.continuous
        self.state = "learn"
        self.reference = math.nan
        self._learn: List[float] = []
        self._low = 0
        self._cnn_low = 0
        self._last_brightness = None
        self.searches = 0
        self.results: List[AutofocusResult] = []
        self.frames = 0
        self.events: List[Tuple[int, str]] = []
        #: focus shifts reported as manual ring turns (drive units)
        self.turns: List[float] = []
        self._cut_since_focus = False

    def step(self) -> str:
        """Read one frame, judge it, act.  Returns the event: ``learn``, ``ok``, ``low``,
        ``cut``, ``search``."""
        frame = self.source.read()
        self.frames += 1
        rep = self.analyzer.analyze(frame, track=False)
        _, _, mean = multiscale(frame.luma, self.analyzer.params.effective_roi, rep.noise_sigma_dn)
        p_cnn = rep.p_in_focus if rep.mode == "cnn" else math.nan
        return self.update(rep.sharpness, mean, p_cnn)

    def update(self, score: float, brightness: float, p_in_focus: float = math.nan) -> str:
        """Judge one frame's score and ROI brightness; search when needed.

        Returns the event: ``learn``, ``ok``, ``low``, ``cut``, ``search`` (a local search
        ran), ``focus`` (the initial full AF ran), ``manual_turn`` (a search found the peak
        moved, same curve shape: the ring was turned by hand or the subject moved).
        """
        p = self.p
        if p.initial_search and not self.results and self.searches == 0 and self.state == "learn" \
                and not self._learn:
            r = autofocus(self.drive, self.analyzer, self.params, source=self.source, strategy="model")
            self.results.append(r)
            self.frames += r.frames_used
            self.searches += 1
            self._relearn()
            self._last_brightness = brightness
            self.events.append((self.frames, "focus"))
            return "focus"
        ev = self._judge(score, brightness, p_in_focus)
        if ev == "search":
            prev = self.results[-1] if self.results else None
            self.searches += 1
            r = autofocus(self.drive, self.analyzer, self.params, source=self.source, strategy="continuous")
            self.results.append(r)
            self.frames += r.frames_used
            self._relearn()
            if prev is not None and r.success and prev.success and not self._cut_since_focus:
                from .drive import RingWatch
                lo, hi = self.drive.limits
                w = RingWatch(tolerance=p.turn_tolerance * (hi - lo))
                w.reset(prev.curve, prev.final_position)
                found = w.locate(r.curve)
                shift = r.final_position - prev.final_position
                if abs(shift) > w.tolerance and found["manual_turn"]:
                    log.warning("continuous AF: focus moved by %+.4g %s (ring turned by hand, or the subject "
                                "moved); refocused", shift, self.drive.units)
                    self.turns.append(shift)
                    ev = "manual_turn"
            self._cut_since_focus = False
        self.events.append((self.frames, ev))
        return ev

    def _relearn(self) -> None:
        self.state = "learn"
        self._learn = []
        self._low = 0
        self._cnn_low = 0

    def _judge(self, score: float, brightness: float, p_in_focus: float) -> str:
        p = self.p
        last = self._last_brightness
        self._last_brightness = brightness
        if last is not None and abs(brightness - last) > p.scene_cut * max(last, 8.0):
            self._relearn()
            self._cnn_after_cut = True
            self._cut_since_focus = True
            return "cut"
        if self.state == "learn":
            self._learn.append(score)
            if len(self._learn) >= p.relearn_frames:
                self.reference = float(np.median(self._learn))
                self.state = "watch"
                # After a cut, the CNN (when there is one) decides whether the new scene is in focus.
                if getattr(self, "_cnn_after_cut", False) and not math.isnan(p_in_focus) \
                        and p_in_focus < p.cnn_out_of_focus:
                    self._cnn_after_cut = False
                    return "search"
                self._cnn_after_cut = False
            return "learn"
        if score < p.drop_ratio * self.reference:
            self._low += 1
            if self._low >= p.drop_frames:
                return "search"
            return "low"
        self._low = 0
        # Slowly follow a reference that improves (the subject got sharper on its own).
        if score > self.reference:
            self.reference = 0.9 * self.reference + 0.1 * score
        return "ok"


__all__ = ["AutofocusParams", "SweepParams", "ModelParams", "ContinuousParams", "GateParams",
           "AutofocusResult", "autofocus", "ContinuousAF", "fit_peak", "fit_eval", "multiscale", "STRATEGIES"]
