"""The :class:`FocusAnalyzer`: one frame in, one :class:`FocusReport` out.

Stages (each timed into ``report.timings_ms``):

1. **prefilter** -- tile grid over the subject ROI; one Laplacian + Immerkær pass gives every
   tile's Laplacian variance, noise estimate and brightness; a signal-dependent noise model
   gives each tile's noise floor; tiles not clearly above it are uninformative.
2. **cnn** -- the informative tiles (at most ``max_cnn_tiles``) are cut at the analysis
   scale, centred on their most detailed part, and classified in batches; tiles too flat to
   judge but structured one octave coarser are classified there (``blurred_votes``; those
   still flat there, two octaves coarser: ``blurred_octaves``).  With
   ``use_cnn=False`` (Laplacian-only mode) each tile's probability comes from its Laplacian
   variance instead.
3. **verdict** -- weighted share in focus of the informative tiles and of those blurred one
   octave coarser (they vote "not sharp"), hysteresis + dwell, and the peak-hold meter
   (capped by the subject's closeness to focus: see :class:`FocusReport`'s ``meter``).

With a model that has the blur and motion heads (:attr:`ModelInfo.has_blur
<pifocus.classify.ModelInfo.has_blur>`), the subject's ``blur_px`` is the radius that
``on_fraction`` of the informative weight is at or below, a frame that is not in focus is
graded ``near`` or ``out_of_focus`` by it (:data:`~pifocus.focus.blur.CATEGORIES`), and a
frame whose tiles the motion head flags (at the model's own threshold) for at least
``motion_fraction`` of the weight is ``motion_blur`` -- where ``motion_check`` judges motion:
stills by default, also the live stream and autofocus samples with ``"always"`` -- and a photo
still called sharp is also given the model-free motion test (unless ``"off"``).  What makes a
tile sharp is ``focus_rule``: ``"classifier"`` (default) the in-focus head, as without the heads; ``"blur"``
its blur radius within ``coc_px``, a flagged tile never (where motion is judged) -- then
``blur_px <= coc_px`` is the in-focus rule itself and the meter is capped by
``coc_px / blur_px``.  A frame with too little detail at the analysis scale is judged again
on a reduced copy (``coarse_levels``): a strongly defocused subject is ``out_of_focus`` with a
large ``blur_px``, not ``no_detail``.
Models without the heads keep the binary rule.
"""

import logging
import math
import time
from dataclasses import replace
from typing import Optional, Tuple

import numpy as np

from ..frames import Frame
from . import blur as b
from . import exposure as ex
from . import measures as m
from . import scale as sc
from .levels import LevelJudge
from .report import FocusReport
from .verdict import FocusPass

log = logging.getLogger(__name__)

from .params import DEFAULT_ROI, AnalysisParams  # noqa: F401  (re-exported: the one way in)


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
        self._params = params
        self.classifier = None
        if params.use_cnn:
            if classifier is None:
                from ..classify import load_classifier
                classifier = load_classifier(params.model, num_threads=params.num_threads)
            self.classifier = classifier
        self.focus_pass = FocusPass(params.verdict, params.peak, params.min_meter)
        self.levels = LevelJudge(params, self.classifier)
        self._scale_used = None

    @property
    def params(self) -> AnalysisParams:
        """The :class:`AnalysisParams` in force (assigning one also re-grids the levels)."""
        return self._params

    @params.setter
    def params(self, params: AnalysisParams) -> None:
        self._params = params
        self.levels.params = params
        self.levels.forget_geometry()

    @property
    def mode(self) -> str:
        """``"cnn"`` or ``"laplacian"``."""
        return "cnn" if self.classifier is not None else "laplacian"

    @property
    def has_blur(self) -> bool:
        """The loaded model estimates blur radius and motion (else the binary rule)."""
        return self.levels.has_blur

    @property
    def threshold(self) -> float:
        """Tile probability counted as in focus."""
        return self.levels.threshold

    def set_roi(self, roi: Optional[Tuple[float, float, float, float]]) -> None:
        """Change the subject region (normalized ``x, y, w, h``; None = default) and start a
        new focusing pass.

        Raises:
            ConfigError: the rectangle is outside the frame or empty.
        """
        self.params = replace(self.params, roi=roi)
        self.reset()

    def reset(self) -> None:
        """Forget history: verdict, peak hold, noise estimate."""
        self.focus_pass.reset()
        self.levels.reset()


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
        lv = self.levels
        base, j = lv.judge(frame.luma, track)
        if track and self._scale_used is not None and lv.scale != self._scale_used:
            # The ROI's level changed mid-pass (adopted from the sharpest frame): the meter
            # goes on relative to this pass's best *at the new level*, not from scratch (a
            # fresh peak would read 100 % on the soft frames after the peak).
            self.focus_pass.rescale(lv.scale)
        self._scale_used = lv.scale
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
        # Tiles flat here but blurred one (or two) octaves coarser vote "not sharp"
        # (blurred_votes, blurred_octaves): a
        # defocused subject no longer leaves the share to a sharp background plane.  With a
        # blur head they vote with their blur there.
        blurred = base.blurred if j is base else np.zeros_like(judged)
        w_blurred = float(weights[blurred].sum())
        blur_vote = np.where(judged, blur_an, np.where(blurred, base.blurred_blur / scale, np.nan)) \
            if j is base else np.where(judged, blur_an, np.nan)
        voting = judged | blurred
        subject_blur = b.weighted_quantile(blur_vote[voting], weights[voting], p.verdict.on_fraction)
        # Tiles flagged at the model's own threshold (tuned to a false-flag rate on still
        # tiles): at 0.5 the heads flagged 75 % of wicker_balls_phone's sharpest frame.
        m_thr = lv.motion_threshold
        # Motion is judged where motion_check says (stills by default): on the live stream the
        # head reads oriented textures as streaks -- a static phone shot of wicker has 36-68 %
        # of its tiles flagged through focus, 44 % at its sharpest frame -- and a flag there
        # would hold the LED off at focus.
        judge_motion = still or p.motion_check == "always"
        motion = (self.has_blur and judge_motion
                  and b.motion_share(j.motion[judged], weights[judged], m_thr) >= p.motion_fraction)
        if self.has_blur and p.focus_rule == "blur":
            streaked = (np.nan_to_num(j.motion, nan=0.0) >= m_thr) if judge_motion else None
            frac = b.sharp_fraction(blur_vote, weights, p.coc_px, exclude=streaked)
        elif j is not base:
            # Detail only on a reduced copy: real structure, but blurred by at least the
            # reduction -- out of focus, never in focus (no blur head to say by how much).
            frac = 0.0
        else:
            # Single streaked tiles are not excluded here: the motion head's few per cent of
            # false flags on still tiles cost mineral_crystals_micro, whose share sits at the
            # bar, its only lit frame; a motion-blurred frame is caught as a whole below.
            frac = (float(weights[judged & (j.p >= self.threshold)].sum() / (w_inf + w_blurred))
                    if w_inf > 0 else 0.0)
        approach_coarser = (track and not lv.scale_learned and lv.frame_estimate is not None
                            and lv.frame_estimate > lv.scale)
        if approach_coarser:
            # The first approach of a live pass, before the ROI's scale is learned: the frame's
            # own detail lives coarser than the full resolution it is judged at -- a defocused
            # frame, or a sharp oversampled one, alike at one level (scale.py) -- so it is not
            # in focus here (it reads out of focus, as designed).  Without this, an enlarged
            # stream's grain passed the texture gate and the in-focus head read it as sharp
            # (ant 2x: p 0.92-0.95 on frames 2.5-5 px from focus, the LED lit two frames early).
            frac = 0.0
        judgeable = int(judged.sum()) >= p.verdict.min_informative_tiles
        if (not motion and p.motion_check != "off" and judge_motion
                and judgeable and j is base and frac >= p.verdict.on_fraction):
            # The model-free check beside the motion head, not instead of it: the head misses
            # long streaks on one-orientation content that the edge widths catch, and the
            # check misses short shake the head sees (either flag makes it motion_blur).
            motion = b.motion_check(lv.base_luma, p.effective_roi)
        raw = judgeable and not motion and frac >= p.verdict.on_fraction
        sharp = m.sharpness(base.st.lap_var, base.floor, base.level.weights)
        if track:
            in_focus, meter, peak, changed = self.focus_pass.update(
                sharp, base.st.mean, lv.level_sharp,
                frac, judgeable, motion)
        else:
            in_focus, meter, peak, changed = raw, 1.0 if sharp > 0 else 0.0, sharp, False
        # The blur caps the meter when it decides; under the classifier rule the lens's own
        # best may be softer than coc_px (mineral's crystals at 2.4 px) while the LED is lit.
        absolute = b.blur_meter(subject_blur, p.coc_px) if p.focus_rule == "blur" else math.nan
        if math.isnan(absolute):
            # The classifier decides (no blur head, or the classifier rule): judged only
            # reduced, blurred by at least the reduction; else how far the detail is from
            # this level's Nyquist limit (scale.closeness).
            absolute = (scale / j.factor if j is not base
                        else sc.closeness(lv.octave, p.auto_ratio))
            if j is base and w_inf > 0 and not (track and self.focus_pass.through):
                # ... and, for a still or until the pass has gone through focus (while "best
                # so far" may be a soft frame), by how sure the classifier is that the subject
                # is sharp (its mean in-focus probability, blurred tiles at 0, relative to the
                # threshold): on real sweeps the octave ratio alone let the soft first frames
                # of a pass read 100 % (JPEG blocks and noise keep it low).  Once through,
                # the meter is relative to the pass's known peak again.
                p_subject = float((j.p[judged] * weights[judged]).sum() / (w_inf + w_blurred))
                absolute = min(absolute, p_subject / self.threshold)
        if approach_coarser:
            # ... and its meter is capped as for a frame judged only reduced: its detail is
            # blurred by at least the factor it lives at (a 96 % meter on ant's soft 2x first frame)
            cap = scale / float(lv.frame_estimate)
            absolute = cap if math.isnan(absolute) else min(absolute, cap)
        if not math.isnan(absolute):
            meter = min(meter, absolute)
        if not judgeable:
            meter = 0.0      # nothing to judge focus on: the meter shows no closeness at all
        noise_sigma = math.sqrt(lv.sensor_k * (128.0 + p.noise_offset_dn))
        near_needs_meter = p.focus_rule != "blur"   # the classifier rule: near needs the meter too
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
            timings_ms={**lv.t_ms, "verdict": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3},
            path=frame.path,
            verdict=b.category(in_focus, judgeable, subject_blur, p.coc_px, p.near_factor, motion,
                               meter, p.near_meter, near_needs_meter=near_needs_meter),
            near_needs_meter=near_needs_meter,
            blur_px=subject_blur, blur_px_sensor=subject_blur * scale, motion_blur=bool(motion),
            analysis_scale=int(scale), judged_scale=int(j.factor), coc_px=p.coc_px,
            tile_blur_px=blur_an, tile_p_motion=j.motion, tile_blurred=blurred, near_meter=p.near_meter,
        )

    def close(self) -> None:
        """Release the classifier."""
        if self.classifier is not None:
            self.classifier.close()
