"""The live focus pull on every real shared sweep with the shipped model (its in-focus output is
the binary v1 net's): the
sweep played 1 -> N -> 1 through one analyzer with the default hysteresis, dwell,
``approach_fraction`` and ``min_meter``, as ``python tools/verdict_bench.py`` measures it.

The LED must light at least once, never more than one frame outside the range a
photographer accepts (``tests/data/sweep_truth.json``) and never on a frame where only
another plane of the region is sharp (``other_planes``: stricter than the issue's count).
fruit_stilllife_product, whose background cloth (sharp in 005) out-shone the melon of 004 in
the central region, holds since its judged box is on the melon (re-aimed by eye in the
twenty-seventh session of issue 9).  wicker_balls_phone, whose stitched background
seam (sharp at frames 5-9) used to out-vote the defocused wicker, holds since the wicker's
blurred tiles vote against the in-focus share (``[analysis] blurred_votes``)."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRUTH = json.loads((ROOT / "tests" / "data" / "sweep_truth.json").read_text())
KNOWN: dict = {}


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
    assert not r["pull_lit_other_planes"], r


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


@pytest.mark.parametrize("name", ["canon-36", "pcb-depthmap-10", "cmc-6"])
def test_the_pull_through_pifocus_run_lights_where_the_bench_says(shared_data, bench, name, tmp_path, capsys):
    """The same pull played through the command a photographer runs: a folder whose files are
    the sweep's frames in the order 1 -> N -> 1 (symlinks), ``pifocus run --source DIR --json``
    with the judged ROI and the defaults; the in-focus LED stays within a frame of the judged
    range and lights at least once."""
    import json as _json

    from pifocus.cli import main
    sys.path.insert(0, str(ROOT / "tools"))
    from dataset import sweep_frames
    t = TRUTH["sweeps"][name]
    files = sweep_frames(shared_data / "focus-sweeps" / name)
    order = list(range(len(files))) + list(range(len(files) - 2, -1, -1))
    pull = tmp_path / "pull"
    pull.mkdir()
    for k, i in enumerate(order):
        (pull / f"{k:04d}{files[i].suffix.lower()}").symlink_to(files[i])
    roi = ",".join(str(v) for v in t.get("roi", TRUTH["region"]))
    code = main(["run", "--source", str(pull), "--json", "--no-outputs", "--roi", roi])
    out, err = capsys.readouterr()
    assert code == 0, err
    reports = [_json.loads(line) for line in out.splitlines() if line.startswith('{"frame"')]
    assert len(reports) == len(order)
    lo, hi = t["acceptable"]
    lit = [order[r["frame"]] for r in reports if r["in_focus"]]
    assert lit, "the LED never lit"
    assert all(lo - 1 <= f <= hi + 1 for f in lit), (lit, (lo, hi))
