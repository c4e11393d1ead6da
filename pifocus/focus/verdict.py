"""Turn per-frame scores into a steady verdict and a peak-hold focus meter.

Two small state machines, kept apart from the numeric core so they can be tested frame by
frame:

* :class:`Verdict` -- hysteresis (a higher bar to become "in focus" than to stay in focus)
  plus a minimum dwell (a new state must hold for ``dwell_frames`` frames), so the LED does
  not flicker when the score hovers at the threshold.  The dwell is for hovering only: a
  decisive change (the tiles far above the bar, or the meter dropping well below the pass's
  peak) acts on the frame it is seen, so the LED does not trail one frame behind a fast rack.
  Before a focusing pass has gone through its peak the meter cannot tell how close the peak
  is, so the tiles must be near-unanimous (``approach_fraction``) to switch on.
* :class:`PeakHold` -- sharpness relative to the best seen in this focusing pass: rack
  through focus, watch the meter fall after the peak, come back until it reads ~100 %.  A
  scene change (or :meth:`PeakHold.reset`) starts a new pass.
* :class:`FocusPass` -- the two together for a live stream, with the ``min_meter`` guard,
  whether the pass has gone through its peak yet, and each pyramid level's best (so a change
  of the analysis scale keeps the meter's peak).
"""

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from ..validate import require


@dataclass(frozen=True)
class VerdictParams:
    """Hysteresis and dwell of the in-focus verdict.

    Attributes:
        on_fraction: share of informative ROI weight that must be in focus to switch on.
        off_fraction: share below which the verdict switches off (< ``on_fraction``).
        dwell_frames: frames a new state must persist before the verdict changes.
        min_informative_tiles: fewer informative tiles than this and the frame cannot be
            judged (counts as not in focus).
        approach_fraction: share needed to switch on while the focusing pass has not yet
            gone through its peak (``>= on_fraction``; the live verdict only).
        decisive_margin: a share at least this far above the bar in force switches on at
            once, without the dwell (0 = always at once; 1 = never).
        peak_meter: after the pass has gone through its peak, a frame back at it (the meter
            at least this) switches on at once when the share reaches the bar: the meter and
            the tiles agree there, and a fast rack shows the peak for one frame only
            (the live verdict only; 1.01 = off).
    """

    on_fraction: float = 0.5
    off_fraction: float = 0.35
    dwell_frames: int = 2
    min_informative_tiles: int = 2
    approach_fraction: float = 0.9
    decisive_margin: float = 0.3
    peak_meter: float = 0.95

    def __post_init__(self):
        require(0 < self.on_fraction <= 1, "analysis", "on_fraction", self.on_fraction, "0 < x <= 1")
        require(0 <= self.off_fraction < self.on_fraction, "analysis", "off_fraction", self.off_fraction,
                f"0 <= x < on_fraction ({self.on_fraction})")
        require(1 <= int(self.dwell_frames) <= 100, "analysis", "dwell_frames", self.dwell_frames, "1..100 frames")
        require(1 <= int(self.min_informative_tiles) <= 1000, "analysis", "min_informative_tiles",
                self.min_informative_tiles, "1..1000 tiles")
        require(self.on_fraction <= self.approach_fraction <= 1, "analysis", "approach_fraction",
                self.approach_fraction, f"on_fraction ({self.on_fraction}) <= x <= 1")
        require(0 <= self.decisive_margin <= 1, "analysis", "decisive_margin", self.decisive_margin, "0..1")
        require(0.5 <= self.peak_meter <= 1.01, "analysis", "peak_meter", self.peak_meter, "0.5..1.01 (1.01 = off)")


class Verdict:
    """The in-focus verdict with hysteresis and minimum dwell (one per stream)."""

    def __init__(self, params: VerdictParams = VerdictParams()):
        self.params = params
        self.state = False
        self._candidate = False
        self._count = 0

    def reset(self) -> None:
        """Back to "not in focus" with no history."""
        self.state = False
        self._candidate = False
        self._count = 0

    def update(self, in_focus_fraction: float, judgeable: bool, *, approach: bool = False,
               drop: bool = False, at_peak: bool = False) -> bool:
        """Feed one frame's in-focus share; returns the (debounced) verdict.

        Args:
            in_focus_fraction: share of the informative weight in focus (0..1).
            judgeable: the frame has enough informative tiles to be judged at all.
            approach: the focusing pass has not gone through its peak yet: switching on
                needs ``approach_fraction``.
            drop: the frame is far below the pass's peak (the meter under ``min_meter``):
                switching off is decisive (no dwell).
            at_peak: the pass has gone through its peak and this frame is back at it
                (``peak_meter``): switching on is decisive.
        """
        p = self.params
        bar = p.approach_fraction if approach else p.on_fraction
        if not judgeable:
            want = False
        elif self.state:
            want = in_focus_fraction >= p.off_fraction
        else:
            want = in_focus_fraction >= bar
        if want == self.state:
            self._count = 0
            return self.state
        decisive = drop if self.state else (at_peak or in_focus_fraction >= bar + p.decisive_margin)
        if want != self._candidate:
            self._candidate, self._count = want, 0
        self._count += 1
        if self._count >= p.dwell_frames or decisive:
            self.state, self._count = want, 0
        return self.state


@dataclass(frozen=True)
class PeakHoldParams:
    """Peak-hold meter and scene-change detection.

    Attributes:
        scene_change: mean relative change of tile brightness (vs. the running reference)
            above which the scene is considered cut and a new focusing pass starts.
        decay_per_frame: the held peak decays by this fraction per frame, so a stale peak
            from a lucky frame ages out (0 = hold forever).
    """

    scene_change: float = 0.25
    decay_per_frame: float = 0.0

    def __post_init__(self):
        require(0 < self.scene_change <= 10, "analysis", "scene_change", self.scene_change, "0 < x <= 10")
        require(0 <= self.decay_per_frame < 1, "analysis", "peak_decay_per_frame", self.decay_per_frame,
                "0 <= x < 1")


def scene_difference(reference: np.ndarray, current: np.ndarray, offset_dn: float = 10.0) -> float:
    """Mean relative change of tile brightness between two frames (0 = same scene).

    Defocus barely changes a tile's mean brightness, a new scene or a big pan does.
    """
    reference = np.asarray(reference, np.float32)
    current = np.asarray(current, np.float32)
    if reference.shape != current.shape:
        return float("inf")
    return float(np.mean(np.abs(current - reference) / (reference + offset_dn)))


class PeakHold:
    """Sharpness relative to the best of this focusing pass (0..1)."""

    def __init__(self, params: PeakHoldParams = PeakHoldParams()):
        self.params = params
        self.peak = 0.0
        self._reference = None

    def reset(self) -> None:
        """Start a new focusing pass."""
        self.peak = 0.0
        self._reference = None

    def rebase(self, peak: float) -> None:
        """Go on with this pass measured on another scale: ``peak`` is the pass's best
        sharpness on that scale (0 = none seen: the next frame sets it)."""
        self.peak = max(0.0, float(peak))

    def update(self, sharpness: float, tile_means: np.ndarray):
        """Feed one frame; returns ``(meter, peak, scene_changed)``."""
        changed = False
        if self._reference is not None and \
                scene_difference(self._reference, tile_means) > self.params.scene_change:
            changed = True
            self.peak = 0.0
        # A slow running reference follows gradual light changes without missing a cut.
        self._reference = (np.asarray(tile_means, np.float32).copy() if self._reference is None or changed
                           else 0.8 * self._reference + 0.2 * np.asarray(tile_means, np.float32))
        self.peak *= (1.0 - self.params.decay_per_frame)
        self.peak = max(self.peak, float(sharpness))
        meter = float(sharpness) / self.peak if self.peak > 0 else 0.0
        return min(max(meter, 0.0), 1.0), self.peak, changed


class FocusPass:
    """One live focusing pass: the peak-hold meter, the debounced verdict and the
    ``min_meter`` guard (see :class:`~pifocus.focus.AnalysisParams`).

    The pass has *gone through focus* once the meter has fallen below ``min_meter``; until
    then "best so far" may be far below the peak (the approach), so switching on needs
    :attr:`VerdictParams.approach_fraction`.  Each pyramid level's best sharpness of the pass
    is kept, so :meth:`rescale` (the ROI's analysis scale adopted mid-pass) goes on against
    the pass's best at the new level instead of restarting at 100 % on a soft frame.
    """

    def __init__(self, verdict: VerdictParams, peak: PeakHoldParams, min_meter: float):
        self.verdict = Verdict(verdict)
        self.peak = PeakHold(peak)
        self.min_meter = float(min_meter)
        self.through = False
        self._level_peaks: Dict[int, float] = {}

    def reset(self) -> None:
        """Start a new pass."""
        self.verdict.reset()
        self.peak.reset()
        self.through = False
        self._level_peaks = {}

    def rescale(self, level: int) -> None:
        """The meter goes on at pyramid ``level`` (sensor pixels per analysis pixel)."""
        self.peak.rebase(self._level_peaks.get(int(level), 0.0))

    def update(self, sharpness: float, tile_means, level_sharpness: Dict[int, float],
               in_focus_fraction: float, judgeable: bool, motion: bool) -> Tuple[bool, float, float, bool]:
        """Feed one frame; returns ``(in_focus, meter, peak, scene_changed)``.

        Args:
            sharpness: the frame's ROI sharpness at the analysis scale (DN²).
            tile_means: tile brightness (scene-cut detection).
            level_sharpness: ROI sharpness at every pyramid level measured (may be empty).
            in_focus_fraction: share of the informative weight in focus.
            judgeable: enough informative tiles to judge.
            motion: the frame is motion-blurred (never in focus).
        """
        meter, peak, changed = self.peak.update(sharpness, tile_means)
        if changed:
            self._level_peaks = {}
        for f, s in level_sharpness.items():
            self._level_peaks[f] = max(self._level_peaks.get(f, 0.0), float(s))
        below = self.min_meter > 0 and meter < self.min_meter
        self.through = (self.through and not changed) or below
        in_focus = self.verdict.update(0.0 if motion or below else in_focus_fraction, judgeable,
                                       approach=not self.through, drop=below,
                                       at_peak=self.through and meter >= self.verdict.params.peak_meter)
        return in_focus, meter, peak, changed
