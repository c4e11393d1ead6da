"""The live focus pull on every real shared sweep with the shipped (binary) model: the
sweep played 1 -> N -> 1 through one analyzer with the default hysteresis, dwell,
``approach_fraction`` and ``min_meter``, as ``python tools/verdict_bench.py`` measures it.

The LED must light at least once and never more than one frame outside the range a
photographer accepts (``tests/data/sweep_truth.json``).  Three sweeps are known not to hold
with the ROI-wide sharpness (measured, see the closing notes of issue 9): on them the
sharpness of the central region peaks on another plane than the judged subject
(wicker_balls_phone: a stitched background seam, sharp at frames 5-8, out-shines the wicker
that is sharp at 22-24) or the binary CNN never reaches the bar twice in a row on the
subject (fruit_stilllife_product, mineral_crystals_micro)."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRUTH = json.loads((ROOT / "tests" / "data" / "sweep_truth.json").read_text())
KNOWN = {"wicker_balls_phone": "the ROI's sharpness peaks on a background seam (another plane)",
         "fruit_stilllife_product": "the binary CNN is below the bar on the subject frame",
         "mineral_crystals_micro": "the binary CNN hovers at 0.5 on the crystals"}


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "tools"))
    import verdict_bench
    return verdict_bench


@pytest.mark.parametrize("name", [n if n not in KNOWN else pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN[n]))
                                  for n in sorted(TRUTH["sweeps"])])
def test_live_pull_lights_within_a_frame_of_the_judged_range(shared_data, bench, name):
    r = bench.bench_sweep(name, TRUTH, TRUTH["region"], shared_data, 1, True)
    assert r["pull_lit_at_all"], r
    assert r["pull_max_outside_frames"] <= 1, r


def test_the_meter_is_not_reset_when_the_analysis_scale_is_adopted(shared_data, bench):
    # microscope-wbc-10 is oversampled: "auto" adopts scale 2 from the pass's sharpest frame
    # part-way through the pull.  Before the fix the meter restarted at 100 % there, on a frame
    # at half the peak's sharpness, and the LED stayed lit 3 frames past the judged range.
    t = TRUTH["sweeps"]["microscope-wbc-10"]
    from pifocus.focus import AnalysisParams, FocusAnalyzer
    lumas = bench.sweep_luma(shared_data / "focus-sweeps" / "microscope-wbc-10")
    an = FocusAnalyzer(AnalysisParams(roi=tuple(t.get("roi", TRUTH["region"]))))
    try:
        pull = bench.live_pull(an, lumas)
    finally:
        an.close()
    n = len(lumas)
    outward = pull[t["sharpest"] + 2:n]          # the first pass, beyond the peak
    assert all(p["meter"] < 0.9 for p in outward), [round(p["meter"], 2) for p in pull]
