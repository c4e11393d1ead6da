"""Without a model motion head, a still that would be called sharp is tested for motion blur
with the model-free edge-width test (``[analysis] motion_check``, default "stills")."""

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
def test_a_streaked_still_reads_motion_blur_not_in_focus(use_cnn):
    params = AnalysisParams(roi=(0.1, 0.1, 0.8, 0.8), use_cnn=use_cnn, laplacian_threshold_dn2=30.0)
    an = FocusAnalyzer(params)
    try:
        sharp = an.analyze(Frame(luma=_scene(), index=0), track=False, still=True)
        streak = an.analyze(Frame(luma=_scene(11, 30.0), index=1), track=False, still=True)
        sample = an.analyze(Frame(luma=_scene(11, 30.0), index=2), track=False)   # an AF sample
    finally:
        an.close()
    assert sharp.in_focus and sharp.verdict == "in_focus" and not sharp.motion_blur
    assert streak.motion_blur and streak.verdict == "motion_blur" and not streak.in_focus
    assert not sample.motion_blur          # autofocus samples are not slowed by the check


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
