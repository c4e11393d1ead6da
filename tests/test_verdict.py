"""Hysteresis, dwell and peak hold, frame by frame."""

import numpy as np
import pytest

from pifocus.exc import ConfigError
from pifocus.focus.verdict import FocusPass, PeakHold, PeakHoldParams, Verdict, VerdictParams, scene_difference


def feed(v, seq, judgeable=True):
    return [v.update(x, judgeable) for x in seq]


def test_dwell_delays_switching_on_and_off():
    v = Verdict(VerdictParams(on_fraction=0.5, off_fraction=0.3, dwell_frames=3, decisive_margin=1.0))
    assert feed(v, [0.9, 0.9, 0.9, 0.9]) == [False, False, True, True]
    assert feed(v, [0.1, 0.1, 0.1]) == [True, True, False]


def test_one_frame_flicker_does_not_change_the_verdict():
    v = Verdict(VerdictParams(dwell_frames=2, decisive_margin=1.0))
    assert feed(v, [0.9, 0.9]) == [False, True]
    assert feed(v, [0.0, 0.9, 0.0, 0.9]) == [True, True, True, True]


def test_hysteresis_keeps_verdict_between_thresholds():
    v = Verdict(VerdictParams(on_fraction=0.6, off_fraction=0.3, dwell_frames=1))
    assert feed(v, [0.5, 0.59]) == [False, False]      # below the on bar
    assert feed(v, [0.6, 0.45, 0.31]) == [True, True, True]  # stays on above the off bar
    assert feed(v, [0.29]) == [False]


def test_unjudgeable_frames_count_as_not_in_focus():
    v = Verdict(VerdictParams(dwell_frames=1))
    assert v.update(1.0, True) is True
    assert v.update(1.0, False) is False


def test_bad_verdict_params_name_the_key():
    with pytest.raises(ConfigError, match="off_fraction"):
        VerdictParams(on_fraction=0.4, off_fraction=0.5)
    with pytest.raises(ConfigError, match="dwell_frames"):
        VerdictParams(dwell_frames=0)


def test_peak_hold_meter_tracks_best_of_pass():
    ph = PeakHold()
    means = np.full((2, 2), 100.0)
    out = [ph.update(s, means)[0] for s in (10, 50, 100, 60, 100)]
    assert out == pytest.approx([1.0, 1.0, 1.0, 0.6, 1.0])
    assert ph.peak == 100


def test_scene_change_starts_a_new_pass():
    ph = PeakHold(PeakHoldParams(scene_change=0.25))
    ph.update(1000, np.full((2, 2), 100.0))
    meter, peak, changed = ph.update(10, np.full((2, 2), 100.0))
    assert not changed and meter == pytest.approx(0.01)
    meter, peak, changed = ph.update(10, np.full((2, 2), 200.0))
    assert changed and meter == 1.0 and peak == 10


def test_scene_difference_ignores_defocus_sized_changes():
    a = np.array([[100.0, 50.0], [20.0, 200.0]])
    assert scene_difference(a, a * 1.02) < 0.05
    assert scene_difference(a, a[::-1]) > 0.5


def test_peak_decay_ages_out_a_stale_peak():
    ph = PeakHold(PeakHoldParams(decay_per_frame=0.5))
    ph.update(100, np.ones((1, 1)))
    ph.update(0, np.ones((1, 1)))
    assert ph.peak == pytest.approx(50)


def test_a_decisive_share_switches_on_without_the_dwell():
    v = Verdict(VerdictParams(on_fraction=0.5, off_fraction=0.35, dwell_frames=2, decisive_margin=0.3))
    assert feed(v, [0.6]) == [False]         # hovering just above the bar: the dwell holds it
    v.reset()
    assert feed(v, [0.8]) == [True]          # 0.3 above the bar: on at once


def test_a_drop_below_the_meter_switches_off_at_once():
    v = Verdict(VerdictParams(dwell_frames=2, decisive_margin=0.3))
    assert feed(v, [1.0]) == [True]
    assert v.update(0.0, True) is True                 # one poor frame: debounced
    assert v.update(0.0, True, drop=True) is False     # the meter fell far below the peak: off now


def test_the_approach_needs_a_near_unanimous_share():
    v = Verdict(VerdictParams(on_fraction=0.5, approach_fraction=0.9, dwell_frames=1))
    assert v.update(0.8, True, approach=True) is False   # best so far may be far from the peak
    assert v.update(0.9, True, approach=True) is True
    v.reset()
    assert v.update(0.8, True, approach=False) is True   # through focus once: the meter guards


def test_approach_and_margin_are_validated():
    with pytest.raises(ConfigError, match="approach_fraction"):
        VerdictParams(on_fraction=0.6, approach_fraction=0.5)
    with pytest.raises(ConfigError, match="decisive_margin"):
        VerdictParams(decisive_margin=1.5)


def test_peak_hold_rebase_goes_on_against_another_scale_peak():
    ph = PeakHold()
    means = np.full((6, 8), 100.0)
    ph.update(50.0, means)
    ph.rebase(200.0)                     # the pass's best at the new scale
    meter, peak, _ = ph.update(100.0, means)
    assert peak == 200.0 and meter == pytest.approx(0.5)


def test_back_at_the_pass_s_peak_switches_on_without_the_dwell():
    v = Verdict(VerdictParams(on_fraction=0.5, dwell_frames=2, decisive_margin=0.3))
    assert v.update(0.55, True) is False                    # hovering at the bar: the dwell holds it
    v.reset()
    assert v.update(0.55, True, at_peak=True) is True       # at the peak: meter and tiles agree, on now
    v.reset()
    assert v.update(0.45, True, at_peak=True) is False      # the tiles still have to reach the bar


def _pull(fp, frames):
    """Feed ``(sharpness, in-focus share)`` frames to a FocusPass; the LED per frame."""
    means = np.full((4, 4), 100.0)
    return [fp.update(s, means, {}, f, True, False)[0] for s, f in frames]


def test_a_fast_rack_lights_at_the_peak_it_shows_for_one_frame():
    """mineral_crystals_micro played 1 -> N -> 1: on the way back the crystals reach the bar
    on one frame only (the sharpest, meter 0.99) and the dwell kept the LED dark on every
    pass.  Back at the pass's peak the frame is decisive; on the way out it is not (the
    approach bar holds, the peak is not yet known)."""
    out = [(100, 0.3), (400, 0.5), (300, 0.45), (100, 0.2), (50, 0.0)]   # through the peak
    back = [(100, 0.2), (300, 0.45), (398, 0.5), (100, 0.3)]
    fp = FocusPass(VerdictParams(), PeakHoldParams(), min_meter=0.8)
    lit = _pull(fp, out + back)
    assert lit == [False] * 5 + [False, False, True, False]
    off = FocusPass(VerdictParams(peak_meter=1.01), PeakHoldParams(), min_meter=0.8)
    assert not any(_pull(off, out + back))                   # without it: never lit


def test_peak_meter_is_validated():
    with pytest.raises(ConfigError, match="peak_meter"):
        VerdictParams(peak_meter=0.3)
    with pytest.raises(ConfigError, match="peak_meter"):
        VerdictParams(peak_meter=1.5)
