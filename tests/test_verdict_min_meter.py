"""[analysis] min_meter: after a pass has gone through focus, frames far below the pass's peak
sharpness are not in focus, whatever the tiles say (the live pull's LED stays near the peak)."""

import cv2
import numpy as np
import pytest

from pifocus.exc import ConfigError
from pifocus.focus import AnalysisParams, FocusAnalyzer
from pifocus.focus.blurest import dead_leaves
from pifocus.frames import Frame

#: A focus pull: Gaussian blur sigma (px) per frame, through focus at frame 4 and out again.
PULL_SIGMA = (3.0, 2.0, 1.2, 0.6, 0.0, 0.6, 0.9, 1.2, 2.0, 3.0)


def _frames():
    scene = dead_leaves(256, seed=3, n_discs=1500).astype(np.float32) * 255.0  # 0..1 -> DN
    rng = np.random.default_rng(0)
    for i, s in enumerate(PULL_SIGMA):
        img = cv2.GaussianBlur(scene, (0, 0), s) if s > 0 else scene
        img = np.clip(img + rng.normal(0, 1.0, img.shape), 0, 255).astype(np.uint8)
        yield Frame(luma=img, index=i, timestamp_ns=i * 33_000_000, lens_position=float(i))


def _pull(min_meter):
    an = FocusAnalyzer(AnalysisParams(use_cnn=False, analysis_scale=1, min_meter=min_meter,
                                      laplacian_threshold_dn2=30.0))
    try:
        return [an.analyze(f) for f in _frames()]
    finally:
        an.close()


def test_led_turns_off_below_the_pass_peak():
    gated, plain = _pull(0.7), _pull(0.0)
    lit_gated = [r.frame_index for r in gated if r.in_focus]
    lit_plain = [r.frame_index for r in plain if r.in_focus]
    # Without the gate the tiles (all well above the Laplacian threshold) keep it lit past focus.
    assert lit_plain and max(lit_plain) > 6, lit_plain
    # With it, the verdict after the peak follows the meter: off once below 70 % of the peak.
    after_peak = [r for r in gated if r.frame_index > 4]
    assert all(not r.in_focus for r in after_peak if r.meter < 0.7 and r.frame_index > 5)
    assert 4 in lit_gated or 5 in lit_gated, lit_gated
    assert len(lit_gated) < len(lit_plain)
    # On the way in, the meter is relative to the best so far: the gate does not hold it off.
    assert [r.in_focus for r in gated[:5]] == [r.in_focus for r in plain[:5]]


def test_min_meter_is_validated():
    with pytest.raises(ConfigError, match="min_meter"):
        AnalysisParams(min_meter=1.0)
    with pytest.raises(ConfigError, match="min_meter"):
        AnalysisParams(min_meter=-0.1)
