"""The blur-based judgement's pure functions, on literal arrays (pifocus.focus.blur)."""

import math

import numpy as np
import pytest

from pifocus.focus import blur as b


def test_weighted_quantile_literal():
    v = np.array([[0.5, 1.0], [2.0, np.nan]])
    w = np.array([[1.0, 1.0], [2.0, 5.0]])
    # weights of the non-NaN values: 1, 1, 2 (total 4): half the weight is at or below 1.0
    assert b.weighted_quantile(v, w, 0.5) == 1.0
    assert b.weighted_quantile(v, w, 0.25) == 0.5
    assert b.weighted_quantile(v, w, 0.75) == 2.0
    assert b.weighted_quantile(v, w, 1.0) == 2.0
    assert math.isnan(b.weighted_quantile(np.array([np.nan]), np.array([1.0]), 0.5))
    assert math.isnan(b.weighted_quantile(np.array([1.0]), np.array([0.0]), 0.5))


def test_quantile_and_fraction_tell_the_same_story():
    rng = np.random.default_rng(3)
    for _ in range(200):
        v = rng.uniform(0, 4, size=12)
        w = rng.uniform(0.1, 1, size=12)
        coc, q = rng.uniform(0.3, 3), rng.uniform(0.2, 0.9)
        frac = b.sharp_fraction(v, w, coc)
        assert (b.weighted_quantile(v, w, q) <= coc) == (frac >= q - 1e-9)


def test_sharp_fraction_excludes_motion_and_ignores_unjudged():
    v = np.array([0.5, 0.5, 3.0, np.nan])
    w = np.ones(4)
    assert b.sharp_fraction(v, w, 1.0) == pytest.approx(2 / 3)
    assert b.sharp_fraction(v, w, 1.0, exclude=np.array([True, False, False, False])) == pytest.approx(1 / 3)
    assert b.sharp_fraction(np.full(3, np.nan), np.ones(3), 1.0) == 0.0


def test_motion_share():
    assert b.motion_share(np.array([0.9, 0.1, np.nan, 0.6]), np.array([1, 1, 5, 2.0])) == pytest.approx(3 / 4)
    assert b.motion_share(np.full(2, np.nan), np.ones(2)) == 0.0


@pytest.mark.parametrize("args, want", [
    ((True, True, 0.6, 1.0, 2.5, False), "in_focus"),
    ((False, True, 2.0, 1.0, 2.5, False), "near"),
    ((False, True, 3.0, 1.0, 2.5, False), "out_of_focus"),
    ((False, True, math.nan, 1.0, 2.5, False), "out_of_focus"),
    ((True, True, 0.6, 1.0, 2.5, True), "motion_blur"),
    ((False, False, math.nan, 1.0, 2.5, False), "no_detail"),
    ((True, False, 0.5, 1.0, 2.5, True), "no_detail"),
    # without a blur estimate the meter decides near (near_meter)
    ((False, True, math.nan, 1.0, 2.5, False, 0.85, 0.8), "near"),
    ((False, True, math.nan, 1.0, 2.5, False, 0.5, 0.8), "out_of_focus"),
    ((True, True, math.nan, 1.0, 2.5, False, 0.5, 0.8), "in_focus"),
    # with one, the blur does, whatever the meter
    ((False, True, 3.0, 1.0, 2.5, False, 0.95, 0.8), "out_of_focus"),
    ((False, True, 2.0, 1.0, 2.5, False, 0.5, 0.8), "near"),
    # ... and under the classifier rule (near_needs_meter) the meter must say close too
    ((False, True, 2.0, 1.0, 2.5, False, 0.5, 0.8, True), "out_of_focus"),
    ((False, True, 2.0, 1.0, 2.5, False, 0.85, 0.8, True), "near"),
    ((False, True, 3.0, 1.0, 2.5, False, 0.95, 0.8, True), "out_of_focus"),
    ((False, True, 2.0, 1.0, 2.5, False, math.nan, 0.8, True), "near"),
])
def test_category(args, want):
    assert b.category(*args) == want
    assert want in b.CATEGORIES


def test_blur_meter_is_low_far_from_focus():
    assert b.blur_meter(0.3, 1.0) == 1.0
    assert b.blur_meter(1.0, 1.0) == 1.0
    assert b.blur_meter(2.0, 1.0) == 0.5
    assert b.blur_meter(8.0, 1.0) == 0.125
    assert math.isnan(b.blur_meter(math.nan, 1.0))


def test_report_verdict_defaults_follow_the_binary_flags():
    from pifocus.focus import AnalysisParams, FocusAnalyzer
    from pifocus.frames import Frame
    flat = np.full((240, 320), 120, np.uint8)
    rep = FocusAnalyzer(AnalysisParams(use_cnn=False)).analyze(Frame(luma=flat), track=False)
    assert rep.verdict == "no_detail" and not rep.judgeable
    assert rep.to_dict()["verdict"] == "no_detail"
    assert rep.to_dict()["blur_px"] is None  # Laplacian-only: no blur estimate


@pytest.mark.parametrize("key, value", [("coc_px", 0.1), ("coc_px", 9), ("near_factor", 1.0),
                                        ("analysis_scale", 5), ("coarse_levels", 3), ("motion_fraction", 0)])
def test_bad_blur_params_name_the_key(key, value):
    from pifocus.exc import ConfigError
    from pifocus.focus import AnalysisParams
    with pytest.raises(ConfigError, match=key):
        AnalysisParams(use_cnn=False, **{key: value})


def test_rgb_tells_the_verdicts_story():
    """near -> amber, out_of_focus (with a blur estimate) -> red whatever the meter says."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin
    from pifocus.focus.report import FocusReport
    from pifocus.outputs.rgb import AMBER, GREEN, OFF, RED, FocusRGB

    factory = MockFactory(pin_class=MockPWMPin)
    led = FocusRGB((22, 23, 24), pin_factory=factory)
    try:
        def rep(**kw):
            z = np.zeros((2, 2), np.float32)
            base = dict(frame_index=0, timestamp_ns=0, lens_position=None, roi=(0, 0, 1, 1), grid_px=(0, 0, 8, 8),
                        tile_lap_var=z, tile_floor=z, tile_informative=z > 0, tile_p=z, tile_weight=z + 1,
                        noise_sigma_dn=1.0, sharpness=1.0, p_in_focus=0.1, in_focus_fraction=0.0,
                        informative_fraction=1.0, judgeable=True, raw_in_focus=False, meter=0.95)
            base.update(kw)
            return FocusReport(**base)
        assert led.colour_for(rep(verdict="near", blur_px=2.0)) == AMBER
        assert led.colour_for(rep(verdict="out_of_focus", blur_px=5.0)) == RED   # meter 0.95 notwithstanding
        assert led.colour_for(rep(in_focus=True, verdict="in_focus", blur_px=0.5)) == GREEN
        assert led.colour_for(rep(judgeable=False, verdict="no_detail")) == OFF
        assert led.colour_for(rep()) == AMBER   # binary model: the meter rule as before
    finally:
        led.close()
        factory.reset()
