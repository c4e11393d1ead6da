"""Issue 14, property test: on the sim drive, whatever the soft limits (fractional too),
start position, backlash and missed steps, every AF strategy ends within its frame budget,
never commands a position outside the soft limits, and the saved state is exact or marked
uncertain."""

import json
import math

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pifocus.autofocus import AutofocusParams, autofocus  # noqa: E402
from pifocus.autofocus.engine import frame_limit  # noqa: E402
from pifocus.drive import open_drive  # noqa: E402
from pifocus.focus import AnalysisParams, FocusAnalyzer  # noqa: E402

from test_faults_af import time_limit  # noqa: E402

ANALYZER = FocusAnalyzer(AnalysisParams(use_cnn=False))


@st.composite
def rigs(draw):
    lo = draw(st.one_of(st.integers(0, 600).map(float), st.floats(0, 600, allow_nan=False)))
    width = draw(st.one_of(st.integers(4, 1000).map(float), st.floats(2.5, 1000, allow_nan=False)))
    hi = min(lo + width, 1000.0)
    return dict(
        lo=lo, hi=hi,
        start=draw(st.floats(lo, hi, allow_nan=False)),
        focus=draw(st.floats(0, 1000, allow_nan=False)),
        backlash=draw(st.sampled_from([0.0, 3.0, 12.5, 40.0])),
        compensate=draw(st.booleans()),
        missed_rate=draw(st.sampled_from([0.0, 0.1, 0.5])),
        missed_max=draw(st.integers(0, 6)),
        seed=draw(st.integers(0, 1000)),
        strategy=draw(st.sampled_from(["model", "sweep", "continuous"])),
    )


@settings(max_examples=50, deadline=20000, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rig=rigs())
def test_af_is_bounded_stays_in_limits_and_never_lies(rig, tmp_path_factory):
    state = tmp_path_factory.mktemp("prop") / "state.json"
    lo, hi = rig["lo"], rig["hi"]
    d = open_drive("sim", width=160, height=120, min_position=lo, max_position=hi,
                   focus_position=rig["focus"], seed=rig["seed"], backlash_steps=rig["backlash"],
                   backlash=rig["backlash"] if rig["compensate"] else 0.0,
                   missed_step_rate=rig["missed_rate"], missed_step_max=rig["missed_max"],
                   state_file=str(state))
    commanded = []
    d.on_move = lambda drv, a, b: commanded.append(b)
    params = AutofocusParams(strategy=rig["strategy"])
    with time_limit(20):
        with d:
            d.move_to(rig["start"])
            r = autofocus(d, ANALYZER, params)
            budget = frame_limit(d, params)
            final = d.position
    assert r.frames_used <= budget, (r.frames_used, budget)
    eps = 1e-9
    outside = [x for x in commanded if not (lo - eps <= x <= hi + eps)]
    assert not outside, (outside, lo, hi)
    assert all(lo - eps <= p <= hi + eps for p, _ in r.curve)
    assert math.isfinite(r.final_position) and lo - eps <= r.final_position <= hi + eps
    saved = json.loads(state.read_text())
    assert (saved["position"] == final and saved["moving"] is False) or saved["moving"] or saved.get("uncertain")
