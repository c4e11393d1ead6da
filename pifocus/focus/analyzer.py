"""The :class:`FocusAnalyzer`: one frame in, one :class:`FocusReport` out.

Stages (each timed into ``report.timings_ms``):

1. **prefilter** -- tile grid over the subject ROI; one Laplacian + Immerkær pass gives every
   tile's Laplacian variance, noise estimate and brightness; a signal-dependent noise model
   gives each tile's noise floor; tiles not clearly above it are uninformative.
2. **cnn** -- the informative tiles (at most ``max_cnn_tiles``) are cut at full resolution,
   centred on their most detailed part, and classified in batches.  With ``use_cnn=False``
   (Laplacian-only mode) each tile's probability comes from its Laplacian variance instead.
3. **verdict** -- weighted share of informative tiles in focus, hysteresis + dwell, and the
   peak-hold meter.

With a model that has the blur and motion heads (:attr:`ModelInfo.has_blur
<pifocus.classify.ModelInfo.has_blur>`), a tile is in focus when its estimated defocus
radius is within ``coc_px`` and it is not motion-blurred; the subject's ``blur_px`` is the
radius that ``on_fraction`` of the informative weight is at or below (so ``blur_px <= coc_px``
is the in-focus rule itself), the verdict category (:data:`~pifocus.focus.blur.CATEGORIES`)
follows from it, and the meter is capped by ``coc_px / blur_px`` so a soft first frame of a
pass cannot read 100 %.  A frame with too little detail at the analysis scale is judged again
on a reduced copy (``coarse_levels``): a strongly defocused subject is ``out_of_focus`` with
a large ``blur_px``, not ``no_detail``.  Models without the heads keep the binary rule.
"""

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Dict, Optional, Tuple, Union

import numpy as np

from ..frames import Frame
from ..validate import require
from . import blur as b
from . import exposure as ex
from . import measures as m
from . import scale as sc
from .report import FocusReport
from .verdict import PeakHold, PeakHoldParams, Verdict, VerdictParams

log = logging.getLogger(__name__)

#: Default subject region: the central 60 % of the frame, centre-weighted.
DEFAULT_ROI = (0.2, 0.2, 0.6, 0.6)


@dataclass(frozen=True)
class AnalysisParams:
    """Validated parameters of the focus analysis (config table ``[analysis]``).

    Attributes:
        roi: subject region ``(x, y, w, h)`` in normalized frame coordinates; ``None`` means
            the default centre-weighted region.
        rows, cols: tile grid over the ROI.
        block_px: sub-block size (px) used to place CNN crops inside tiles.
        gate_factor: a tile is informative when its Laplacian variance exceeds this multiple
            of the noise floor.
        noise_percentile: percentile of tiles' noise ratios taken as the sensor noise.
        noise_offset_dn: read-noise term of the noise model, in DN of brightness.
        min_noise_sigma_dn: lowest noise the model assumes (quantization, JPEG), DN RMS.
        use_cnn: classify tiles with the CNN; False = Laplacian-only mode.
        model: path of a ``.tflite`` model; ``None`` = the shipped one.
        num_threads: LiteRT interpreter threads (capped at the physical cores).
        max_cnn_tiles: most tiles sent to the CNN per frame (the most detailed win).
        threshold: tile probability counted as in focus; ``None`` = the model's own.
        laplacian_threshold_dn2: Laplacian-only mode: noise-corrected tile Laplacian
            variance at which a tile is even odds in focus (DN²).
        centre_sigma: width of the centre weighting (fraction of the ROI); used only when
            ``roi`` is None; a configured rectangle weights its tiles equally.
        coc_px: circle of confusion: the largest defocus blur *radius* (pixels at the
            analysis scale) still called in focus.  1.0 = critical focus at 100 % view; raise
            it for a looser "acceptably sharp".  Used with a model that has the blur head.
        near_factor: a subject blurred by at most this many times ``coc_px`` is ``near``.
        motion_fraction: weighted share of judged tiles flagged as motion-blurred above
            which the frame is ``motion_blur`` (never in focus).
        analysis_scale: sensor pixels per analysis pixel: ``"auto"`` (default) picks, per
            ROI, the pyramid level where the subject's detail lives (1, 2, 3 or 4; see
            :mod:`pifocus.focus.scale`), so an oversampled rig (a macro lens, a microscope,
            the HQ Camera's 4056 x 3040 mode behind a soft lens) or an upscaled stream is
            judged like a sharp small frame; an integer 1..4 fixes it (1 = full resolution).
        auto_ratio: ``"auto"``: a level qualifies when the ROI's noise-corrected Laplacian
            variance one octave coarser is less than this many times its own (1 = natural
            detail at the level's Nyquist limit, 16 = no detail at this level at all).
        coarse_levels: a frame with too little detail at the analysis scale is judged again
            reduced 2x, 4x, ... up to this factor, so a strongly defocused subject with real
            structure reads ``out_of_focus`` (with its blur, with the blur head) instead of
            ``no_detail``.  Judged only there, a frame is never in focus.  1 = never.
        exposure: measure the exposure readouts (levels, clipping, histogram, ISO) of every
            frame into ``report.exposure`` (:func:`pifocus.focus.exposure.frame_exposure`,
            a decimated pass of about 0.2 ms).
        coarse_min_share: a reduced copy counts only when at least this share of its tile
            weight is textured (a stray noisy tile is not a blurred subject).
        min_meter: the live verdict stays off (or turns off) while the peak-hold meter
            (sharpness relative to the best of this focusing pass) is below this: once the
            pass has gone through focus, a frame far below its peak is not in focus whatever
            the tiles say.  0 = off.
        verdict, peak: the verdict and peak-hold parameters.
    """

    roi: Optional[Tuple[float, float, float, float]] = None
    rows: int = 6
    cols: int = 8
    block_px: int = 8
    gate_factor: float = 3.0
    noise_percentile: float = 10.0
    noise_offset_dn: float = 8.0
    min_noise_sigma_dn: float = 0.5
    use_cnn: bool = True
    model: Optional[str] = None
    num_threads: int = 1
    max_cnn_tiles: int = 48
    threshold: Optional[float] = None
    laplacian_threshold_dn2: float = 300.0
    centre_sigma: float = 0.6
    coc_px: float = 1.0
    near_factor: float = 2.5
    motion_fraction: float = 0.5
    analysis_scale: Union[int, str] = "auto"
    auto_ratio: float = 4.0
    coarse_levels: int = 8
    exposure: bool = True
    coarse_min_share: float = 0.15
    min_meter: float = 0.7
    verdict: VerdictParams = field(default_factory=VerdictParams)
    peak: PeakHoldParams = field(default_factory=PeakHoldParams)

    def __post_init__(self):
        s = "analysis"
        if self.roi is not None:
            roi = tuple(float(v) for v in self.roi)
            require(len(roi) == 4, s, "roi", self.roi, "[x, y, w, h] in 0..1")
            x, y, w, h = roi
            require(0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 and 0 < h <= 1
                    and x + w <= 1.0001 and y + h <= 1.0001, s, "roi", self.roi,
                    "x, y in [0, 1), w, h in (0, 1], x+w <= 1, y+h <= 1 (normalized frame coordinates)")
            object.__setattr__(self, "roi", roi)
        require(1 <= int(self.rows) <= 64, s, "rows", self.rows, "1..64")
        require(1 <= int(self.cols) <= 64, s, "cols", self.cols, "1..64")
        require(int(self.block_px) in (4, 8, 16), s, "block_px", self.block_px, "4, 8 or 16")
        require(1.0 <= self.gate_factor <= 100, s, "gate_factor", self.gate_factor, "1..100")
        require(0 <= self.noise_percentile <= 100, s, "noise_percentile", self.noise_percentile, "0..100")
        require(0 <= self.min_meter < 1, s, "min_meter", self.min_meter, "0 <= x < 1 (0 = off)")
        require(0 <= self.noise_offset_dn <= 255, s, "noise_offset_dn", self.noise_offset_dn, "0..255")
        require(0 < self.min_noise_sigma_dn <= 50, s, "min_noise_sigma_dn", self.min_noise_sigma_dn, "0 < x <= 50")
        require(1 <= int(self.num_threads) <= 64, s, "num_threads", self.num_threads, "1..64")
        require(1 <= int(self.max_cnn_tiles) <= 4096, s, "max_cnn_tiles", self.max_cnn_tiles, "1..4096")
        require(self.threshold is None or 0 < self.threshold < 1, s, "threshold", self.threshold, "0 < x < 1")
        require(self.laplacian_threshold_dn2 > 0, s, "laplacian_threshold_dn2", self.laplacian_threshold_dn2, "> 0")
        require(0.05 <= self.centre_sigma <= 10, s, "centre_sigma", self.centre_sigma, "0.05..10")
        require(0.25 <= self.coc_px <= 8, s, "coc_px", self.coc_px,
                "0.25..8 px (blur radius; 1.0 = critical focus at 100 % view)")
        require(1 < self.near_factor <= 20, s, "near_factor", self.near_factor, "1 < x <= 20")
        require(0 < self.motion_fraction <= 1, s, "motion_fraction", self.motion_fraction, "0 < x <= 1")
        a = self.analysis_scale
        require(a == "auto" or (isinstance(a, (int, float)) and not isinstance(a, bool)
                                and float(a).is_integer() and int(a) in (1, 2, 3, 4)),
                s, "analysis_scale", a, '"auto" (the level where the detail lives, per ROI) or 1, 2, 3, 4 '
                "sensor pixels per analysis pixel")
        if a != "auto":
            object.__setattr__(self, "analysis_scale", int(a))
        require(1.5 <= self.auto_ratio <= 16, s, "auto_ratio", self.auto_ratio, "1.5..16")
        require(0 < self.coarse_min_share <= 1, s, "coarse_min_share", self.coarse_min_share, "0 < x <= 1")
        require(int(self.coarse_levels) in (1, 2, 4, 8, 16), s, "coarse_levels", self.coarse_levels,
                "1 (off), 2, 4, 8 or 16")

    @property
    def effective_roi(self) -> Tuple[float, float, float, float]:
        """The ROI actually analysed."""
        return self.roi if self.roi is not None else DEFAULT_ROI


class _Level:
    """One pyramid level's geometry, weights and buffers (rebuilt when the frame size or the
    ROI changes)."""

    def __init__(self, params: "AnalysisParams", h: int, w: int):
        self.key = (h, w, params.effective_roi, params.rows, params.cols)
        roi_px = m.roi_pixels(params.effective_roi, w, h)
        self.geom = m.grid_geometry(roi_px, params.rows, params.cols, params.block_px)
        g = self.geom
        self.weights = (m.centre_weights(g.rows, g.cols, params.centre_sigma) if params.roi is None
                        else np.ones((g.rows, g.cols), np.float32))
        self.workspace = m.Workspace()


class _Judged:
    """What one pyramid level concluded (arrays of shape ``(rows, cols)``)."""

    def __init__(self, level: _Level, st, k: float, floor, informative, factor: int):
        self.level, self.st, self.k, self.floor, self.informative = level, st, k, floor, informative
        self.factor = factor          # sensor pixels per pixel of this level
        shape = st.lap_var.shape
        self.p = np.full(shape, np.nan, np.float32)
        self.blur = np.full(shape, np.nan, np.float32)   # defocus radius, sensor px
        self.motion = np.full(shape, np.nan, np.float32)
        self.n_cnn = 0

    @property
    def judged(self) -> np.ndarray:
        """Tiles that carry a verdict (informative and classified)."""
        return self.informative & ~np.isnan(self.p)


def _reduce(luma: np.ndarray, factor: int) -> np.ndarray:
    """The frame reduced ``factor`` x by area averaging (what one analysis pixel integrates)."""
    if factor == 1:
        return luma
    import cv2
    h, w = luma.shape
    return cv2.resize(luma, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)


class FocusAnalyzer:
    """Judge focus frame by frame.

    Args:
        params: :class:`AnalysisParams`.
        classifier: a :class:`~pifocus.classify.TileClassifier`; when omitted and
            ``params.use_cnn`` is set, the model in ``params.model`` (or the shipped one)
            is loaded.

    Raises:
        ModelError: the CNN is wanted but the model cannot be loaded.
    """

    def __init__(self, params: AnalysisParams = AnalysisParams(), classifier=None):
        self.params = params
        self.classifier = None
        if params.use_cnn:
            if classifier is None:
                from ..classify import load_classifier
                classifier = load_classifier(params.model, num_threads=params.num_threads)
            self.classifier = classifier
        self.verdict = Verdict(params.verdict)
        self.peak = PeakHold(params.peak)
        self._levels = {}
        self._noise_k: Dict[int, float] = {}
        self._scale = sc.ScaleMemory(params.peak.scene_change)
        self._t_ms = {}

    @property
    def mode(self) -> str:
        """``"cnn"`` or ``"laplacian"``."""
        return "cnn" if self.classifier is not None else "laplacian"

    @property
    def has_blur(self) -> bool:
        """The loaded model estimates blur radius and motion (else the binary rule)."""
        info = getattr(self.classifier, "info", None)
        return bool(getattr(info, "has_blur", False))

    @property
    def threshold(self) -> float:
        """Tile probability counted as in focus."""
        if self.params.threshold is not None:
            return self.params.threshold
        return self.classifier.threshold if self.classifier is not None else 0.5

    def set_roi(self, roi: Optional[Tuple[float, float, float, float]]) -> None:
        """Change the subject region (normalized ``x, y, w, h``; None = default) and start a
        new focusing pass.

        Raises:
            ConfigError: the rectangle is outside the frame or empty.
        """
        self.params = replace(self.params, roi=roi)
        self._levels = {}
        self.reset()

    def reset(self) -> None:
        """Forget history: verdict, peak hold, noise estimate."""
        self.verdict.reset()
        self.peak.reset()
        self._noise_k = {}
        self._scale.reset()

    def _level(self, factor: int, h: int, w: int) -> _Level:
        lv = self._levels.get(factor)
        if lv is None or lv.key != (h, w, self.params.effective_roi, self.params.rows, self.params.cols):
            lv = self._levels[factor] = _Level(self.params, h, w)
        return lv

    def _prefilter(self, luma: np.ndarray, factor: int, track: bool) -> _Judged:
        """Tile statistics, noise model and texture gate of one pyramid level (``track``:
        smooth this level's noise estimate over frames)."""
        p = self.params
        lv = self._level(factor, *luma.shape)
        st = m.tile_stats(luma, lv.geom, lv.workspace)
        k = m.noise_model(st.noise_var, st.mean, percentile=p.noise_percentile,
                          offset_dn=p.noise_offset_dn, min_sigma_dn=p.min_noise_sigma_dn)
        return self._gated(_Judged(lv, st, k, None, None, factor), k, track)

    def _gated(self, j: _Judged, k: float, track: bool) -> _Judged:
        """Set ``j``'s noise floor and texture gate from the noise model ``k`` (smoothed over
        frames when ``track``: noise changes with gain, not from frame to frame)."""
        p = self.params
        if track:
            prev = self._noise_k.get(j.factor)
            k = k if prev is None else 0.7 * prev + 0.3 * k
            self._noise_k[j.factor] = k
        j.k = k
        j.floor = m.noise_floor(k, j.st.mean, p.noise_offset_dn)
        j.informative = m.texture_gate(j.st.lap_var, j.floor, p.gate_factor)
        j.p = np.full(j.informative.shape, np.nan, np.float32)
        return j

    def _min_level_px(self) -> int:
        """Smallest ROI side (pixels of a level) worth judging: two CNN tiles (two
        ``block_px`` tiles of 16 px in Laplacian-only mode)."""
        tile = self.classifier.tile_px if self.classifier is not None else 2 * self.params.block_px
        return 2 * int(tile)

    def _pyramid(self, luma: np.ndarray) -> Dict[int, _Judged]:
        """Every level ``"auto"`` looks at (:func:`~pifocus.focus.scale.levels_needed`)
        whose ROI still holds 4 x 4 px tiles, each reduced from the nearest finer level
        that divides it (area averaging)."""
        frames = {1: luma}
        out = {}
        _, _, rw, rh = m.roi_pixels(self.params.effective_roi, luma.shape[1], luma.shape[0])
        for f in sc.levels_needed():
            # Octave levels are measured down to 4 tiles of 4 px (for the ratio); only levels
            # big enough to judge are candidates (see _auto_scale).
            if f > 1 and (min(rw, rh) // f < 4 * 4 or min(luma.shape) // f < 8):
                break
            src = max(d for d in frames if f % d == 0)
            frames[f] = _reduce(frames[src], f // src)
            out[f] = self._prefilter(frames[f], f, False)
        self._frames = frames
        return out

    def _auto_scale(self, luma: np.ndarray, track: bool) -> Tuple[int, Dict[int, _Judged]]:
        """The ROI's analysis scale (:class:`~pifocus.focus.scale.ScaleMemory`) and the
        pyramid levels measured for it."""
        p = self.params
        levels = self._pyramid(luma)
        sharp = {f: m.sharpness(j.st.lap_var, j.floor, j.level.weights) for f, j in levels.items()}
        # Textured tiles per level; a level with only a stray tile or two (noise on small
        # tiles) has none.
        _, _, rw, rh = m.roi_pixels(p.effective_roi, luma.shape[1], luma.shape[0])
        inf = {f: (int(j.informative.sum()) if float(j.level.weights[j.informative].sum())
                   >= p.coarse_min_share * float(j.level.weights.sum())
                   and (f == 1 or min(rw, rh) // f >= self._min_level_px()) else 0)
               for f, j in levels.items()}
        est = sc.detail_scale(sharp, inf, p.auto_ratio, p.verdict.min_informative_tiles)
        key = (luma.shape, p.effective_roi, p.rows, p.cols)
        s = self._scale.update(key, est, sc.wide_sharpness(sharp), levels[max(levels)].st.mean)
        s = s if s in levels and (s == 1 or min(rw, rh) // s >= self._min_level_px()) else 1
        self._octave = sc.octave_ratio(sharp, s)
        return s, levels

    def _classify(self, luma: np.ndarray, j: _Judged) -> None:
        """Fill ``j.p`` (and ``j.blur``, ``j.motion`` with the heads) for the informative tiles."""
        p = self.params
        if not j.informative.any():
            return
        if self.classifier is None:
            excess = np.maximum(j.st.lap_var - j.floor, 1e-6)
            lp = 1.0 / (1.0 + (p.laplacian_threshold_dn2 / excess) ** 2)
            j.p[j.informative] = lp[j.informative]
            return
        g, weights = j.level.geom, j.level.weights
        idx = np.flatnonzero(j.informative)
        if len(idx) > p.max_cnn_tiles:
            # Keep the tiles that matter most: weight x detail.
            score = (weights.ravel() * j.st.lap_var.ravel())[idx]
            idx = np.sort(idx[np.argsort(score)[::-1][:p.max_cnn_tiles]])
        tile = self.classifier.tile_px
        origins = m.crop_origins(j.st.block_energy, g, tile, luma.shape[1], luma.shape[0])
        tiles = m.extract_tiles(luma, origins.reshape(-1, 2)[idx], tile)
        if self.has_blur:
            pred = self.classifier.predict_all(tiles)
            j.p.ravel()[idx] = pred.p_in_focus
            j.blur.ravel()[idx] = pred.blur_px * j.factor
            j.motion.ravel()[idx] = pred.p_motion
        else:
            j.p.ravel()[idx] = self.classifier.predict(tiles)
        j.n_cnn = len(idx)

    def _judge_levels(self, luma: np.ndarray, track: bool) -> Tuple[_Judged, _Judged]:
        """``(base, judging)``: the analysis-scale level (sharpness, noise) and the level whose
        tiles carry the verdict -- the same one unless the frame had to be reduced further."""
        p = self.params
        t0 = time.perf_counter()
        if p.analysis_scale == "auto":
            s, levels = self._auto_scale(luma, track)
            base = levels[s]
            if track:
                self._gated(base, base.k, True)
            base_luma = self._frames[s]
        else:
            s, levels = int(p.analysis_scale), {}
            base_luma = _reduce(luma, s)
            base = self._prefilter(base_luma, s, track)
            octave = self._prefilter(_reduce(base_luma, 2), 2 * s, False)
            self._octave = sc.octave_ratio(
                {f: m.sharpness(q.st.lap_var, q.floor, q.level.weights) for f, q in ((s, base), (2 * s, octave))}, s)
        t1 = time.perf_counter()
        self._classify(base_luma, base)
        self._t_ms = {"prefilter": (t1 - t0) * 1e3, "cnn": (time.perf_counter() - t1) * 1e3}
        j, f = base, 2
        tile = self.classifier.tile_px if self.classifier is not None else 2 * p.block_px
        while int(j.judged.sum()) < p.verdict.min_informative_tiles and f <= p.coarse_levels:
            small = _reduce(luma, s * f)
            if min(small.shape) < 2 * tile:
                break
            c = self._prefilter(small, s * f, False)
            w = c.level.weights
            f *= 2
            if float(w[c.informative].sum()) < p.coarse_min_share * float(w.sum()):
                continue     # a stray tile or two: noise, not a blurred subject
            self._classify(small, c)
            j = c
        if j is not base:
            self._t_ms["coarse"] = (time.perf_counter() - t0) * 1e3 - sum(self._t_ms.values())
        if track and s != getattr(self, "_scale_used", s):
            self.peak.reset()        # sharpness at another level: a new pass of the meter
        self._scale_used = s
        # Sensor noise is judged at full resolution (a reduced level averages it down).
        self._sensor_k = levels[1].k if 1 in levels else base.k
        return base, j

    def analyze(self, frame: Frame, track: bool = True) -> FocusReport:
        """Judge one frame.

        Args:
            frame: the :class:`~pifocus.frames.Frame`.
            track: carry history (hysteresis, peak hold, noise smoothing) from frame to
                frame, as for a live stream; False judges the frame on its own (stills).
        """
        p = self.params
        t0 = time.perf_counter()
        base, j = self._judge_levels(frame.luma, track)
        t2 = time.perf_counter()
        weights = j.level.weights        # the judging level's (its grid may be smaller)
        judged = j.judged
        w_all = float(weights.sum())
        w_inf = float(weights[judged].sum())
        if w_inf > 0:
            p_focus = float((j.p[judged] * weights[judged]).sum() / w_inf)
        else:
            p_focus = math.nan
        scale = float(self._scale_used)
        blur_an = j.blur / scale                         # radius in analysis pixels
        subject_blur = b.weighted_quantile(blur_an[judged], weights[judged], p.verdict.on_fraction)
        motion = self.has_blur and b.motion_share(j.motion[judged], weights[judged]) >= p.motion_fraction
        if self.has_blur:
            frac = b.sharp_fraction(np.where(judged, blur_an, np.nan), weights, p.coc_px,
                                    exclude=np.nan_to_num(j.motion, nan=0.0) >= 0.5)
        elif j is not base:
            # Detail only on a reduced copy: real structure, but blurred by at least the
            # reduction -- out of focus, never in focus (no blur head to say by how much).
            frac = 0.0
        else:
            frac = float(weights[judged & (j.p >= self.threshold)].sum() / w_inf) if w_inf > 0 else 0.0
        judgeable = int(judged.sum()) >= p.verdict.min_informative_tiles
        raw = judgeable and not motion and frac >= p.verdict.on_fraction
        sharp = m.sharpness(base.st.lap_var, base.floor, base.level.weights)
        if track:
            meter, peak, changed = self.peak.update(sharp, base.st.mean)
            below_peak = p.min_meter > 0 and meter < p.min_meter
            in_focus = self.verdict.update(0.0 if motion or below_peak else frac, judgeable)
        else:
            in_focus, meter, peak, changed = raw, 1.0 if sharp > 0 else 0.0, sharp, False
        absolute = b.blur_meter(subject_blur, p.coc_px)
        if math.isnan(absolute):
            # No blur head: judged only reduced, blurred by at least the reduction; else how
            # far the detail is from this level's Nyquist limit (scale.closeness).
            absolute = (scale / j.factor if j is not base
                        else sc.closeness(self._octave, p.auto_ratio))
        if not math.isnan(absolute):
            meter = min(meter, absolute)
        if not judgeable:
            meter = 0.0      # nothing to judge focus on: the meter shows no closeness at all
        noise_sigma = math.sqrt(self._sensor_k * (128.0 + p.noise_offset_dn))
        exposure = ex.frame_exposure(frame, p.effective_roi, noise_sigma) if p.exposure else None
        t3 = time.perf_counter()
        g, f = j.level.geom, int(j.factor)
        return FocusReport(
            frame_index=frame.index, timestamp_ns=frame.timestamp_ns, lens_position=frame.lens_position,
            roi=p.effective_roi, grid_px=(g.x * f, g.y * f, g.cell_w * f, g.cell_h * f),
            tile_lap_var=j.st.lap_var, tile_floor=j.floor, tile_informative=j.informative,
            tile_p=j.p, tile_weight=weights,
            noise_sigma_dn=noise_sigma, exposure=exposure,
            sharpness=sharp, p_in_focus=p_focus, in_focus_fraction=frac,
            informative_fraction=w_inf / w_all if w_all > 0 else 0.0,
            judgeable=judgeable, raw_in_focus=raw, in_focus=in_focus, meter=meter, peak_sharpness=peak,
            scene_changed=changed, mode=self.mode, tiles_to_cnn=base.n_cnn + (j.n_cnn if j is not base else 0),
            timings_ms={**self._t_ms, "verdict": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3},
            path=frame.path,
            verdict=b.category(in_focus, judgeable, subject_blur, p.coc_px, p.near_factor, motion),
            blur_px=subject_blur, blur_px_sensor=subject_blur * scale, motion_blur=bool(motion),
            analysis_scale=int(scale), judged_scale=int(j.factor), coc_px=p.coc_px,
            tile_blur_px=blur_an, tile_p_motion=j.motion,
        )

    def close(self) -> None:
        """Release the classifier."""
        if self.classifier is not None:
            self.classifier.close()
