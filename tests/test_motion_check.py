"""Motion blur on stills: a still that would be called sharp (and that a model motion head, if
any, did not flag) is tested with the model-free edge-width test (``[analysis] motion_check``,
default "stills"); the live stream and autofocus samples only with "always"."""

import math

import cv2
import numpy as np
import pytest

from pifocus.exc import ConfigError
from pifocus.focus import AnalysisParams, FocusAnalyzer
from pifocus.focus.blur import motion_check
from pifocus.focus.blurest import dead_leaves
from pifocus.frames import Frame


def _scene(motion_px=0, angle_deg=0.0, seed=5):
    img = dead_leaves(384, seed=seed, n_discs=2500).astype(np.float32) * 255.0
    if motion_px:
        k = np.zeros((motion_px + 2, motion_px + 2), np.float32)
        c = (motion_px + 1) / 2.0
        dx, dy = np.cos(np.radians(angle_deg)) * motion_px / 2, np.sin(np.radians(angle_deg)) * motion_px / 2
        cv2.line(k, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1)
        img = cv2.filter2D(img, -1, k / k.sum())
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, 1.0, img.shape), 0, 255).astype(np.uint8)


def test_the_pure_check_sees_a_streak_and_not_a_sharp_or_defocused_scene():
    roi = (0.0, 0.0, 1.0, 1.0)
    assert not motion_check(_scene(), roi)
    soft = cv2.GaussianBlur(_scene(), (0, 0), 2.0)
    assert not motion_check(soft, roi)                     # defocus is isotropic
    assert motion_check(_scene(11, 0.0), roi)
    assert motion_check(_scene(11, 90.0), roi)


@pytest.mark.parametrize("use_cnn", [True, False])
def test_a_streaked_still_reads_motion_blur_not_in_focus(use_cnn, monkeypatch):
    from pifocus.focus import blur
    calls = []
    real = blur.motion_check
    monkeypatch.setattr(blur, "motion_check", lambda *a, **k: calls.append(1) or real(*a, **k))
    params = AnalysisParams(roi=(0.1, 0.1, 0.8, 0.8), use_cnn=use_cnn, laplacian_threshold_dn2=30.0)
    an = FocusAnalyzer(params)
    try:
        sharp = an.analyze(Frame(luma=_scene(), index=0), track=False, still=True)
        streak = an.analyze(Frame(luma=_scene(11, 30.0), index=1), track=False, still=True)
        n_stills = len(calls)
        sample = an.analyze(Frame(luma=_scene(11, 30.0), index=2), track=False)   # an AF sample
    finally:
        an.close()
    assert sharp.in_focus and sharp.verdict == "in_focus" and not sharp.motion_blur
    assert streak.motion_blur and streak.verdict == "motion_blur" and not streak.in_focus
    assert n_stills >= 1                   # the stills ran the check ...
    assert len(calls) == n_stills          # ... autofocus samples are not slowed by it
    assert not sample.motion_blur          # nor judged for motion ("stills"), with or without a head


def test_off_keeps_the_binary_verdict_and_the_key_is_validated():
    an = FocusAnalyzer(AnalysisParams(roi=(0.1, 0.1, 0.8, 0.8), use_cnn=False, laplacian_threshold_dn2=30.0,
                                      motion_check="off"))
    try:
        r = an.analyze(Frame(luma=_scene(11, 30.0), index=0), track=False, still=True)
    finally:
        an.close()
    assert not r.motion_blur
    with pytest.raises(ConfigError, match="motion_check"):
        AnalysisParams(motion_check="sometimes")


# --- beside a model motion head ----------------------------------------------------------------

def _heads_analyzer(p_motion: float, **kw):
    """A heads model that calls every tile sharp (0.3 px) with motion probability ``p_motion``
    (the brightness-rule classifier of the analyzer's blur tests, answer constant)."""
    from test_analyzer_blur import BrightnessHeads
    return FocusAnalyzer(AnalysisParams(roi=(0.1, 0.1, 0.8, 0.8), **kw),
                         classifier=BrightnessHeads(lambda m: (0.3, p_motion)))


def test_a_streak_the_motion_head_misses_is_caught_by_the_model_free_check():
    # The head stays silent (p_motion 0): before, a model with a motion head skipped the
    # edge-width check, so a streaked photo the head missed was called sharp.
    an = _heads_analyzer(0.0)
    try:
        assert an.has_blur
        sharp = an.analyze(Frame(luma=_scene(), index=0), track=False, still=True)
        streak = an.analyze(Frame(luma=_scene(11, 30.0), index=1), track=False, still=True)
        sample = an.analyze(Frame(luma=_scene(11, 30.0), index=2), track=False)   # not a still
    finally:
        an.close()
    assert sharp.in_focus and sharp.verdict == "in_focus" and not sharp.motion_blur
    assert streak.motion_blur and streak.verdict == "motion_blur" and not streak.in_focus
    assert not sample.motion_blur and sample.in_focus     # off stills motion is not judged


def test_the_motion_heads_own_flag_still_counts_and_off_leaves_it_alone():
    for check in ("stills", "off"):
        an = _heads_analyzer(1.0, motion_check=check)
        try:
            r = an.analyze(Frame(luma=_scene(), index=0), track=False, still=True)
        finally:
            an.close()
        assert r.motion_blur and r.verdict == "motion_blur" and not r.in_focus, check
    an = _heads_analyzer(0.0, motion_check="off")
    try:
        r = an.analyze(Frame(luma=_scene(11, 30.0), index=0), track=False, still=True)
    finally:
        an.close()
    assert not r.motion_blur          # "off": the head's silence stands


def test_the_cull_flags_motion_from_either_the_head_or_the_edge_widths(tmp_path):
    """``cull.scoring.score_luma`` with a heads model: the edge-width streak estimate runs
    beside the head (length and angle for the grade; edge width for the burst order)."""
    from pifocus.cull import CullParams
    from pifocus.cull.scoring import score_luma
    from pifocus.cull.subject import SubjectFinder
    finder = SubjectFinder("centre")
    streaked = _scene(11, 30.0)
    for p_motion, luma, want in ((0.0, streaked, "streak"), (1.0, _scene(), "head"), (0.0, _scene(), None)):
        an = _heads_analyzer(p_motion)
        try:
            r = score_luma(luma, str(tmp_path / "x.png"), an, finder, CullParams())
        finally:
            an.close()
        assert r.blur_source == "heads" and r.blur_px == pytest.approx(0.3)
        assert math.isfinite(r.edge_sigma_px)
        if want is None:
            assert not r.motion_blur and r.verdict == "keep", r.reasons
        elif want == "streak":
            assert r.motion_blur and r.motion_px >= 4.5 and r.verdict == "reject", r.reasons
            assert any("motion blur" in x and "deg" in x for x in r.reasons)
        else:
            assert r.motion_blur and math.isnan(r.motion_px) and r.verdict == "maybe", r.reasons
            assert any("motion head" in x for x in r.reasons)


def test_the_live_stream_judges_motion_only_with_always():
    """On the live stream (and autofocus samples) the head's motion flag counts only with
    ``motion_check = "always"``: oriented textures read as streaks to the head and would hold
    the LED off at focus."""
    for check, want in (("stills", False), ("always", True)):
        an = _heads_analyzer(1.0, motion_check=check)
        try:
            live = [an.analyze(Frame(luma=_scene(), index=k, timestamp_ns=k * 33_000_000), track=True)
                    for k in range(4)]
            still = an.analyze(Frame(luma=_scene(), index=9), track=False, still=True)
        finally:
            an.close()
        assert all(r.motion_blur == want for r in live), check
        assert (live[-1].verdict == "motion_blur") == want and still.motion_blur, check
