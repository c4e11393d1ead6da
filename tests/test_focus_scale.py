"""``analysis_scale = "auto"``: the pure functions of :mod:`pifocus.focus.scale` on literal
numbers, the per-ROI memory frame by frame, and the analyzer judging an oversampled frame at
the level where its detail lives."""

import math

import cv2
import numpy as np
import pytest

from pifocus.exc import ConfigError
from pifocus.focus import AnalysisParams, FocusAnalyzer
from pifocus.focus import scale as sc
from pifocus.frames import Frame


def test_octave_ratio_and_detail_scale_on_literal_levels():
    # natural detail at full resolution: the per-pixel Laplacian variance hardly changes per octave
    sharp = {1: 100.0, 2: 120.0, 3: 130.0, 4: 150.0, 6: 160.0, 8: 170.0, 12: 170.0}
    inf = {k: 40 for k in sharp}
    assert sc.octave_ratio(sharp, 1) == pytest.approx(1.2)
    assert sc.detail_scale(sharp, inf) == 1
    # oversampled 2x: full resolution holds 1/8 of the half-size detail, half size is natural
    over = {1: 15.0, 2: 120.0, 3: 200.0, 4: 150.0, 6: 160.0, 8: 170.0, 12: 170.0}
    assert sc.octave_ratio(over, 1) == pytest.approx(8.0)
    assert sc.detail_scale(over, inf) == 2
    # ... but a level needs textured tiles to qualify
    few = dict(inf)
    few[2] = 1
    assert sc.detail_scale(over, few) == 3
    assert sc.detail_scale(over, few, scales=(1, 2)) is None
    # a reduced level gets REDUCED_ALLOWANCE (bicubic-then-area keeps less of the top octave)
    assert sc.detail_scale({1: 10.0, 2: 50.0, 4: 240.0}, {1: 9, 2: 9}, ratio=4.0, scales=(1, 2)) == 2
    assert sc.detail_scale({1: 10.0, 2: 50.0, 4: 260.0}, {1: 9, 2: 9}, ratio=4.0, scales=(1, 2)) is None
    # far from focus: the ratio keeps growing octave after octave -> no level
    soft = {1: 1.0, 2: 10.0, 3: 40.0, 4: 100.0, 6: 600.0, 8: 1000.0, 12: 9000.0}
    assert sc.detail_scale(soft, inf) is None
    # no detail at a level, or its octave not measured: NaN
    assert math.isnan(sc.octave_ratio({1: 0.0, 2: 5.0}, 1))
    assert math.isnan(sc.octave_ratio({1: 3.0}, 1))
    assert sc.levels_needed((1, 2, 3)) == (1, 2, 3, 4, 6)


def test_closeness_and_wide_sharpness():
    assert sc.closeness(1.0) == 1.0 and sc.closeness(4.0) == 1.0
    assert sc.closeness(8.0) == pytest.approx(0.5)         # half-way in log between 4 and 16
    assert sc.closeness(16.0) == 0.0 and sc.closeness(40.0) == 0.0
    assert math.isnan(sc.closeness(math.nan))
    assert sc.wide_sharpness({1: 100.0, 4: 1.0}) == pytest.approx(10.0)
    assert sc.wide_sharpness({1: 0.0}) == pytest.approx(1e-3)


def test_scale_memory_adopts_the_sharpest_frame_once_passed():
    mem = sc.ScaleMemory(scene_change=0.25, confirm_drop=0.8)
    means = np.full((2, 2), 100.0)
    key = ("shape", "roi")
    # approaching focus: coarser estimates from softer frames are never adopted for themselves
    assert mem.update(key, 3, 10.0, means) == 1
    assert mem.update(key, None, 5.0, means) == 3        # 10 -> 5: passed the candidate (est 3)
    assert mem.update(key, 2, 50.0, means) == 3          # a sharper frame: the new candidate
    assert mem.update(key, 1, 45.0, means) == 3          # not below 0.8 x 50 yet
    assert mem.update(key, 1, 30.0, means) == 2          # passed: its estimate (2) holds now
    # a scene cut (brightness) or a new ROI starts over
    assert mem.update(key, 4, 1.0, means * 2) == 1
    assert mem.update(("other",), 4, 1.0, means * 2) == 1 and mem.scale is None


def test_scale_memory_holds_through_the_gradual_brightness_change_of_a_rack():
    """Racking through focus changes the tile brightness gradually (the bokeh of a bright
    plane swelling): beetle's region enlarged 3x drifted more than ``scene_change`` from the
    sharpest frame's brightness by frame 22, the memory started over at full resolution --
    where the 3x frames read no detail -- and the pull back through focus never lit.  The
    reference follows gradual change, as the peak-hold meter's does; a cut still resets."""
    mem = sc.ScaleMemory(scene_change=0.25, confirm_drop=0.8)
    key = ("shape", "roi")
    means = np.full((2, 2), 100.0)
    assert mem.update(key, 3, 50.0, means) == 1
    assert mem.update(key, 3, 20.0, means) == 3              # passed the peak: adopted
    for k in range(1, 16):                                    # +4 % a frame, +80 % in all
        assert mem.update(key, None, 20.0, means * (1 + 0.04 * k)) == 3, k
    assert mem.update(key, None, 20.0, means * 1.6 * 2) == 1  # a cut: brightness doubled at once
    assert mem.scale is None


@pytest.mark.parametrize("value", ["Auto", 0, 5, 2.5, True, [2]])
def test_bad_analysis_scale_is_a_config_error(value):
    with pytest.raises(ConfigError, match="analysis_scale"):
        AnalysisParams(use_cnn=False, analysis_scale=value)


def test_analysis_scale_values_and_config():
    assert AnalysisParams(use_cnn=False).analysis_scale == "auto"
    assert AnalysisParams(use_cnn=False, analysis_scale=2.0).analysis_scale == 2
    from pifocus.config import build
    assert build(AnalysisParams, {"analysis_scale": 3, "use_cnn": False}, "analysis").analysis_scale == 3
    assert build(AnalysisParams, {"analysis_scale": "auto", "use_cnn": False}, "analysis").analysis_scale == "auto"
    with pytest.raises(ConfigError, match="analysis_scale"):
        build(AnalysisParams, {"analysis_scale": [1], "use_cnn": False}, "analysis")
    with pytest.raises(ConfigError, match="auto_ratio"):
        AnalysisParams(use_cnn=False, auto_ratio=1.0)


def _pull(luma_at, n=9):
    """A focus pull: frame ``k`` blurred by a Gaussian growing with ``|k - n//2|``."""
    return [luma_at(abs(k - n // 2)) for k in range(n)]


def test_an_upsampled_pull_is_judged_at_the_level_where_its_detail_lives():
    from pifocus.sources.simulated import focus_chart
    chart = (40 + 170 * focus_chart(320, 240, seed=5)).astype(np.float32)
    rng = np.random.default_rng(0)

    def frame(dist, up):
        g = cv2.GaussianBlur(chart, (0, 0), 0.3 + 1.2 * dist) if dist else chart
        g = np.clip(g + rng.normal(0, 1.0, g.shape), 0, 255).astype(np.uint8)
        if up > 1:
            g = cv2.resize(g, (g.shape[1] * up, g.shape[0] * up), interpolation=cv2.INTER_CUBIC)
        return g

    for up, expect in ((1, 1), (2, 2)):
        an = FocusAnalyzer(AnalysisParams(use_cnn=False, roi=(0.2, 0.2, 0.6, 0.6)))
        scales = []
        for k, g in enumerate(_pull(lambda d: frame(d, up))):
            r = an.analyze(Frame(luma=g, index=k), track=True)
            scales.append(r.analysis_scale)
            assert r.blur_px_sensor == r.blur_px * r.analysis_scale or math.isnan(r.blur_px)
        # full resolution until the pass has gone through focus (frame 4), the rig's level after
        assert scales[:5] == [1] * 5 and scales[-1] == expect, (up, scales)
        d = r.to_dict()
        assert d["analysis_scale"] == expect and d["judged_scale"] >= expect


def test_a_defocused_subject_with_structure_is_out_of_focus_not_no_detail():
    """Without the blur head: detail only on a reduced copy -> judged there, out of focus,
    meter capped by the reduction (never 100 % on a first soft frame)."""
    from pifocus.sources.simulated import focus_chart
    chart = (40 + 170 * focus_chart(640, 480, seed=2)).astype(np.float32)
    soft = np.clip(cv2.GaussianBlur(chart, (0, 0), 6.0) + np.random.default_rng(1).normal(0, 2.0, chart.shape),
                   0, 255).astype(np.uint8)
    r = FocusAnalyzer(AnalysisParams(use_cnn=False)).analyze(Frame(luma=soft), track=True)
    assert r.judgeable and r.verdict == "out_of_focus" and not r.in_focus
    assert r.judged_scale > r.analysis_scale and r.meter <= r.analysis_scale / r.judged_scale + 1e-9
    flat = np.clip(128 + np.random.default_rng(2).normal(0, 2.0, (480, 640)), 0, 255).astype(np.uint8)
    assert FocusAnalyzer(AnalysisParams(use_cnn=False)).analyze(Frame(luma=flat)).verdict == "no_detail"


def test_a_level_still_oversampled_is_passed_over():
    """Level 2 of a 3x-enlarged frame qualifies by its own ratio (4 < 5) but reads twice the
    next candidate's (level 3: 2.0, natural): the detail lives at 3."""
    inf = {s: 9 for s in (1, 2, 3, 4, 6, 8, 12)}
    three_x = {1: 1.0, 2: 10.0, 4: 40.0, 3: 20.0, 6: 40.0, 8: 64.0, 12: 40.0}
    assert sc.octave_ratio(three_x, 2) == pytest.approx(4.0) and sc.octave_ratio(three_x, 3) == pytest.approx(2.0)
    assert sc.detail_scale(three_x, inf) == 3
    assert sc.detail_scale(three_x, inf, settle=0) == 2          # the test off: finest qualifying
    # natural detail keeps its ratio from level to level (2.0 -> 1.5): level 2 stays
    natural = {**three_x, 4: 20.0, 3: 20.0, 6: 30.0}
    assert sc.octave_ratio(natural, 2) == pytest.approx(2.0) and sc.detail_scale(natural, inf) == 2
    # a level whose own ratio is natural (the simulated chart: 1.95 at 1, 1.14 at 2) stays
    chart = {1: 100.0, 2: 195.0, 4: 222.0, 3: 150.0, 6: 110.0, 8: 65.0, 12: 50.0}
    assert sc.octave_ratio(chart, 1) == pytest.approx(1.95) and sc.detail_scale(chart, inf) == 1
    assert sc.detail_scale(chart, inf, settle=1.5) == 1            # below OVERSAMPLED_MIN (2.0)
    # a coarser ratio below 1 is noise, not natural detail: no evidence against level 2
    # (neither the next candidate's nor the octave's)
    noisy = {**three_x, 6: 10.0, 8: 30.0}
    assert sc.octave_ratio(noisy, 3) == pytest.approx(0.5) and sc.octave_ratio(noisy, 4) == pytest.approx(0.75)
    assert sc.detail_scale(noisy, inf) == 2
    # ... while a natural octave (level 4 at 1.6) is: 4.0 > 1.8 x 1.6
    assert sc.detail_scale({**three_x, 6: 10.0}, inf) == 4


def test_a_level_textured_in_a_few_tiles_only_is_not_where_the_detail_lives():
    """The clear tube's region enlarged 2x, its sharpest frame as measured: level 2 qualifies
    by its ratio (4.04 < 5) but only 11 of the tiles are textured there against 39 one octave
    coarser; natively its counterpart (level 1) has none and the frames are judged at 3.  So
    the 2x copy belongs at 6 -- it was judged at 2 and its live pull never lit."""
    two_x = _from_ratios({1: 13.07, 2: 4.04, 3: 3.66, 4: 2.80, 6: 1.63})
    inf_2x = {1: 0, 2: 11, 3: 30, 4: 39, 6: 41, 8: 42, 12: 39}
    assert sc.detail_scale(two_x, inf_2x) == 6
    native = _from_ratios({1: 3.30, 2: 2.66, 3: 1.60, 4: 0.98, 6: 1.23})
    assert sc.detail_scale(native, {1: 0, 2: 38, 3: 43, 4: 42, 6: 40, 8: 28, 12: 0}) == 3
    # half the coarser level's textured tiles is enough
    assert sc.detail_scale(two_x, {**inf_2x, 2: 20}) == 2


#: Octave ratios measured on wicker_balls_phone's frame 6 (its region native, enlarged 2x and
#: 3x) and the level each belongs at, with variations: an octave that is noise (< 1) or has no
#: textured tiles says nothing.
OCTAVE_CASES = [
    ("2x", {1: 8.96, 2: 3.03, 3: 4.07, 4: 1.21, 6: 1.40}, {}, 4),
    ("native", {1: 2.34, 2: 1.12, 3: 1.35, 4: 4.01, 6: 3.23}, {}, 2),
    ("3x: 2 gives way to 3, 3 to its octave 6", {1: 15.95, 2: 4.57, 3: 3.12, 4: 2.72, 6: 1.22}, {}, 6),
    ("2x, octave noise", {1: 8.96, 2: 3.03, 3: 4.07, 4: 0.8, 6: 1.40}, {}, 2),
    ("2x, octave untextured", {1: 8.96, 2: 3.03, 3: 4.07, 4: 1.21, 6: 1.40}, {4: 0}, 2),
]


@pytest.mark.parametrize("case, ratios, textured, level", OCTAVE_CASES)
def test_a_level_oversampled_against_its_octave_is_passed_over_to_it(case, ratios, textured, level):
    """Wicker's region enlarged 2x: level 2 (the original's pixel) qualifies (3.03 < 5) and
    reads less than 1.41x the next candidate's (level 3, 1.5x the original's pixel: 4.07), but
    2.5x the octave's (level 4, the original's level 2: 1.21).  The original reads 2.34 at 1
    and 1.12 at 2 and is judged at 2, so the enlarged copy belongs at 4 -- before the octave
    test it was judged at 2, and its live pull never lit.  Level 3, between the two, is passed
    over with level 2."""
    inf = {**{s: 20 for s in (1, 2, 3, 4, 6, 8, 12)}, **textured}
    assert sc.detail_scale(_from_ratios(ratios), inf) == level, case


def test_reduce_luma_is_the_block_mean_even_when_the_size_does_not_divide():
    """1520 rows reduced 3x: 506 rows, each the mean of its own 3 input rows (OpenCV's
    INTER_AREA on the uncut frame spreads 1520 over 506 and drifts off the blocks)."""
    from pifocus.focus.levels import reduce_luma
    rng = np.random.default_rng(1)
    g = rng.integers(0, 256, (47, 31), dtype=np.uint8)     # neither divides by 3
    r = reduce_luma(g, 3)
    assert r.shape == (15, 10)
    blocks = g[:45, :30].reshape(15, 3, 10, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(r - blocks).max() <= 0.5
    assert reduce_luma(g, 1) is g and reduce_luma(g, 2).shape == (23, 15)


def _from_ratios(ratios):
    """Per-level sharpness whose octave ratios (level -> ratio) are ``ratios``."""
    sharp = {1: 1.0, 3: 10.0}
    for s in (1, 2, 4, 3, 6):          # each level's octave from the level itself
        sharp[2 * s] = sharp[s] * ratios[s]
    return sharp


def test_a_smaller_step_to_the_next_candidate_needs_a_smaller_drop():
    """The settle test is for one octave; from 2 to 3 (1.5x) and 3 to 4 (1.33x) an oversampled
    level reads less above its neighbour.  Ratios measured on the shared sweeps' sharpest
    frames: ant 3x (level 2: 3.96 vs 2.33 at 3, 1.70x) and pcb-depthmap 2x (level 3: 3.14 vs
    1.98 at 4, 1.59x) were judged at 2 and 3, finer than their native level (1 and 2)."""
    inf = {s: 9 for s in (1, 2, 3, 4, 6, 8, 12)}
    ant_3x = _from_ratios({1: 10.67, 2: 3.96, 3: 2.33, 4: 1.75, 6: 0.79})
    assert sc.octave_ratio(ant_3x, 2) == pytest.approx(3.96) and sc.octave_ratio(ant_3x, 4) == pytest.approx(1.75)
    # not 2 (still 1.5x oversampled); it settles at 4: from 3 (2.33) to 4 (1.75) is 1.33x, just
    # above the 1.28x a third of an octave allows -- its verdict is the native one at either
    assert sc.detail_scale(ant_3x, inf) == 4
    pcb_2x = _from_ratios({1: 9.75, 2: 6.07, 3: 3.14, 4: 1.98, 6: 1.73})
    assert sc.detail_scale(pcb_2x, inf) == 4
    # canon 3x: level 3 (2.0) over level 4 (1.67) is natural detail, 1.2x: it stays at 3
    canon_3x = _from_ratios({1: 9.88, 2: 4.33, 3: 2.0, 4: 1.67, 6: 1.1})
    assert sc.detail_scale(canon_3x, inf) == 3
    # a native frame at its Nyquist limit (ant: 1.74 at full resolution) is never passed over
    assert sc.detail_scale(_from_ratios({1: 1.74, 2: 0.7, 3: 0.72, 4: 0.89, 6: 0.97}), inf) == 1


@pytest.mark.parametrize("factor", [3, 5])
def test_reduce_luma_odd_factor_is_inter_area_to_the_dn(factor):
    """The box-filter path of odd factors gives OpenCV's INTER_AREA values exactly (its
    rounding too), on noise (every rounding case) and on a literal ramp."""
    import cv2

    from pifocus.focus.levels import reduce_luma
    rng = np.random.default_rng(factor)
    for g in (rng.integers(0, 256, (61, 47), dtype=np.uint8),
              np.tile(np.arange(0, 240, 8, dtype=np.uint8), (30, 1))):
        h, w = g.shape
        ref = cv2.resize(g[:h // factor * factor, :w // factor * factor], (w // factor, h // factor),
                         interpolation=cv2.INTER_AREA)
        r = reduce_luma(g, factor)
        assert r.shape == ref.shape and r.flags.c_contiguous
        assert np.array_equal(r, ref)
    ramp = np.tile(np.arange(9, dtype=np.uint8) * 10, (3, 1))   # 0 10 .. 80: blocks 10, 40, 70
    assert reduce_luma(ramp, 3).tolist() == [[10, 40, 70]]


def test_coarse_levels_reuse_the_pyramid_not_a_second_reduction(monkeypatch):
    """A strongly defocused frame judged on reduced copies ("auto"): the copies are the
    pyramid's levels, so the full frame is reduced once per level, not again by the coarse
    loop (it did so for 2x and 4x: 2.2 ms of a 2028 x 1520 frame)."""
    from pifocus.focus import AnalysisParams, FocusAnalyzer
    from pifocus.focus import levels as lv
    from pifocus.frames import Frame
    from pifocus.sources.simulated import defocus, focus_chart, sensor
    g = sensor(defocus(focus_chart(480, 360, seed=3), 9.0), np.random.default_rng(3))
    full_reductions = []
    real = lv.reduce_luma

    def counting(luma, factor):
        if luma.shape == g.shape and factor > 1:
            full_reductions.append(factor)
        return real(luma, factor)

    monkeypatch.setattr(lv, "reduce_luma", counting)
    an = FocusAnalyzer(AnalysisParams(use_cnn=False))
    rep = an.analyze(Frame(luma=g, index=0), track=False)
    assert rep.judged_scale > rep.analysis_scale, "the frame should have gone to a reduced copy"
    assert rep.verdict == "out_of_focus"
    assert len(full_reductions) == len(set(full_reductions)), full_reductions


def test_wide_sharpness_keeps_only_the_levels_the_roi_fills():
    """With the ROI's short side, levels leaving fewer than MIN_WIDE_SIDE_PX (24) of it are
    left out of the geometric mean: beetle 3x, frame 12 (the tip) against 27 (the far plane's
    band), per level -- the 12x level (17 px of a 210-px ROI) made 27 the sharpest."""
    tip = {1: 13.3, 2: 52.0, 3: 313.5, 4: 524.6, 6: 530.8, 8: 491.9, 12: 531.9}
    band = {1: 6.4, 2: 88.0, 3: 175.2, 4: 305.8, 6: 693.9, 8: 929.8, 12: 1330.5}
    assert sc.wide_sharpness(band) > sc.wide_sharpness(tip)                 # every level
    assert sc.wide_sharpness(tip, 210) > sc.wide_sharpness(band, 210)       # 1..8 only
    assert sc.wide_sharpness({1: 100.0, 4: 1.0}, 47) == pytest.approx(100.0)   # 47 // 4 < 24
    assert sc.wide_sharpness({1: 100.0, 4: 1.0}, 96) == pytest.approx(10.0)


def test_a_level_whose_next_candidate_has_no_detail_does_not_qualify():
    """Beetle 3x, frame 12 (octave ratios 3.9 at 1, 10.1 at 2, 1.7 at 3): level 1 passes the
    ratio bar by a hair, but level 2 -- one octave coarser -- holds no detail of its own, so
    level 1's structure is no natural spectrum (interpolation and JPEG artefacts); the
    detail lives at 3.  Without a coarser qualifying level the finest one stays."""
    inf = {f: 20 for f in (1, 2, 3, 4, 6, 8, 12)}
    three_x = {1: 13.3, 2: 52.0, 3: 313.5, 4: 524.6, 6: 530.8, 8: 491.9, 12: 531.9}
    assert sc.octave_ratio(three_x, 1) < 4 and sc.octave_ratio(three_x, 2) > 5
    assert sc.detail_scale(three_x, inf) == 3
    # natural detail at level 1 (ratios ~1 on): level 1
    natural = {1: 100.0, 2: 120.0, 3: 130.0, 4: 140.0, 6: 150.0, 8: 160.0, 12: 170.0}
    assert sc.detail_scale(natural, inf) == 1
    # nothing coarser qualifies either (a defocused frame beyond level 1): level 1 stays
    soft = {1: 13.3, 2: 52.0, 3: 600.0, 4: 6000.0, 6: 60000.0, 8: 6e5, 12: 6e6}
    assert sc.detail_scale(soft, inf) == 1
