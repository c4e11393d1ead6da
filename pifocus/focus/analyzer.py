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
from dataclasses import replace
from typing import Dict, Optional, Tuple

import numpy as np

from ..frames import Frame
from . import blur as b
from . import exposure as ex
from . import measures as m
from . import scale as sc
from .report import FocusReport
from .verdict import FocusPass

log = logging.getLogger(__name__)

from .params import DEFAULT_ROI, AnalysisParams  # noqa: F401  (re-exported: the one way in)


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
        self.focus_pass = FocusPass(params.verdict, params.peak, params.min_meter)
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
        self.focus_pass.reset()
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
        self._level_sharp = sharp
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
            self._level_sharp = {}       # one level only: the meter's peak needs no other
            base_luma = _reduce(luma, s)
            base = self._prefilter(base_luma, s, track)
            octave = self._prefilter(_reduce(base_luma, 2), 2 * s, False)
            self._octave = sc.octave_ratio(
                {f: m.sharpness(q.st.lap_var, q.floor, q.level.weights) for f, q in ((s, base), (2 * s, octave))}, s)
        t1 = time.perf_counter()
        self._base_luma = base_luma
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
            tc = time.perf_counter()
            self._classify(small, c)
            self._t_ms["cnn"] += (time.perf_counter() - tc) * 1e3   # "cnn": every level's classification
            j = c
        if j is not base:
            self._t_ms["coarse"] = (time.perf_counter() - t0) * 1e3 - sum(self._t_ms.values())
        if track and s != getattr(self, "_scale_used", s):
            # The ROI's level changed mid-pass (adopted from the sharpest frame): the meter
            # goes on relative to this pass's best *at the new level*, not from scratch (a
            # fresh peak would read 100 % on the soft frames after the peak).
            self.focus_pass.rescale(s)
        self._scale_used = s
        # Sensor noise is judged at full resolution (a reduced level averages it down).
        self._sensor_k = levels[1].k if 1 in levels else base.k
        return base, j

    def analyze(self, frame: Frame, track: bool = True, still: bool = False) -> FocusReport:
        """Judge one frame.

        Args:
            frame: the :class:`~pifocus.frames.Frame`.
            track: carry history (hysteresis, peak hold, noise smoothing) from frame to
                frame, as for a live stream; False judges the frame on its own.
            still: the frame is a photo judged for keeps (``score``, the cull): with
                ``motion_check = "stills"`` it is tested for motion blur (autofocus samples
                and the live stream are not, unless ``"always"``).
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
        if (not self.has_blur and p.motion_check != "off" and (still or p.motion_check == "always")
                and judgeable and j is base and frac >= p.verdict.on_fraction):
            motion = b.motion_check(self._base_luma, p.effective_roi)   # no motion head: model-free
        raw = judgeable and not motion and frac >= p.verdict.on_fraction
        sharp = m.sharpness(base.st.lap_var, base.floor, base.level.weights)
        if track:
            in_focus, meter, peak, changed = self.focus_pass.update(
                sharp, base.st.mean, self._level_sharp,
                frac, judgeable, motion)
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
