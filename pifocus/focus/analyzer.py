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
"""

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Optional, Tuple

import numpy as np

from ..frames import Frame
from ..validate import require
from . import measures as m
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
        require(0 <= self.noise_offset_dn <= 255, s, "noise_offset_dn", self.noise_offset_dn, "0..255")
        require(0 < self.min_noise_sigma_dn <= 50, s, "min_noise_sigma_dn", self.min_noise_sigma_dn, "0 < x <= 50")
        require(1 <= int(self.num_threads) <= 64, s, "num_threads", self.num_threads, "1..64")
        require(1 <= int(self.max_cnn_tiles) <= 4096, s, "max_cnn_tiles", self.max_cnn_tiles, "1..4096")
        require(self.threshold is None or 0 < self.threshold < 1, s, "threshold", self.threshold, "0 < x < 1")
        require(self.laplacian_threshold_dn2 > 0, s, "laplacian_threshold_dn2", self.laplacian_threshold_dn2, "> 0")
        require(0.05 <= self.centre_sigma <= 10, s, "centre_sigma", self.centre_sigma, "0.05..10")

    @property
    def effective_roi(self) -> Tuple[float, float, float, float]:
        """The ROI actually analysed."""
        return self.roi if self.roi is not None else DEFAULT_ROI


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
        self._geom_key = None
        self._geom = None
        self._weights = None
        self._noise_k = None
        self._workspace = m.Workspace()

    @property
    def mode(self) -> str:
        """``"cnn"`` or ``"laplacian"``."""
        return "cnn" if self.classifier is not None else "laplacian"

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
        self._geom_key = None
        self.reset()

    def reset(self) -> None:
        """Forget history: verdict, peak hold, noise estimate."""
        self.verdict.reset()
        self.peak.reset()
        self._noise_k = None

    def _geometry(self, h: int, w: int):
        key = (h, w, self.params.effective_roi, self.params.rows, self.params.cols)
        if key != self._geom_key:
            p = self.params
            roi_px = m.roi_pixels(p.effective_roi, w, h)
            self._geom = m.grid_geometry(roi_px, p.rows, p.cols, p.block_px)
            g = self._geom
            if p.roi is None:
                self._weights = m.centre_weights(g.rows, g.cols, p.centre_sigma)
            else:
                self._weights = np.ones((g.rows, g.cols), np.float32)
            self._geom_key = key
        return self._geom, self._weights

    def analyze(self, frame: Frame, track: bool = True) -> FocusReport:
        """Judge one frame.

        Args:
            frame: the :class:`~pifocus.frames.Frame`.
            track: carry history (hysteresis, peak hold, noise smoothing) from frame to
                frame, as for a live stream; False judges the frame on its own (stills).
        """
        p = self.params
        t0 = time.perf_counter()
        luma = frame.luma
        g, weights = self._geometry(*luma.shape)

        # 1. prefilter: one vectorized pass, then the noise model and the texture gate.
        st = m.tile_stats(luma, g, self._workspace)
        k = m.noise_model(st.noise_var, st.mean, percentile=p.noise_percentile,
                          offset_dn=p.noise_offset_dn, min_sigma_dn=p.min_noise_sigma_dn)
        if track:
            # Noise changes with gain, not from frame to frame: smooth it, but follow fast.
            k = k if self._noise_k is None else 0.7 * self._noise_k + 0.3 * k
            self._noise_k = k
        floor = m.noise_floor(k, st.mean, p.noise_offset_dn)
        informative = m.texture_gate(st.lap_var, floor, p.gate_factor)
        t1 = time.perf_counter()

        # 2. classify the informative tiles.
        tile_p = np.full(informative.shape, np.nan, np.float32)
        n_cnn = 0
        if informative.any():
            if self.classifier is not None:
                idx = np.flatnonzero(informative)
                if len(idx) > p.max_cnn_tiles:
                    # Keep the tiles that matter most: weight x detail.
                    score = (weights.ravel() * st.lap_var.ravel())[idx]
                    idx = np.sort(idx[np.argsort(score)[::-1][:p.max_cnn_tiles]])
                tile = self.classifier.tile_px
                origins = m.crop_origins(st.block_energy, g, tile, luma.shape[1], luma.shape[0])
                tiles = m.extract_tiles(luma, origins.reshape(-1, 2)[idx], tile)
                tile_p.ravel()[idx] = self.classifier.predict(tiles)
                n_cnn = len(idx)
            else:
                excess = np.maximum(st.lap_var - floor, 1e-6)
                lp = 1.0 / (1.0 + (p.laplacian_threshold_dn2 / excess) ** 2)
                tile_p[informative] = lp[informative]
        t2 = time.perf_counter()

        # 3. verdict.
        judged = informative & ~np.isnan(tile_p)
        w_all = float(weights.sum())
        w_inf = float(weights[judged].sum())
        thr = self.threshold
        if w_inf > 0:
            p_focus = float((tile_p[judged] * weights[judged]).sum() / w_inf)
            frac = float(weights[judged & (tile_p >= thr)].sum() / w_inf)
        else:
            p_focus, frac = math.nan, 0.0
        judgeable = int(judged.sum()) >= p.verdict.min_informative_tiles
        raw = judgeable and frac >= p.verdict.on_fraction
        sharp = m.sharpness(st.lap_var, floor, weights)
        if track:
            in_focus = self.verdict.update(frac, judgeable)
            meter, peak, changed = self.peak.update(sharp, st.mean)
        else:
            in_focus, meter, peak, changed = raw, 1.0 if sharp > 0 else 0.0, sharp, False
        t3 = time.perf_counter()

        return FocusReport(
            frame_index=frame.index,
            timestamp_ns=frame.timestamp_ns,
            lens_position=frame.lens_position,
            roi=p.effective_roi,
            grid_px=(g.x, g.y, g.cell_w, g.cell_h),
            tile_lap_var=st.lap_var,
            tile_floor=floor,
            tile_informative=informative,
            tile_p=tile_p,
            tile_weight=weights,
            noise_sigma_dn=math.sqrt(k * (128.0 + p.noise_offset_dn)),
            sharpness=sharp,
            p_in_focus=p_focus,
            in_focus_fraction=frac,
            informative_fraction=w_inf / w_all if w_all > 0 else 0.0,
            judgeable=judgeable,
            raw_in_focus=raw,
            in_focus=in_focus,
            meter=meter,
            peak_sharpness=peak,
            scene_changed=changed,
            mode=self.mode,
            tiles_to_cnn=n_cnn,
            timings_ms={"prefilter": (t1 - t0) * 1e3, "cnn": (t2 - t1) * 1e3,
                        "verdict": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3},
            path=frame.path,
        )

    def close(self) -> None:
        """Release the classifier."""
        if self.classifier is not None:
            self.classifier.close()
