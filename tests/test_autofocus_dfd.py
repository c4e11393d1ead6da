"""The ``dfd`` strategy (depth from defocus + a short local fit), the result's ``confidence``
and ``depth_of_focus``, and the end-of-range rule, on literal numbers and the simulated lens.
The numbers over many scenes and every real sweep: ``python tools/af_bench.py``."""

import math

import numpy as np
import pytest

from pifocus.autofocus import AutofocusParams, DfdParams, autofocus, relative_blur
from pifocus.autofocus.dfd import v_jump
from pifocus.autofocus.gate import HWHM_SIGMAS, _peaks_at_edge, depth_of_focus
from pifocus.autofocus.run import Sample
from pifocus.drive import open_drive
from pifocus.exc import ConfigError
from pifocus.focus import AnalysisParams, FocusAnalyzer


def test_relative_blur_on_literal_measures():
    assert relative_blur(100.0, 400.0) == pytest.approx(2.0)
    assert relative_blur(1.0, 10000.0) == pytest.approx(100.0)
    assert relative_blur(0.0, 5.0) == math.inf          # nothing left at full resolution
    assert math.isnan(relative_blur(5.0, 0.0))


def test_v_jump_extrapolates_towards_the_sharper_sample():
    # blur 3 at 100, 5 at 0: slope 0.02 per unit; floor 1 -> focus 100 further on, at 200
    assert v_jump((100.0, 3.0), (0.0, 5.0), 1.0) == pytest.approx(200.0)
    assert v_jump((0.0, 3.0), (100.0, 5.0), 1.0) == pytest.approx(-100.0)
    assert v_jump((100.0, 5.0), (0.0, 3.0), 1.0) is None     # the "near" one is blurrier: no slope
    assert v_jump((100.0, math.nan), (0.0, 3.0), 1.0) is None


def test_depth_of_focus_is_the_half_width_at_half_maximum():
    assert depth_of_focus({"sigma": 10.0}) == pytest.approx(10.0 * HWHM_SIGMAS)
    assert HWHM_SIGMAS == pytest.approx(math.sqrt(2 * math.log(2)))
    assert depth_of_focus(None) is None and depth_of_focus({"sigma": None}) is None


def _s(x, y):
    return Sample(position=float(x), score=float(y), coarse={}, coarse_floor={}, brightness=100.0,
                  informative=1.0, p_in_focus=math.nan)


def test_a_peak_at_the_range_end_counts_only_within_half_a_step():
    assert _peaks_at_edge([_s(24, 511.5), _s(23, 500.2), _s(22, 474.8)])     # wicker: turns over at 24.2
    assert not _peaks_at_edge([_s(27, 1141), _s(26, 944), _s(25, 710)])      # beetle's far plane: climbing


@pytest.mark.parametrize("key, value", [("probe_step", 0), ("max_jump", 2), ("bracket_sigmas", 0.1),
                                        ("max_skew", 0.5), ("flat_ratio", 1.0), ("max_jumps", 0)])
def test_bad_dfd_params_name_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        DfdParams(**{key: value})


@pytest.fixture(scope="module")
def analyzer():
    return FocusAnalyzer(AnalysisParams(use_cnn=False))


@pytest.mark.parametrize("focus, start", [(300.0, 900.0), (700.0, 100.0), (520.0, 480.0)])
def test_dfd_lands_within_the_depth_of_focus_in_few_frames(analyzer, focus, start):
    bpp = 0.04                                   # blur radius per step: depth of focus 25 steps
    with open_drive("sim", width=320, height=240, focus_position=focus, blur_px_per_step=bpp,
                    state_file="none") as d:
        r = autofocus(d, analyzer, AutofocusParams(strategy="dfd"), start=start)
        err = d.ring.lens + d.ring.turned - focus
    assert r.success and abs(err) <= 1.0 / bpp, (r.reason, err, r.curve)
    assert r.frames_used <= 12, r.curve
    assert 0.0 < r.confidence <= 1.0 and r.to_dict()["confidence"] == round(r.confidence, 3)
    assert r.depth_of_focus is not None and 0.3 / bpp < r.depth_of_focus < 3.0 / bpp


def test_dfd_on_a_flat_scene_fails_with_the_true_reason_and_low_confidence(analyzer, tmp_path):
    import cv2
    p = tmp_path / "flat.png"
    cv2.imwrite(str(p), np.full((240, 320), 128, np.uint8))
    with open_drive("sim", image=str(p), width=320, height=240, state_file="none") as d:
        r = autofocus(d, analyzer, AutofocusParams(strategy="dfd"), start=400)
    assert not r.success and "too little texture" in r.reason
    assert r.confidence <= 0.3


class _LyingHead:
    """A real analyzer whose 'blur head' says every frame is far out of focus (8 px)."""

    has_blur = True

    def __init__(self, inner):
        self.inner = inner
        self.params = inner.params

    def analyze(self, frame, track=True, still=False):
        from dataclasses import replace
        return replace(self.inner.analyze(frame, track=track, still=still), blur_px=8.0)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_dfd_jumps_by_the_blur_head_only_when_asked(analyzer):
    """``[autofocus.dfd] use_head`` (default False: the model-free estimate did better on the
    real replays): with it off a model's blur head does not change the run at all."""
    def run(an, **dfd):
        with open_drive("sim", width=320, height=240, focus_position=300.0, blur_px_per_step=0.04,
                        state_file="none") as d:
            r = autofocus(d, an, AutofocusParams(strategy="dfd", dfd=DfdParams(**dfd)), start=900.0)
            return r.final_position, [tuple(round(v, 3) for v in c[:1]) for c in r.curve]
    plain = run(analyzer)
    assert run(_LyingHead(analyzer)) == plain
    assert run(_LyingHead(analyzer), use_head=True) != plain
    assert DfdParams().use_head is False
