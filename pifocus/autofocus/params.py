"""Autofocus parameters: :class:`AutofocusParams` (config table ``[autofocus]``) and its
sub-tables, one per strategy plus the quality gate (:class:`SweepParams`,
:class:`ModelParams`, :class:`ContinuousParams`, :class:`GateParams`).

All are frozen dataclasses validated on construction (:class:`~pifocus.exc.ConfigError`
names the offending key).  They live together because :class:`AutofocusParams` holds one
of each.
"""

import math
from dataclasses import dataclass, field
from typing import Optional

from ..exc import ConfigError
from ..validate import require
from .base import REGISTRY, SCALES


def _sub(cls, value, section):
    """Nested params from a TOML sub-table (dict) or an instance."""
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        from ..config import build
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
        min_r2: R² of the peak fit below this -> "poor fit" (a fit without a width: the
            ``parabola`` model; a Gaussian fit is judged by ``close_dofs`` instead).
        close_dofs: the best sample needs a lower one on each side within this many depths
            of focus (the fitted peak's half width at half maximum; or the next drive step)
            -> else "peak not bracketed closely".  The peak is then within about the depth
            of focus of the best.
        rival_ratio: another local maximum of the sampled curve, not next to the best and
            behind a dip, scoring at least this share of the best -> "multi-peaked curve".
        edge_margin: the peak counts as at the edge when the best sample is the first or
            last position of the range and the fit does not put the peak inside.
        return_ratio: the fitted peak's verification frame must score at least this share
            of the best sample, else the fit was wrong (a vertex through far samples) and
            the run moves back to the best sample: a frame at the true peak scores at least
            about the best, so one well below it is off the peak however close it looked.
        verify_ratio: the frame finally kept (the fitted peak's, or the best sample's re-read)
            must reach this share of the best sample's score, else the run fails as
            "focus not reproducible" (lens slipping, missed steps, a moving subject).
    """

    min_brightness_dn: float = 12.0
    min_informative: float = 0.05
    flat_ratio: float = 1.4
    min_r2: float = 0.6
    verify_ratio: float = 0.5
    return_ratio: float = 0.7
    rival_ratio: float = 0.7
    close_dofs: float = 2.5

    def __post_init__(self):
        s = "autofocus.gate"
        require(0 <= self.min_brightness_dn <= 255, s, "min_brightness_dn", self.min_brightness_dn, "0..255")
        require(0 <= self.min_informative <= 1, s, "min_informative", self.min_informative, "0..1")
        require(1 <= self.flat_ratio <= 1000, s, "flat_ratio", self.flat_ratio, "1..1000")
        require(-1 <= self.min_r2 <= 1, s, "min_r2", self.min_r2, "-1..1")
        require(0 <= self.verify_ratio <= 1, s, "verify_ratio", self.verify_ratio, "0..1")
        require(self.verify_ratio <= self.return_ratio <= 1, s, "return_ratio", self.return_ratio,
                f"verify_ratio ({self.verify_ratio:g})..1")
        require(0.5 <= self.close_dofs <= 100, s, "close_dofs", self.close_dofs, "0.5..100 depths of focus")
        require(0 < self.rival_ratio <= 1.01, s, "rival_ratio", self.rival_ratio, "0 < x <= 1.01 (1.01 = off)")


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
class BlurParams:
    """Blur-guided search, depth from defocus (``[autofocus.blur]``).

    Attributes:
        probe_step: distance of the first probe from the start, as a fraction of the range.
        blur_floor_px: the blur radius the model reads at best focus (its floor); the
            V-shaped model of blur against position is ``a |x - x*| + floor``.
        min_change_px: a probe whose blur differs from the start by less than this gives no
            slope: probe again twice as far.
        max_jumps: most jumps to the predicted focus before the fine step.
        near_factor: a jump that lands within this many ``coc_px`` of focus ends the jumps.
        fine_factor: fine samples at +-(this x the depth of focus) around the predicted focus.
    """

    probe_step: float = 0.08
    blur_floor_px: float = 0.3
    min_change_px: float = 0.3
    max_jumps: int = 3
    near_factor: float = 2.0
    fine_factor: float = 1.0

    def __post_init__(self):
        s = "autofocus.blur"
        require(0 < self.probe_step <= 0.5, s, "probe_step", self.probe_step, "0 < x <= 0.5")
        require(0 <= self.blur_floor_px <= 3, s, "blur_floor_px", self.blur_floor_px, "0..3 px")
        require(0 < self.min_change_px <= 5, s, "min_change_px", self.min_change_px, "0 < x <= 5 px")
        require(1 <= int(self.max_jumps) <= 10, s, "max_jumps", self.max_jumps, "1..10")
        require(1 <= self.near_factor <= 10, s, "near_factor", self.near_factor, "1..10")
        require(0.1 <= self.fine_factor <= 10, s, "fine_factor", self.fine_factor, "0.1..10")


@dataclass(frozen=True)
class DfdParams:
    """Depth-from-defocus search (``[autofocus.dfd]``, :mod:`pifocus.autofocus.dfd`).

    Attributes:
        probe_step: distance of the first probe from the start, as a fraction of the range.
        max_jump: the longest jump towards the predicted focus, as a fraction of the range.
        blur_floor: the blur estimate at best focus (units of the estimate: px with the
            model's blur head, :func:`~pifocus.autofocus.dfd.relative_blur` units without;
            on the simulated lens and the shared sweeps its sharpest frames read 1..2).
        fine_factor: landing samples at this many sigmas of the fitted peak from the best.
        max_jumps: most jumps (bounded loop).
        max_landing: most landing samples (bounded loop).
        max_skew: a bracket whose wider side is more than this many times the other is not
            close enough (the vertex of a cusp-shaped curve leans to the wide side).
        detail_factor: a bracket counts as close only when the best sample's 2x-reduced
            measure is this many times its noise term (far out the curve's tails are wide and
            bumpy: a narrow bracket there sends the search to the widest unsampled stretch).
        grow: a jump beyond the best sample goes at most this many times the distance from
            the best to its inner neighbour (and exactly that far when nothing predicts focus).
        bracket_sigmas: a bracket (best sample with a lower one on each side) at most this
            many sigmas of its fitted log-parabola wide is close enough: its vertex is the target.
        bracket_sigmas_sharp: ... this many when the best sample's blur estimate is within
            ``sharp_margin`` of ``blur_floor`` (it reads sharp: it is at the peak already).
        sharp_margin: see ``bracket_sigmas_sharp`` (units of the blur estimate).
        close_dofs: ... and both its neighbours are within this many depths of focus (half
            widths at half maximum of the fitted peak) of it.
        converge_sigmas: ... or its vertex is within this many sigmas of the best sample.
        snap_sigmas: a target this close (sigmas of the fitted peak) to the best sample is the
            best sample itself (its frame, when it was the last, verifies it).
        sharp_blur: a bracketed peak whose model-free blur estimate is above this is not
            trusted yet (a local peak): the widest unsampled stretch is looked at first.
        sharp_blur_px: the same with the model's blur head (px at the analysis scale).
        use_head: jump by the model's blur head when it has one (else, and by default, by
            the model-free edge-width estimate).  Off by default: with the heads beside the
            v1 net the replays of the shared sweeps ended in the accepted range in 90.4 %
            (model-free 91.4 %), the flag true in 96.7 % (98.6 %), simulated success 97 %
            (100 %; ``tools/af_bench.py --model``).
        trust_sharp: a bracketed peak whose blur estimate says sharp is accepted at once;
            False: every peak waits until no unsampled stretch wider than ``explore_gap`` is left.
        explore_gap: ... while an unsampled stretch wider than this share of the range is left.
            A bracket wider than this share is never tight enough to land on: its fit through
            far samples of a narrow peak is wide (beetle: 11, 14, 23 bracketed 14, the peak at
            12), so it is sampled inside first.
        coarse_rise: a bracketed peak whose neighbour's 8x-reduced measure is more than this
            many times the peak's is a local one while half ``explore_gap`` of the range is
            unsampled on that side: more of the scene comes into focus there, look first.  The
            same for a best at an end of the range against any sample further inside.
        flat_ratio: while the best/worst score of the samples is below this, nothing has
            changed with focus yet: sample the middle of the widest unsampled stretch.
    """

    probe_step: float = 0.1
    max_jump: float = 0.45
    blur_floor: float = 1.0
    fine_factor: float = 0.6
    max_jumps: int = 8
    max_landing: int = 6
    flat_ratio: float = 1.4
    bracket_sigmas: float = 3.5
    bracket_sigmas_sharp: float = 5.5
    sharp_margin: float = 1.0
    close_dofs: float = 2.5
    grow: float = 2.0
    max_skew: float = 4.0
    detail_factor: float = 3.0
    converge_sigmas: float = 0.3
    snap_sigmas: float = 0.15
    sharp_blur: float = 6.0
    sharp_blur_px: float = 2.5
    use_head: bool = False
    explore_gap: float = 0.35
    trust_sharp: bool = True
    coarse_rise: float = 1.03

    def __post_init__(self):
        s = "autofocus.dfd"
        require(0 < self.sharp_blur <= 100, s, "sharp_blur", self.sharp_blur, "0 < x <= 100")
        require(0 < self.sharp_blur_px <= 50, s, "sharp_blur_px", self.sharp_blur_px, "0 < x <= 50 px")
        require(1 <= self.coarse_rise <= 100, s, "coarse_rise", self.coarse_rise, "1..100 (100 = off)")
        require(0 < self.explore_gap <= 1, s, "explore_gap", self.explore_gap, "0 < x <= 1")
        require(0 <= self.snap_sigmas <= 1, s, "snap_sigmas", self.snap_sigmas, "0..1")
        require(0 <= self.converge_sigmas <= 2, s, "converge_sigmas", self.converge_sigmas, "0..2")
        require(0 <= self.detail_factor <= 100, s, "detail_factor", self.detail_factor, "0..100")
        require(1 <= self.max_skew <= 100, s, "max_skew", self.max_skew, "1..100")
        require(1 < self.grow <= 10, s, "grow", self.grow, "1 < x <= 10")
        require(0.5 <= self.bracket_sigmas_sharp <= 10, s, "bracket_sigmas_sharp", self.bracket_sigmas_sharp,
                "0.5..10")
        require(0 <= self.sharp_margin <= 10, s, "sharp_margin", self.sharp_margin, "0..10")
        require(0.5 <= self.close_dofs <= 10, s, "close_dofs", self.close_dofs, "0.5..10")
        require(0.5 <= self.bracket_sigmas <= 10, s, "bracket_sigmas", self.bracket_sigmas, "0.5..10")
        require(1 < self.flat_ratio <= 100, s, "flat_ratio", self.flat_ratio, "1 < x <= 100")
        require(0 < self.probe_step <= 0.5, s, "probe_step", self.probe_step, "0 < x <= 0.5")
        require(0 < self.max_jump <= 1, s, "max_jump", self.max_jump, "0 < x <= 1")
        require(0 <= self.blur_floor <= 10, s, "blur_floor", self.blur_floor, "0..10")
        require(0.1 <= self.fine_factor <= 3, s, "fine_factor", self.fine_factor, "0.1..3")
        require(1 <= int(self.max_jumps) <= 20, s, "max_jumps", self.max_jumps, "1..20")
        require(1 <= int(self.max_landing) <= 20, s, "max_landing", self.max_landing, "1..20")


@dataclass(frozen=True)
class ContinuousParams:
    """Continuous AF (``[autofocus.continuous]``).

    Attributes:
        drop_ratio: a score below this share of the in-focus reference counts as a drop --
            for the blur score of a model with a blur head (``(coc_px / blur_px)^2``: 1
            throughout the depth of focus, below 0.6 once the blur passes 1.3 x ``coc_px``).
        sharpness_drop_ratio: the same for the Laplacian sharpness (no blur estimate), which
            already falls to ~20 % of its peak at the edge of the depth of focus: 0.15 =
            refocus only outside it (0.6 there hunted: 4 searches in 600 frames of a subject
            swaying within the depth of focus on the sim lens).
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
    sharpness_drop_ratio: float = 0.15
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
        require(0 < self.sharpness_drop_ratio < 1, s, "sharpness_drop_ratio", self.sharpness_drop_ratio, "0 < x < 1")
        require(1 <= int(self.drop_frames) <= 1000, s, "drop_frames", self.drop_frames, "1..1000")
        require(0 < self.scene_cut <= 10, s, "scene_cut", self.scene_cut, "0 < x <= 10")
        require(1 <= int(self.relearn_frames) <= 100, s, "relearn_frames", self.relearn_frames, "1..100")
        require(0 < self.search_step <= 0.5, s, "search_step", self.search_step, "0 < x <= 0.5")
        require(4 <= int(self.search_frames) <= 200, s, "search_frames", self.search_frames, "4..200")
        require(0 <= self.cnn_out_of_focus <= 1, s, "cnn_out_of_focus", self.cnn_out_of_focus, "0..1")
        require(0 <= self.turn_tolerance <= 1, s, "turn_tolerance", self.turn_tolerance, "0..1")


#: ``[autofocus] mode`` values.
AF_MODES = ("single", "continuous")


@dataclass(frozen=True)
class AutofocusParams:
    """Autofocus configuration (config table ``[autofocus]``, sub-tables per strategy).

    Attributes:
        strategy: ``dfd`` (default: depth from defocus, then a short local fit; fewest
            frames on ``tools/af_bench.py``), ``model``, ``sweep``, ``blur`` or ``continuous``
            (a name in :data:`~pifocus.autofocus.STRATEGIES`).
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
        mode: ``"single"`` (default): autofocus runs when asked (button, command);
            ``"continuous"``: ``run --drive`` and ``serve`` keep the subject in focus with
            :class:`~pifocus.autofocus.ContinuousAF` (refocus only when sharpness drops and
            stays down; switchable on the page).
        centre_sigma: the curve score weights the ROI by a Gaussian about its centre, this
            many ROI sides wide (0 = every pixel alike).  The subject is where the ROI is
            aimed; a background plane with fine texture at its edges (paper behind a fruit,
            a wicker ball beside the strand) must not out-score it.  At 0.25 the middle
            half of each side (a quarter of the area) carries half the weight.
        sweep, model, continuous, blur, gate: the per-strategy parameters and the quality gate.
    """

    strategy: str = "dfd"
    score: str = "multiscale"
    settle_frames: int = 0
    approach_overshoot: float = 0.05
    start: Optional[float] = None
    mode: str = "single"
    centre_sigma: float = 0.25
    sweep: SweepParams = field(default_factory=SweepParams)
    model: ModelParams = field(default_factory=ModelParams)
    continuous: ContinuousParams = field(default_factory=ContinuousParams)
    gate: GateParams = field(default_factory=GateParams)
    blur: BlurParams = field(default_factory=BlurParams)
    dfd: DfdParams = field(default_factory=DfdParams)

    def __post_init__(self):
        s = "autofocus"
        # Any registered strategy (pifocus.autofocus registers them all on import).
        require(self.strategy in REGISTRY, s, "strategy", self.strategy, ", ".join(REGISTRY))
        require(self.score in ("multiscale", "laplacian"), s, "score", self.score, "multiscale, laplacian")
        require(0 <= int(self.settle_frames) <= 30, s, "settle_frames", self.settle_frames, "0..30")
        require(self.start is None or math.isfinite(float(self.start)), s, "start", self.start, "a number")
        require(0 <= self.approach_overshoot <= 0.5, s, "approach_overshoot", self.approach_overshoot, "0..0.5")
        require(0 <= self.centre_sigma <= 10, s, "centre_sigma", self.centre_sigma,
                "0..10 ROI sides (0 = uniform)")
        require(self.mode in AF_MODES, s, "mode", self.mode, '"single" or "continuous"')
        for name, cls in (("sweep", SweepParams), ("model", ModelParams),
                          ("continuous", ContinuousParams), ("gate", GateParams), ("blur", BlurParams),
                          ("dfd", DfdParams)):
            object.__setattr__(self, name, _sub(cls, getattr(self, name), f"autofocus.{name}"))

