"""``[analysis] blurred_votes``: tiles too flat to judge at the analysis scale whose structure
one octave coarser stands above the analysis level's texture bar, and which the classifier
calls out of focus there, vote *against* the in-focus share.

Without it a defocused subject simply drops out of the vote (its tiles are "too flat"), and
whatever else in the region is sharp decides: the real wicker_balls_phone sweep lit the LED
on a stitched background seam while the wicker filled most of the region, blurred.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from pifocus.classify import ModelInfo, TileClassifier
from pifocus.focus import AnalysisParams, FocusAnalyzer
from pifocus.frames import Frame
from pifocus.sources.simulated import defocus, focus_chart
from constant_classifier import ConstantClassifier

ROOT = Path(__file__).resolve().parents[1]


def partly_blurred(radius_px: float, h: int = 240, w: int = 320, seed: int = 5) -> np.ndarray:
    """A dead-leaves scene (occluding discs: natural-image edges), all but its left third
    defocused by a disk of ``radius_px``, with a little sensor noise: a sharp plane beside a
    larger blurred subject with real structure."""
    from pifocus.focus.blurest import dead_leaves
    scene = (20 + 200 * dead_leaves(max(h, w), seed)[:h, :w]).astype(np.float32)
    out = scene.copy()
    if radius_px > 0:
        out[:, w // 3:] = defocus(scene, radius_px)[:, w // 3:]
    noise = np.random.default_rng(seed).normal(0, 1.0, (h, w))
    return np.clip(out + noise, 0, 255).astype(np.uint8)


def judge(luma, **kw):
    an = FocusAnalyzer(AnalysisParams(roi=(0.0, 0.0, 1.0, 1.0), analysis_scale=1, **kw))
    try:
        return an.analyze(Frame(luma=luma), track=False, still=True)
    finally:
        an.close()


@pytest.mark.parametrize("seed", [5, 6])
@pytest.mark.parametrize("use_cnn", [True, False])
def test_a_blurred_subject_votes_against_a_sharp_plane_beside_it(use_cnn, seed):
    luma = partly_blurred(4.0, seed=seed)
    cols = np.arange(8)
    r = judge(luma, use_cnn=use_cnn)
    assert r.tile_blurred is not None and r.tile_blurred.sum() >= 16
    # only the defocused part holds blurred tiles, and none of them voted as judged tiles
    assert not r.tile_blurred[:, cols < 2].any()
    assert not (r.tile_blurred & r.tile_informative).any()
    w = r.tile_weight
    judged = r.tile_informative & ~np.isnan(r.tile_p)
    sharp = judged & (r.tile_p >= (judge_threshold() if use_cnn else 0.5))
    expected = w[sharp].sum() / (w[judged].sum() + w[r.tile_blurred].sum())
    assert r.in_focus_fraction == pytest.approx(expected, abs=1e-6)
    # the earlier rule left the blurred half out: the sharp half alone decided
    old = judge(luma, use_cnn=use_cnn, blurred_votes=False)
    assert not old.tile_blurred.any()
    assert old.in_focus_fraction > r.in_focus_fraction + 0.2
    assert old.in_focus and not r.in_focus


@pytest.mark.parametrize("seed", [5, 6])
@pytest.mark.parametrize("use_cnn", [True, False])
def test_a_subject_blurred_past_one_octave_votes_from_two_octaves_coarser(use_cnn, seed):
    """Blurred by 8 px the subject is flat at the analysis scale and one octave coarser too
    (no votes there: the sharp third alone lit the frame, as ant's leg did from frame 9 on);
    two octaves coarser its structure is back and votes against the sharp plane
    (``blurred_octaves = 2``, the default)."""
    luma = partly_blurred(8.0, seed=seed)
    one = judge(luma, use_cnn=use_cnn, blurred_octaves=1)
    assert not one.tile_blurred.any() and one.in_focus
    two = judge(luma, use_cnn=use_cnn)
    assert two.tile_blurred.sum() >= 16 and not two.tile_blurred[:, np.arange(8) < 2].any()
    assert not (two.tile_blurred & two.tile_informative).any()
    assert two.in_focus_fraction < one.in_focus_fraction - 0.3 and not two.in_focus
    # blurred by 4 px (one octave suffices) the one-octave votes stand under the default
    near = partly_blurred(4.0, seed=seed)
    one, two = judge(near, use_cnn=use_cnn, blurred_octaves=1), judge(near, use_cnn=use_cnn)
    assert one.tile_blurred.sum() >= 16 and not (one.tile_blurred & ~two.tile_blurred).any()


def test_a_tile_judged_one_octave_coarser_is_not_judged_again_two_octaves_coarser():
    """Structured one octave coarser and called sharp there (smooth content), a tile stays out
    of the vote: the two-octave pass takes only the tiles flat at both finer levels, so it
    sends none of them to the classifier again."""
    for p in (0.9, 0.1):
        clf = ConstantClassifier(p)
        an = FocusAnalyzer(AnalysisParams(roi=(0.0, 0.0, 1.0, 1.0), analysis_scale=1, max_cnn_tiles=500),
                           classifier=clf)      # a budget that does not end the passes early
        r = an.analyze(Frame(luma=partly_blurred(4.0)), track=False)
        assert len(clf.calls) == 2 and clf.calls[1] >= 16, clf.calls     # the tiles, the one-octave votes
        assert r.tile_blurred.any() == (p < 0.5)


def test_a_fixed_scale_reduces_the_frame_again_only_when_votes_are_possible(monkeypatch):
    """At a fixed analysis scale the 4x copy is not in a pyramid: it is made only when a tile
    is still free to vote (a fine pattern textured in every tile has none), not on every
    frame."""
    from pifocus.focus import levels
    seen = []
    real = levels.LevelJudge.prefilter

    def spy(self, luma, factor, track):
        seen.append(factor)
        return real(self, luma, factor, track)
    monkeypatch.setattr(levels.LevelJudge, "prefilter", spy)
    yy, xx = np.mgrid[0:240, 0:320]
    fine = np.clip(128 + 60 * np.sin(xx / 1.3) * np.sin(yy / 1.7)
                   + np.random.default_rng(1).normal(0, 1.0, (240, 320)), 0, 255).astype(np.uint8)
    for luma, four_x in ((fine, False), (partly_blurred(8.0), True)):
        seen.clear()
        judge(luma, use_cnn=False)
        assert (4 in seen) == four_x, seen
    # free tiles but the CNN budget spent on the judged ones: no votes, no 4x copy
    for cap, four_x in ((18, False), (48, True)):
        seen.clear()
        an = FocusAnalyzer(AnalysisParams(roi=(0.0, 0.0, 1.0, 1.0), analysis_scale=1, max_cnn_tiles=cap),
                           classifier=ConstantClassifier(0.1))
        r = an.analyze(Frame(luma=partly_blurred(8.0)), track=False)
        assert int(r.tile_informative.sum()) == 18 and (4 in seen) == four_x, (cap, seen)


@pytest.mark.parametrize("value", [0, 3, True, 1.5, 2.0])
def test_bad_blurred_octaves_is_a_config_error(value):
    from pifocus.exc import ConfigError
    with pytest.raises(ConfigError, match="blurred_octaves"):
        AnalysisParams(use_cnn=False, blurred_octaves=value)


def judge_threshold() -> float:
    an = FocusAnalyzer(AnalysisParams())
    try:
        return an.threshold
    finally:
        an.close()


def sharp_chart(h: int = 240, w: int = 320, seed: int = 5) -> np.ndarray:
    chart = (40 + 170 * focus_chart(w, h, seed=seed)).astype(np.float32)
    return np.clip(chart + np.random.default_rng(seed).normal(0, 1.0, (h, w)), 0, 255).astype(np.uint8)


def test_a_sharp_frame_has_no_blurred_tiles():
    r = judge(sharp_chart())
    assert r.in_focus and r.in_focus_fraction > 0.9
    assert not r.tile_blurred.any()


def test_flat_areas_are_not_blurred_votes():
    # the chart's left half beside a flat grey field: the field has no structure at any level
    luma = sharp_chart()
    luma[:, 160:] = np.clip(128 + np.random.default_rng(1).normal(0, 1.0, (240, 160)), 0, 255).astype(np.uint8)
    r = judge(luma)
    assert not r.tile_blurred.any()
    assert r.in_focus


def test_a_tile_sharp_one_octave_coarser_stays_out_of_the_vote():
    # the candidates are classified one octave coarser: called sharp there they are left
    # out (the share is the judged tiles' own), called soft they vote against it
    luma = partly_blurred(4.0)
    reports = {}
    for p in (0.9, 0.1):
        an = FocusAnalyzer(AnalysisParams(roi=(0.0, 0.0, 1.0, 1.0), analysis_scale=1), classifier=ConstantClassifier(p))
        reports[p] = an.analyze(Frame(luma=luma), track=False)
    assert not reports[0.9].tile_blurred.any() and reports[0.9].in_focus_fraction == pytest.approx(1.0)
    assert reports[0.1].tile_blurred.sum() >= 16


@pytest.mark.parametrize("scale", [2, 4])
def test_blurred_tiles_are_where_the_blurred_structure_is(scale):
    """At analysis scales above 1 the grid one octave coarser is not the analysis grid
    halved (cells snap to whole blocks, each grid is centred on its own level): the votes
    are measured on the analysis grid halved, so a flat tile never borrows a blurred
    neighbour's structure.  A flat grey frame with one blurred band of texture (and a sharp
    strip at the left edge, so that the frame is judged at the analysis scale)."""
    from pifocus.focus.blurest import dead_leaves
    h, w = 990, 1332
    luma = np.full((h, w), 128.0, np.float32)
    x0, x1 = int(w * 0.3), int(w * 0.53)
    band = (20 + 200 * dead_leaves(w, 3)[:h, :w]).astype(np.float32)
    luma[:, x0:x1] = defocus(band, 4.0 * scale)[:, x0:x1]
    xs = int(w * 0.12)
    luma[:, :xs] = band[:, :xs]                      # a sharp strip: the frame is judged here
    luma = np.clip(luma + np.random.default_rng(3).normal(0, 1.0, (h, w)), 0, 255).astype(np.uint8)
    # every tile soft: the blurred tiles are the candidates themselves
    an = FocusAnalyzer(AnalysisParams(roi=(0.0, 0.0, 1.0, 1.0), analysis_scale=scale), classifier=ConstantClassifier(0.1))
    r = an.analyze(Frame(luma=luma), track=False)
    gx, gy, cw, ch = r.grid_px
    assert r.tile_blurred.any()
    for c in range(r.cols):
        left, right = gx + c * cw, gx + (c + 1) * cw
        if (right <= x0 and left >= xs) or left >= x1:   # the tile lies wholly on the flat grey
            assert not r.tile_blurred[:, c].any(), (c, r.tile_blurred.astype(int))


def test_the_votes_stay_within_the_cnn_budget():
    for cap in (8, 20, 48):
        clf = ConstantClassifier(0.1)
        an = FocusAnalyzer(AnalysisParams(roi=(0.0, 0.0, 1.0, 1.0), analysis_scale=1, max_cnn_tiles=cap),
                           classifier=clf)
        r = an.analyze(Frame(luma=partly_blurred(4.0)), track=False)
        assert sum(clf.calls) <= cap and r.tiles_to_cnn == sum(clf.calls), (cap, clf.calls)
        assert r.tile_blurred.any() or cap == sum(clf.calls[:1])


def test_blurred_tiles_are_in_the_json_and_the_heat_map():
    from pifocus.focus.heatmap import SOFT_BGR, render_heatmap
    luma = partly_blurred(4.0)
    r = judge(luma)
    d = r.to_dict()
    assert np.array_equal(np.asarray(d["tiles"]["blurred"]), r.tile_blurred)
    json.dumps(d)
    img = render_heatmap(luma, r, name="t")
    plain = render_heatmap(luma, judge(luma, blurred_votes=False), name="t")
    # the blurred tiles are hatched in the soft colour: more of it than without them
    def soft(im):
        return int(np.all(np.abs(im.astype(int) - np.array(SOFT_BGR)) < 90, axis=2).sum())
    assert soft(img) > soft(plain)


def test_blurred_votes_is_validated():
    from pifocus.config import build
    from pifocus.exc import ConfigError
    with pytest.raises(ConfigError, match="blurred_votes"):
        AnalysisParams(use_cnn=False, blurred_votes="yes")
    with pytest.raises(ConfigError, match="blurred_votes"):
        build(AnalysisParams, {"blurred_votes": 1, "use_cnn": False}, "analysis")
    assert build(AnalysisParams, {"blurred_votes": False, "use_cnn": False}, "analysis").blurred_votes is False


# -- the real sweep that needed it ---------------------------------------------------------

def wicker(shared_data):
    import sys
    sys.path.insert(0, str(ROOT / "tools"))
    import verdict_bench
    truth = verdict_bench.load_truth()
    lumas = verdict_bench.sweep_luma(shared_data / "focus-sweeps" / "wicker_balls_phone")
    return truth, lumas


def test_the_wicker_seam_no_longer_lights_a_still(shared_data):
    """Frame 7 (file 008): the background seam at the region's upper right is crisp, the
    wicker that fills the rest is soft.  As a still it was called in focus (15 of 48 tiles
    judged, all on the seam); the blurred wicker now votes, and 023-025 stay in focus."""
    truth, lumas = wicker(shared_data)
    roi = tuple(truth["region"])
    an = FocusAnalyzer(AnalysisParams(roi=roi))
    old = FocusAnalyzer(AnalysisParams(roi=roi, blurred_votes=False))
    try:
        seam = an.analyze(Frame(luma=lumas[7]), track=False, still=True)
        assert old.analyze(Frame(luma=lumas[7]), track=False, still=True).in_focus
        assert not seam.in_focus and seam.tile_blurred.sum() >= 8
        for i in (22, 23, 24):
            assert an.analyze(Frame(luma=lumas[i]), track=False, still=True).in_focus, i
    finally:
        an.close()
        old.close()


class ConstantHeads(TileClassifier):
    """A model with the heads: every tile ``blur_px`` px (at the level it is cut from),
    no motion, in focus when within 1 px."""

    def __init__(self, blur_px):
        from pifocus.classify.heads import OutputLayout
        layout = OutputLayout(in_focus=0, blur=1, blur_thresholds_px=(0.5, 1, 2, 4, 8), motion=6)
        self.info = ModelInfo(name="constant-heads", version="test", tile_px=16, threshold=0.5, heads=layout)
        self.blur_px = blur_px

    def predict_all(self, tiles):
        from pifocus.classify.heads import TilePredictions
        n = len(tiles)
        return TilePredictions(p_in_focus=np.full(n, float(self.blur_px <= 1.0), np.float32),
                               blur_px=np.full(n, self.blur_px, np.float32), p_motion=np.zeros(n, np.float32))

    def predict(self, tiles):
        return self.predict_all(tiles).p_in_focus

    def close(self):
        pass


def test_with_the_blur_rule_blurred_tiles_vote_with_their_blur():
    """Every tile 0.6 px where it is cut: judged tiles are sharp, tiles cut one octave
    coarser read 0.6 px there = 1.2 analysis px, above coc_px: they vote against the share
    and with their blur in the subject's blur_px, so a frame the blurred tiles keep out of
    focus does not read 100 % and "near" from the sharp tiles' blur alone."""
    an = FocusAnalyzer(AnalysisParams(roi=(0.0, 0.0, 1.0, 1.0), analysis_scale=1, focus_rule="blur"),
                       classifier=ConstantHeads(0.6))
    r = an.analyze(Frame(luma=partly_blurred(4.0)), track=False)
    w = r.tile_weight
    judged = r.tile_informative & ~np.isnan(r.tile_p)
    assert r.tile_blurred.any()
    assert r.in_focus_fraction == pytest.approx(w[judged].sum() / (w[judged].sum() + w[r.tile_blurred].sum()))
    # most of the vote is blurred: the subject reads 1.2 px, near, meter coc / blur
    assert w[r.tile_blurred].sum() > w[judged].sum()
    assert not r.in_focus and r.blur_px == pytest.approx(1.2, abs=1e-3)
    assert r.meter == pytest.approx(1 / 1.2, abs=1e-3) and r.verdict == "near"


@pytest.mark.parametrize("shape, roi_px, block", [((97, 131), (3, 2, 120, 90), 4), ((64, 64), (0, 0, 64, 64), 8)])
def test_tile_stats_of_some_tiles_are_tile_stats_there(shape, roi_px, block):
    """The masked-tile measure the votes use equals the whole-grid one on those tiles
    (Laplacian with the frame's own border context, tile variance, mean, block energies)."""
    from pifocus.focus import measures as m
    rng = np.random.default_rng(0)
    luma = rng.integers(0, 256, shape).astype(np.uint8)
    g = m.grid_geometry(roi_px, 3, 4, block)
    mask = np.zeros((g.rows, g.cols), bool)
    mask[0, 0] = mask[-1, -1] = mask[1, 2] = True
    full, some = m.tile_stats(luma, g), m.tile_stats_of(luma, g, mask)
    assert np.allclose(some.lap_var[mask], full.lap_var[mask], rtol=1e-4)
    assert np.allclose(some.mean[mask], full.mean[mask], atol=0.51)     # full: uint8 box means
    assert np.allclose(some.block_energy.transpose(0, 2, 1, 3)[mask],
                       full.block_energy.transpose(0, 2, 1, 3)[mask], rtol=1e-4)
    assert not some.lap_var[~mask].any() and not some.noise_var.any()
