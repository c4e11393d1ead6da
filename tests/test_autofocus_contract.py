"""The contract every registered autofocus strategy keeps, tested once for all of them.

The tests are parametrized over :data:`pifocus.autofocus.REGISTRY`, so a newly registered
strategy is held to the same contract without writing a test: the same result fields, the
drive left inside its limits and where the result says, the frame budget kept, and the
quality gate honoured (a scene without detail fails with a reason and leaves the drive at
the best position seen; a good scene succeeds near the true focus).
"""

import cv2
import numpy as np
import pytest

from pifocus.autofocus import (REGISTRY, STRATEGIES, AutofocusParams, AutofocusResult, Strategy,
                               autofocus, frame_limit)
from pifocus.drive import open_drive
from pifocus.exc import ConfigError
from pifocus.focus import AnalysisParams, FocusAnalyzer

W, H = 320, 240
FOCUS = 500.0
#: the ``to_dict()`` keys of every result (the ``autofocus --json`` object)
RESULT_KEYS = {"final_position", "frames_used", "moves", "time_s", "success", "reason", "strategy",
               "curve", "fit", "best_position", "best_score", "final_score", "p_in_focus",
               "confidence", "depth_of_focus"}

strategies = pytest.mark.parametrize("strategy", list(REGISTRY))


@pytest.fixture(scope="module")
def analyzer():
    return FocusAnalyzer(AnalysisParams(use_cnn=False))


@pytest.fixture(scope="module")
def flat_image(tmp_path_factory):
    """A uniform grey scene: nothing in it changes with focus."""
    p = tmp_path_factory.mktemp("flat") / "flat.png"
    cv2.imwrite(str(p), np.full((H, W), 128, np.uint8))
    return str(p)


def sim(**kw):
    kw.setdefault("width", W)
    kw.setdefault("height", H)
    kw.setdefault("state_file", "none")
    return open_drive("sim", **kw)


def lens_error(drive) -> float:
    """Where the physical lens stands relative to the true focus (steps)."""
    return drive.ring.lens + drive.ring.turned - drive.sim.params.focus_position


def check_result(r: AutofocusResult, drive, strategy: str, params: AutofocusParams) -> None:
    """What every result of every strategy satisfies, whatever the scene."""
    d = r.to_dict()
    assert set(d) == RESULT_KEYS
    assert d["strategy"] == strategy and isinstance(d["success"], bool) and d["reason"]
    lo, hi = drive.limits
    assert lo <= r.final_position <= hi and r.final_position == drive.position
    assert all(lo <= p <= hi for p, _ in r.curve)
    assert 1 <= r.frames_used <= frame_limit(drive, params)
    assert r.frames_used >= len(r.curve)         # every sample is a frame; settling frames add
    # The best sample is one of the curve's (the verification frames at the end may score higher).
    assert [r.best_position, r.best_score] in r.curve
    assert r.final_score is not None and r.time_s > 0


def test_registry_matches_strategies():
    assert STRATEGIES == tuple(REGISTRY) and STRATEGIES[:3] == ("model", "sweep", "continuous")
    params = AutofocusParams()
    for name, cls in REGISTRY.items():
        assert issubclass(cls, Strategy) and cls.name == name
        s = cls.from_params(params)
        assert s.params is getattr(params, cls.params_field)
        assert AutofocusParams(strategy=name).strategy == name


@strategies
@pytest.mark.parametrize("start", [440.0, 620.0])
def test_good_scene_succeeds_near_focus(analyzer, strategy, start):
    params = AutofocusParams()
    with sim(focus_position=FOCUS, seed=3) as d:
        r = autofocus(d, analyzer, params, strategy=strategy, start=start)
        check_result(r, d, strategy, params)
        assert r.success and r.reason == "ok", r.reason
        assert abs(lens_error(d)) <= 1.0 / d.sim.params.blur_px_per_step   # within the depth of focus
        assert r.fit is not None and r.frames_used == len(r.curve)   # no settling frames here


@strategies
def test_soft_limits_are_kept(analyzer, strategy):
    params = AutofocusParams()
    # The sim's motor 0 sits at the lower soft limit: the lens focuses at drive position 600.
    with sim(focus_position=FOCUS, seed=3, min_position=100, max_position=900) as d:
        r = autofocus(d, analyzer, params, strategy=strategy, start=540)
        check_result(r, d, strategy, params)
        assert r.success, r.reason
        assert abs(lens_error(d)) <= 1.0 / d.sim.params.blur_px_per_step


@strategies
def test_settle_frames_count_against_the_budget(analyzer, strategy):
    # Success is not part of this contract: a strategy may run out of frames (and say so).
    params = AutofocusParams(settle_frames=2)
    with sim(focus_position=FOCUS, seed=3, settle_frames=1) as d:
        r = autofocus(d, analyzer, params, strategy=strategy, start=440)
        check_result(r, d, strategy, params)
        assert r.frames_used > len(r.curve)
        assert frame_limit(d, params) > frame_limit(d, AutofocusParams())


@strategies
@pytest.mark.parametrize("scene,reason", [("flat", "too little texture"), ("dark", "too little light")])
def test_gate_fails_a_scene_without_detail(analyzer, flat_image, strategy, scene, reason):
    params = AutofocusParams()
    kw = {"image": flat_image} if scene == "flat" else {"exposure": 0.02}
    with sim(seed=1, **kw) as d:
        r = autofocus(d, analyzer, params, strategy=strategy, start=300)
        check_result(r, d, strategy, params)
        assert not r.success and reason in r.reason
        assert r.final_position == r.best_position == d.position   # back at the best position seen


@strategies
def test_same_inputs_same_result(analyzer, strategy):
    # Deterministic: the same scene and start give the same samples (time aside).
    out = []
    for _ in range(2):
        with sim(focus_position=FOCUS, seed=5) as d:
            res = autofocus(d, analyzer, AutofocusParams(), strategy=strategy, start=560).to_dict()
            res.pop("time_s")
            out.append(res)
    assert out[0] == out[1]


def test_unknown_strategy_is_refused(analyzer):
    with sim() as d:
        with pytest.raises(ConfigError, match="use one of " + ", ".join(STRATEGIES)):
            autofocus(d, analyzer, AutofocusParams(), strategy="guess")
