"""Validated parameters of the focus analysis (config table ``[analysis]``): :class:`AnalysisParams`."""

from dataclasses import dataclass, field
from typing import Optional, Tuple, Union

from ..validate import require
from .verdict import PeakHoldParams, VerdictParams

#: Default subject region: the central 60 % of the frame, centre-weighted.
DEFAULT_ROI = (0.2, 0.2, 0.6, 0.6)
#: ``focus_rule`` values (see :class:`AnalysisParams`).
FOCUS_RULES = ("classifier", "blur")


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
        focus_rule: with a model that has the blur head, what decides that a tile is in
            focus: ``"classifier"`` (default) -- the model's in-focus head, as without the
            blur head; the blur head then gives ``blur_px``, the ``near`` / ``out_of_focus``
            grading and the motion flag (autofocus jumps by it only with ``[autofocus.dfd]
            use_head``); ``"blur"`` -- the
            tile's estimated blur radius within ``coc_px`` (an absolute rule: stricter as
            stills, but a lens whose best is softer than ``coc_px`` never lights; measured
            in issue 9's closing note).
        near_factor: a subject blurred by at most this many times ``coc_px`` is ``near``.
        near_meter: a judgeable frame not in focus is ``near`` when its meter is at least this
            (0..1; the RGB LED shows that ``near`` as amber) -- without a blur estimate (a
            binary model such as v1, Laplacian-only mode) on its own, with one under the
            classifier rule together with the blur within ``near_factor x coc_px``.  For a
            still, and until a pass has gone through focus, the meter is capped by the
            subject's in-focus probability, so a soft first frame does not read near.
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
        blurred_votes: a tile too flat to judge at the analysis scale whose structure one
            octave coarser stands above the analysis level's own texture bar is classified
            there, and counts *against* the in-focus share when it is out of focus there too
            (with a blur head: its blur there above ``coc_px`` analysis pixels, under either
            ``focus_rule``; without one: the classifier's probability below its threshold;
            ``tile_blurred`` in the report): the blurred part of a subject then still votes,
            instead of leaving the vote to whatever else in the region is sharp (a background
            seam outshining a defocused subject).  A tile sharp one octave coarser (smooth
            content, faint texture) stays out of the vote.  False = the earlier rule.
        blurred_octaves: how far coarser the blurred votes look: 1 = one octave; 2 = also
            two octaves (4x) for the tiles still flat one octave coarser -- a subject blurred
            past what even that level resolves -- when their blur there is beyond what one
            octave coarser would have resolved (``coc_px x 2``; a tile sharp at 4x but flat at
            2x is smooth content).  Measured on the shared sweeps' stills
            (``tools/verdict_bench.py``): pcb-7 lit 3..5 -> 4 (its judged frame), flies 2..7 ->
            2..5, beetle without 17 and 25; precision >= 0.9 on 5 sweeps instead of 4, the
            recall and the live pulls unchanged.
        motion_check: where motion blur is judged -- by the model's motion head and, for a
            frame the head did not flag that would be called sharp, by the model-free
            edge-width test (:func:`~pifocus.focus.blur.motion_check`, tens of ms; either flag
            makes the frame ``motion_blur``): ``"stills"`` (default: photos judged for keeps --
            ``score``, the cull), ``"always"`` (also the live stream and autofocus samples:
            the head reads oriented textures such as wicker or fabric as streaks, which can
            hold the LED off at focus), ``"off"`` (stills by the head only, no edge-width
            test).  The cull always judges its photos by both (it measures the streak
            itself).
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
    near_meter: float = 0.8
    focus_rule: str = "classifier"
    motion_fraction: float = 0.5
    analysis_scale: Union[int, str] = "auto"
    auto_ratio: float = 4.0
    coarse_levels: int = 8
    exposure: bool = True
    coarse_min_share: float = 0.15
    blurred_votes: bool = True
    blurred_octaves: int = 2
    min_meter: float = 0.8
    motion_check: str = "stills"
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
        require(self.motion_check in ("stills", "always", "off"), s, "motion_check", self.motion_check,
                '"stills", "always" or "off"')
        require(0 <= self.noise_offset_dn <= 255, s, "noise_offset_dn", self.noise_offset_dn, "0..255")
        require(0 < self.min_noise_sigma_dn <= 50, s, "min_noise_sigma_dn", self.min_noise_sigma_dn, "0 < x <= 50")
        require(1 <= int(self.num_threads) <= 64, s, "num_threads", self.num_threads, "1..64")
        require(1 <= int(self.max_cnn_tiles) <= 4096, s, "max_cnn_tiles", self.max_cnn_tiles, "1..4096")
        require(self.threshold is None or 0 < self.threshold < 1, s, "threshold", self.threshold, "0 < x < 1")
        require(self.laplacian_threshold_dn2 > 0, s, "laplacian_threshold_dn2", self.laplacian_threshold_dn2, "> 0")
        require(0.05 <= self.centre_sigma <= 10, s, "centre_sigma", self.centre_sigma, "0.05..10")
        require(0.25 <= self.coc_px <= 8, s, "coc_px", self.coc_px,
                "0.25..8 px (blur radius; 1.0 = critical focus at 100 % view)")
        require(self.focus_rule in FOCUS_RULES, s, "focus_rule", self.focus_rule,
                '"classifier" (the in-focus head decides) or "blur" (blur radius within coc_px)')
        require(0 < self.near_meter <= 1, s, "near_meter", self.near_meter, "0 < x <= 1 (meter fraction)")
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
        require(isinstance(self.blurred_votes, bool), s, "blurred_votes", self.blurred_votes, "true or false")
        require(type(self.blurred_octaves) is int and self.blurred_octaves in (1, 2), s,
                "blurred_octaves", self.blurred_octaves, "1 (one octave coarser) or 2 (also two)")
        require(0 < self.coarse_min_share <= 1, s, "coarse_min_share", self.coarse_min_share, "0 < x <= 1")
        require(int(self.coarse_levels) in (1, 2, 4, 8, 16), s, "coarse_levels", self.coarse_levels,
                "1 (off), 2, 4, 8 or 16")

    @property
    def effective_roi(self) -> Tuple[float, float, float, float]:
        """The ROI actually analysed."""
        return self.roi if self.roi is not None else DEFAULT_ROI
