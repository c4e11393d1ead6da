"""The tile judging behind :class:`~pifocus.focus.analyzer.FocusAnalyzer`: the pyramid levels
of the subject ROI, each level's tile statistics, noise model and texture gate, the analysis
scale ``"auto"`` picks (:mod:`.scale`), and the classification of the informative tiles
(the CNN, or the Laplacian-only rule).  The analyzer turns what this concludes into the
verdict, the meter and the :class:`~pifocus.focus.report.FocusReport`."""

import time
from typing import Dict, Optional, Tuple

import numpy as np

from . import measures as m
from . import scale as sc
from .params import AnalysisParams
from .tiles import _Judged, _Level
from .votes import BlurredVotes


def reduce_luma(luma: np.ndarray, factor: int) -> np.ndarray:
    """The frame reduced ``factor`` x by area averaging (what one analysis pixel integrates):
    output pixel ``(i, j)`` is the mean of input rows ``factor i ..`` and columns ``factor j ..``.

    The frame is first cut to a multiple of ``factor``: resizing 1520 rows to 506 is a scale of
    3.004, which OpenCV's INTER_AREA does on its slow fractional path (4 ms instead of 1 on a
    2028 x 1520 frame) with pixels that drift from their blocks (up to 128 DN off the block
    mean on the last rows).

    An odd factor is a ``factor x factor`` box filter sampled at the blocks' centres: the
    same values as INTER_AREA to the DN (its rounding too), which has a fast path only for
    even factors (3x of a 2028 x 1520 frame: 1.0 ms against 2.3)."""
    if factor == 1:
        return luma
    import cv2
    h, w = luma.shape
    hh, ww = max(1, h // factor), max(1, w // factor)
    if hh * factor <= h and ww * factor <= w:
        luma = luma[:hh * factor, :ww * factor]
        if factor % 2 == 1 and luma.dtype == np.uint8:
            box = cv2.boxFilter(luma, -1, (factor, factor), normalize=True, borderType=cv2.BORDER_REPLICATE)
            c = factor // 2
            return np.ascontiguousarray(box[c::factor, c::factor])
    return cv2.resize(luma, (ww, hh), interpolation=cv2.INTER_AREA)


class LevelJudge:
    """The pyramid levels of one ROI and their tiles, frame by frame.

    Args:
        params: :class:`~pifocus.focus.params.AnalysisParams` (replace :attr:`params` and call
            :meth:`forget_geometry` when the ROI changes).
        classifier: a :class:`~pifocus.classify.TileClassifier`, or None for the
            Laplacian-only rule.

    Attributes (of the last :meth:`judge`):
        scale: the analysis scale (sensor pixels per analysis pixel).
        level_sharp: ``{factor: sharpness}`` of every level measured (empty at a fixed scale).
        octave: the octave ratio of the analysis level (:func:`~pifocus.focus.scale.octave_ratio`).
        frame_estimate: this frame's own :func:`~pifocus.focus.scale.detail_scale` (None: no
            level qualifies, or a fixed scale).
        scale_learned: the ROI's scale has been adopted from a pass's sharpest frame (always
            True at a fixed scale).
        base_luma: the frame at the analysis scale.
        sensor_k: the noise model's constant at full resolution.
        t_ms: ``{"prefilter", "cnn"[, "coarse"]}`` milliseconds.
    """

    def __init__(self, params: AnalysisParams, classifier=None):
        self.params = params
        self.classifier = classifier
        self._levels: Dict[int, _Level] = {}
        self.votes = BlurredVotes(self)
        self._noise_k: Dict[int, float] = {}
        self._scale = sc.ScaleMemory(params.peak.scene_change)
        self.scale, self.level_sharp, self.octave = 1, {}, float("nan")
        self.frame_estimate: Optional[int] = None
        self.scale_learned = True
        self.frames, self.base_luma, self.sensor_k, self.t_ms = {}, None, 0.0, {}

    @property
    def has_blur(self) -> bool:
        """The classifier estimates blur radius and motion (else the binary rule)."""
        info = getattr(self.classifier, "info", None)
        return bool(getattr(info, "has_blur", False))

    @property
    def threshold(self) -> float:
        """Tile probability counted as in focus (``params.threshold``, else the model's own)."""
        if self.params.threshold is not None:
            return float(self.params.threshold)
        return float(self.classifier.threshold) if self.classifier is not None else 0.5

    @property
    def motion_threshold(self) -> float:
        """The model's ``p_motion`` at or above which a tile is motion-blurred (its metadata's
        ``heads.motion_threshold``, tuned to a false-flag rate on still tiles; 0.5 without)."""
        layout = getattr(getattr(self.classifier, "info", None), "layout", None)
        return float(getattr(layout, "motion_threshold", 0.5))

    def forget_geometry(self) -> None:
        """Drop the levels' grids and buffers (the ROI changed)."""
        self._levels = {}
        self.votes.forget_geometry()

    def reset(self) -> None:
        """Forget history: the noise estimates and the ROI's remembered scale."""
        self._noise_k = {}
        self._scale.reset()

    def level(self, factor: int, h: int, w: int) -> _Level:
        """The grid, weights and buffers of pyramid level ``factor`` for an ``h x w`` frame
        (rebuilt when the frame size, the ROI or the grid changes)."""
        lv = self._levels.get(factor)
        if lv is None or lv.key != (h, w, self.params.effective_roi, self.params.rows, self.params.cols, None):
            lv = self._levels[factor] = _Level(self.params, h, w)
        return lv

    def prefilter(self, luma: np.ndarray, factor: int, track: bool) -> _Judged:
        """Tile statistics, noise model and texture gate of one pyramid level (``track``:
        smooth this level's noise estimate over frames)."""
        p = self.params
        lv = self.level(factor, *luma.shape)
        st = m.tile_stats(luma, lv.geom, lv.workspace)
        k = m.noise_model(st.noise_var, st.mean, percentile=p.noise_percentile,
                          offset_dn=p.noise_offset_dn, min_sigma_dn=p.min_noise_sigma_dn)
        return self.gated(_Judged(lv, st, k, None, None, factor), k, track)

    def gated(self, j: _Judged, k: float, track: bool) -> _Judged:
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

    def min_level_px(self) -> int:
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
            frames[f] = reduce_luma(frames[src], f // src)
            out[f] = self.prefilter(frames[f], f, False)
        self.frames = frames
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
                   and (f == 1 or min(rw, rh) // f >= self.min_level_px()) else 0)
               for f, j in levels.items()}
        self.level_sharp = sharp
        est = sc.detail_scale(sharp, inf, p.auto_ratio, p.verdict.min_informative_tiles)
        key = (luma.shape, p.effective_roi, p.rows, p.cols)
        s = self._scale.update(key, est, sc.wide_sharpness(sharp, min(rw, rh)),
                              levels[max(levels)].st.mean)
        self.frame_estimate, self.scale_learned = est, self._scale.scale is not None
        s = s if s in levels and (s == 1 or min(rw, rh) // s >= self.min_level_px()) else 1
        self.octave = sc.octave_ratio(sharp, s)
        return s, levels

    def classify(self, luma: np.ndarray, j: _Judged, max_tiles: Optional[int] = None) -> None:
        """Fill ``j.p`` (and ``j.blur``, ``j.motion`` with the heads) for the informative tiles,
        at most ``max_tiles`` of them to the CNN (default ``max_cnn_tiles``)."""
        p = self.params
        cap = p.max_cnn_tiles if max_tiles is None else int(max_tiles)
        if not j.informative.any() or cap <= 0:
            return
        if self.classifier is None:
            excess = np.maximum(j.st.lap_var - j.floor, 1e-6)
            lp = 1.0 / (1.0 + (p.laplacian_threshold_dn2 / excess) ** 2)
            j.p[j.informative] = lp[j.informative]
            return
        g, weights = j.level.geom, j.level.weights
        idx = np.flatnonzero(j.informative)
        if len(idx) > cap:
            # Keep the tiles that matter most: weight x detail.
            score = (weights.ravel() * j.st.lap_var.ravel())[idx]
            idx = np.sort(idx[np.argsort(score)[::-1][:cap]])
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

    def judge(self, luma: np.ndarray, track: bool) -> Tuple[_Judged, _Judged]:
        """Measure and classify one frame's levels; returns ``(base, judging)``: the
        analysis-scale level (sharpness, noise) and the level whose tiles carry the verdict
        -- the same one unless the frame had to be reduced further.  Afterwards
        :attr:`scale`, :attr:`level_sharp`, :attr:`octave`, :attr:`base_luma`,
        :attr:`sensor_k` and :attr:`t_ms` describe this frame.

        Raises:
            ModelError: the classifier failed on the tiles.
        """
        p = self.params
        t0 = time.perf_counter()
        if p.analysis_scale == "auto":
            s, levels = self._auto_scale(luma, track)
            base = levels[s]
            if track:
                self.gated(base, base.k, True)
            base_luma = self.frames[s]
            coarse, coarse_luma = levels.get(2 * s), self.frames.get(2 * s)
            coarser, coarser_luma = levels.get(4 * s), self.frames.get(4 * s)
        else:
            s, levels = int(p.analysis_scale), {}
            self.frame_estimate, self.scale_learned = None, True
            self.level_sharp = {}       # one level only: the meter's peak needs no other
            base_luma = reduce_luma(luma, s)
            base = self.prefilter(base_luma, s, track)
            coarse_luma = reduce_luma(base_luma, 2)
            coarse = octave = self.prefilter(coarse_luma, 2 * s, False)
            coarser = coarser_luma = None     # reduced and measured below only if votes are possible
            self.octave = sc.octave_ratio(
                {f: m.sharpness(q.st.lap_var, q.floor, q.level.weights) for f, q in ((s, base), (2 * s, octave))}, s)
        t1 = time.perf_counter()
        self.base_luma = base_luma
        self.classify(base_luma, base)
        self.votes.mark(base, coarse, coarse_luma)
        t_extra = 0.0
        if p.blurred_octaves >= 2 and self.votes.possible(base, 2):
            if coarser_luma is None and coarse_luma is not None:
                # a fixed scale (or a level past the pyramid's): one more reduction.  (The
                # coarse loop below never needs it: it runs only for frames with too few
                # judged tiles, which have no votes.)
                te = time.perf_counter()
                coarser_luma = reduce_luma(coarse_luma, 2)
                coarser = self.prefilter(coarser_luma, 4 * s, False)
                t_extra = time.perf_counter() - te
            self.votes.mark(base, coarser, coarser_luma, octaves=2)
        self.t_ms = {"prefilter": (t1 - t0 + t_extra) * 1e3, "cnn": (time.perf_counter() - t1 - t_extra) * 1e3}
        j, f = base, 2
        tile = self.classifier.tile_px if self.classifier is not None else 2 * p.block_px
        while int(j.judged.sum()) < p.verdict.min_informative_tiles and f <= p.coarse_levels:
            # "auto" measured most of these levels already (the pyramid): the same frame and
            # statistics, not a second reduction of the full frame (2.2 ms for 2x and 4x of a
            # 2028 x 1520 frame).
            small = self.frames.get(s * f) if p.analysis_scale == "auto" else None
            c = levels.get(s * f)          # {} at a fixed scale
            if small is None:
                small = reduce_luma(luma, s * f)
            if min(small.shape) < 2 * tile:
                break
            if c is None:
                c = self.prefilter(small, s * f, False)
            w = c.level.weights
            f *= 2
            if float(w[c.informative].sum()) < p.coarse_min_share * float(w.sum()):
                continue     # a stray tile or two: noise, not a blurred subject
            tc = time.perf_counter()
            self.classify(small, c)
            self.t_ms["cnn"] += (time.perf_counter() - tc) * 1e3   # "cnn": every level's classification
            j = c
        if j is not base:
            self.t_ms["coarse"] = (time.perf_counter() - t0) * 1e3 - sum(self.t_ms.values())
        self.scale = s
        # Sensor noise is judged at full resolution (a reduced level averages it down).
        self.sensor_k = levels[1].k if 1 in levels else base.k
        return base, j
