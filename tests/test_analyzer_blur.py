"""The analyzer's blur path: aggregation, verdict categories, meter cap and coarse levels.

The classifier is injected (the analyzer takes any :class:`~pifocus.classify.TileClassifier`):
a small one whose answer depends only on each tile's mean brightness, so every expected number
below follows from the literal frame.  What the trained blur head itself gets right is the
model tests' business (``tests/test_model_*.py``, ``tools/verdict_bench.py``).
"""

import math

import numpy as np
import pytest

from pifocus.classify import ModelInfo, TileClassifier
from pifocus.classify.heads import OutputLayout, TilePredictions
from pifocus.focus import AnalysisParams, FocusAnalyzer
from pifocus.frames import Frame

LAYOUT = OutputLayout(in_focus=0, blur=1, blur_thresholds_px=(0.5, 1, 2, 4, 8), motion=6)


class BrightnessHeads(TileClassifier):
    """blur_px and p_motion per tile from its mean brightness: ``rule(mean) -> (blur, motion)``."""

    def __init__(self, rule, layout=LAYOUT):
        self.info = ModelInfo(name="brightness-heads", version="test", tile_px=16, threshold=0.5,
                              heads=layout)
        self.rule = rule
        self.calls = []

    def predict_all(self, tiles):
        means = tiles.reshape(len(tiles), -1).mean(axis=1)
        self.calls.append(len(tiles))
        out = [tuple(self.rule(m)) for m in means]
        # (blur, motion) or (blur, motion, p_in_focus); without p the in-focus head agrees
        # with the blur (sharp within 1 px)
        blur = np.asarray([o[0] for o in out], np.float32)
        motion = np.asarray([o[1] for o in out], np.float32)
        p = np.asarray([o[2] if len(o) > 2 else float(o[0] <= 1.0) for o in out], np.float32)
        return TilePredictions(p_in_focus=p, blur_px=blur, p_motion=motion)

    def predict(self, tiles):
        return self.predict_all(tiles).p_in_focus

    def close(self):
        pass


def textured(h=240, w=320, left=90, right=170, seed=3):
    """The sharp procedural focus chart (real structure, not noise), its left half around
    ``left`` DN and its right half around ``right`` DN, with a little sensor noise."""
    from pifocus.sources.simulated import focus_chart
    chart = focus_chart(w, h, seed=seed)                     # 0..1, (h, w)
    base = np.where(np.arange(w)[None, :] < w // 2, left, right)
    noise = np.random.default_rng(seed).normal(0, 1.0, (h, w))
    return np.clip(base + 60 * (chart - 0.5) + noise, 0, 255).astype(np.uint8)


def analyzer(rule, layout=LAYOUT, **kw):
    """The tests below are about the blur rule (``focus_rule = "blur"``) unless they say so."""
    kw.setdefault("roi", (0.0, 0.0, 1.0, 1.0))   # equal weights
    kw.setdefault("focus_rule", "blur")
    return FocusAnalyzer(AnalysisParams(rows=4, cols=4, **kw), classifier=BrightnessHeads(rule, layout))


def test_subject_blur_is_the_on_fraction_quantile_and_decides_the_verdict():
    luma = textured()
    # left half sharp (0.5 px), right half soft (3 px): on_fraction 0.5 -> the median is 0.5
    a = analyzer(lambda m: (0.5, 0.0) if m < 130 else (3.0, 0.0))
    r = a.analyze(Frame(luma=luma), track=False)
    assert r.judgeable and r.blur_px == pytest.approx(0.5) and r.in_focus and r.verdict == "in_focus"
    judged = ~np.isnan(r.tile_blur_px)
    # tiles flat at the analysis scale and blurred one octave coarser vote "not sharp"
    w = r.tile_weight
    share = w[judged & (r.tile_blur_px <= 1.0)].sum() / (w[judged].sum() + w[r.tile_blurred].sum())
    assert r.in_focus_fraction == pytest.approx(share)
    assert 0.3 < r.in_focus_fraction < 0.7
    assert r.tile_blur_px.shape == (4, 4) and np.nanmax(r.tile_blur_px) == pytest.approx(3.0)
    d = r.to_dict()
    assert d["verdict"] == "in_focus" and d["blur_px"] == 0.5 and d["tiles"]["blur_px"][0][0] == 0.5
    # a stricter on_fraction needs the soft half too
    from pifocus.focus import VerdictParams
    b = analyzer(lambda m: (0.5, 0.0) if m < 130 else (3.0, 0.0),
                 verdict=VerdictParams(on_fraction=0.75, off_fraction=0.5))
    r = b.analyze(Frame(luma=luma), track=False)
    assert r.blur_px == pytest.approx(3.0) and not r.in_focus and r.verdict == "out_of_focus"


@pytest.mark.parametrize("blur, verdict, meter", [(0.8, "in_focus", 1.0), (2.0, "near", 0.5),
                                                  (4.0, "out_of_focus", 0.25)])
def test_categories_and_meter_follow_the_blur(blur, verdict, meter):
    r = analyzer(lambda m: (blur, 0.0)).analyze(Frame(luma=textured()), track=False)
    assert r.verdict == verdict and r.in_focus == (verdict == "in_focus")
    assert r.meter == pytest.approx(meter)       # coc / blur caps the meter


def test_coc_px_moves_the_line():
    rule = lambda m: (1.6, 0.0)  # noqa: E731
    assert analyzer(rule).analyze(Frame(luma=textured()), track=False).verdict == "near"
    assert analyzer(rule, coc_px=2.0).analyze(Frame(luma=textured()), track=False).verdict == "in_focus"


def test_motion_blur_is_never_in_focus():
    # still=True: a photo judged for keeps (motion is judged on stills unless motion_check = "always")
    r = analyzer(lambda m: (0.4, 0.9)).analyze(Frame(luma=textured()), track=False, still=True)
    assert r.motion_blur and r.verdict == "motion_blur" and not r.in_focus and not r.raw_in_focus
    # a minority of streaked tiles is not a motion-blurred subject, but those tiles do not count as sharp
    r = analyzer(lambda m: (0.4, 0.9 if m > 130 else 0.0), motion_fraction=0.6).analyze(
        Frame(luma=textured()), track=False, still=True)
    streaked = r.tile_p_motion >= 0.5
    judged = ~np.isnan(r.tile_blur_px)
    assert not r.motion_blur and 0 < streaked.sum() < judged.sum()
    assert r.in_focus_fraction == pytest.approx((judged & ~streaked).sum() / judged.sum())


def test_live_meter_starts_low_on_a_soft_first_frame():
    """The peak-hold meter alone reads 100 % on the first frame of a pass; the blur cap does not."""
    a = analyzer(lambda m: (6.0, 0.0))
    r = a.analyze(Frame(luma=textured()), track=True)
    assert r.meter == pytest.approx(1 / 6) and r.verdict == "out_of_focus"


def test_a_very_soft_subject_is_out_of_focus_not_no_detail():
    """Detail only at a coarse scale: judged again reduced; blur reported in analysis px."""
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = (128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 11.0)).astype(np.uint8)  # no fine texture
    a = analyzer(lambda m: (1.0, 0.0), gate_factor=3.0)
    r = a.analyze(Frame(luma=smooth), track=False)
    assert r.judgeable and r.judged_scale > 1
    assert r.blur_px == pytest.approx(1.0 * r.judged_scale)   # 1 px at the reduced level
    assert r.verdict == "out_of_focus"
    # with coarse levels off the same frame has nothing to judge
    r0 = analyzer(lambda m: (1.0, 0.0), coarse_levels=1).analyze(Frame(luma=smooth), track=False)
    assert not r0.judgeable and r0.verdict == "no_detail" and math.isnan(r0.blur_px)


def test_flat_frame_is_no_detail_at_every_level():
    flat = np.full((480, 640), 120, np.uint8)
    r = analyzer(lambda m: (0.5, 0.0)).analyze(Frame(luma=flat), track=False)
    assert r.verdict == "no_detail" and not r.judgeable


def test_analysis_scale_reports_blur_in_analysis_and_sensor_pixels():
    luma = textured(480, 640)
    r = analyzer(lambda m: (0.8, 0.0), analysis_scale=2).analyze(Frame(luma=luma), track=False)
    # the classifier saw 2x-reduced tiles: 0.8 px there = 1.6 sensor px = 0.8 analysis px
    assert r.analysis_scale == 2 and r.blur_px == pytest.approx(0.8) and r.blur_px_sensor == pytest.approx(1.6)
    assert r.verdict == "in_focus"


def test_classifier_rule_the_in_focus_head_decides_the_blur_grades():
    """The default ``focus_rule``: the in-focus head decides as without the heads; the blur
    head gives blur_px and the near / out_of_focus grade, and does not cap the meter."""
    luma = textured()
    # the head says sharp while the blur estimate is 1.8 px (a lens whose best is softer than coc)
    # (blurred votes off here: this constant head reads 1.8 px at every level, so a tile cut one
    # octave coarser reads 3.6 analysis px, above coc_px, and votes against -- see below)
    r = analyzer(lambda m: (1.8, 0.0, 0.9), focus_rule="classifier", blurred_votes=False).analyze(
        Frame(luma=luma), track=False)
    assert r.in_focus and r.verdict == "in_focus" and r.blur_px == pytest.approx(1.8)
    assert r.in_focus_fraction == pytest.approx(1.0)
    # with a blur head the blurred votes go by its blur under the classifier rule too (the
    # binary output calls a coarse tile in focus up to ~1.5 px there): the in-focus output
    # says 0.9 everywhere, yet the tiles flat here and 3.6 px one octave down vote against
    r = analyzer(lambda m: (1.8, 0.0, 0.9), focus_rule="classifier").analyze(Frame(luma=luma), track=False)
    assert r.tile_blurred.any() and r.in_focus_fraction < 1.0
    # the blur rule calls the same frame near and caps the meter at coc / blur
    r = analyzer(lambda m: (1.8, 0.0, 0.9)).analyze(Frame(luma=luma), track=False)
    assert not r.in_focus and r.verdict == "near" and r.meter == pytest.approx(1 / 1.8)
    # not in focus by the head: near needs the blur within near_factor x coc_px *and* the
    # meter (here capped by the head's in-focus probability over its threshold) at near_meter
    for blur, p_focus, verdict in ((2.0, 0.45, "near"), (4.0, 0.45, "out_of_focus"),
                                   (2.0, 0.1, "out_of_focus")):
        r = analyzer(lambda m: (blur, 0.0, p_focus), focus_rule="classifier").analyze(Frame(luma=luma), track=False)
        assert not r.in_focus and r.verdict == verdict and r.blur_px == pytest.approx(blur), (blur, p_focus)
    # half the tiles sharp by the head: the share is the head's
    r = analyzer(lambda m: (0.5, 0.0, 0.9 if m < 130 else 0.1), focus_rule="classifier").analyze(
        Frame(luma=luma), track=False)
    judged = ~np.isnan(r.tile_blur_px)
    w = r.tile_weight
    # tiles flat at the analysis scale and out of focus one octave coarser vote "not sharp"
    share = w[judged & (r.tile_p >= 0.5)].sum() / (w[judged].sum() + w[r.tile_blurred].sum())
    assert r.in_focus_fraction == pytest.approx(share) and 0.3 < r.in_focus_fraction < 0.7


def test_motion_flags_use_the_models_own_threshold():
    """A tile is motion-blurred at the model's ``motion_threshold`` (tuned on still tiles),
    not at 0.5: p_motion 0.6 is no flag for a model whose threshold is 0.75."""
    strict = OutputLayout(in_focus=0, blur=1, blur_thresholds_px=(0.5, 1, 2, 4, 8), motion=6,
                          motion_threshold=0.75)
    for rule in ("blur", "classifier"):
        r = analyzer(lambda m: (0.4, 0.6), layout=strict, focus_rule=rule).analyze(
            Frame(luma=textured()), track=False, still=True)
        assert not r.motion_blur and r.in_focus and r.verdict == "in_focus"
        r = analyzer(lambda m: (0.4, 0.8), layout=strict, focus_rule=rule).analyze(
            Frame(luma=textured()), track=False, still=True)
        assert r.motion_blur and not r.in_focus and r.verdict == "motion_blur"


def test_focus_rule_is_validated():
    from pifocus.exc import ConfigError
    with pytest.raises(ConfigError, match="focus_rule.*classifier"):
        AnalysisParams(focus_rule="sharpest")
