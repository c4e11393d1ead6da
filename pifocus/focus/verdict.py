"""Turn per-frame scores into a steady verdict and a peak-hold focus meter.

Two small state machines, kept apart from the numeric core so they can be tested frame by
frame:

* :class:`Verdict` -- hysteresis (a higher bar to become "in focus" than to stay in focus)
  plus a minimum dwell (a new state must hold for ``dwell_frames`` frames), so the LED does
  not flicker when the score hovers at the threshold.
* :class:`PeakHold` -- sharpness relative to the best seen in this focusing pass: rack
  through focus, watch the meter fall after the peak, come back until it reads ~100 %.  A
  scene change (or :meth:`PeakHold.reset`) starts a new pass.
"""

from dataclasses import dataclass

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
    """

    on_fraction: float = 0.5
    off_fraction: float = 0.35
    dwell_frames: int = 2
    min_informative_tiles: int = 2

    def __post_init__(self):
        require(0 < self.on_fraction <= 1, "analysis", "on_fraction", self.on_fraction, "0 < x <= 1")
        require(0 <= self.off_fraction < self.on_fraction, "analysis", "off_fraction", self.off_fraction,
                f"0 <= x < on_fraction ({self.on_fraction})")
        require(1 <= int(self.dwell_frames) <= 100, "analysis", "dwell_frames", self.dwell_frames, "1..100 frames")
        require(1 <= int(self.min_informative_tiles) <= 1000, "analysis", "min_informative_tiles",
                self.min_informative_tiles, "1..1000 tiles")


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

    def update(self, in_focus_fraction: float, judgeable: bool) -> bool:
        """Feed one frame's in-focus share; returns the (debounced) verdict."""
        p = self.params
        if not judgeable:
            want = False
        elif self.state:
            want = in_focus_fraction >= p.off_fraction
        else:
            want = in_focus_fraction >= p.on_fraction
        if want == self.state:
            self._count = 0
            return self.state
        if want != self._candidate:
            self._candidate, self._count = want, 0
        self._count += 1
        if self._count >= p.dwell_frames:
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
