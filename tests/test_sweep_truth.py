"""The verdict against the judged truth of every real focus sweep (``tests/data/sweep_truth.json``).

Two ways, as a photographer uses the tool: every frame scored as a still, and a live focus
pull that plays the sweep 1 -> N -> 1 through one analyzer with the default hysteresis and
dwell.  The numbers behind these tests: ``python tools/verdict_bench.py``.
Needs ``../shared/data`` (skips without it) and a verdict decided by the blur head.
"""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRUTH = json.loads((ROOT / "tests" / "data" / "sweep_truth.json").read_text())
SWEEPS = sorted(TRUTH["sweeps"])


def test_truth_file_is_complete_and_consistent():
    for name, t in TRUTH["sweeps"].items():
        lo, hi = t["acceptable"]
        assert 0 <= lo <= t["sharpest"] <= hi < t["frames"], name
        assert not set(t["near"]) & set(range(lo, hi + 1)), name
        assert not set(t["other_planes"]) & set(range(lo, hi + 1)), name
        assert t["why"], name


def test_truth_covers_every_shared_sweep(shared_data):
    folders = {d.name for d in (shared_data / "focus-sweeps").iterdir() if d.is_dir()}
    assert folders == set(SWEEPS)
    sys.path.insert(0, str(ROOT / "tools"))
    from dataset import sweep_frames
    for name in SWEEPS:
        files = sweep_frames(shared_data / "focus-sweeps" / name)
        t = TRUTH["sweeps"][name]
        assert len(files) == t["frames"] and files[t["sharpest"]].name == t["sharpest_file"], name


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "tools"))
    import verdict_bench
    from pifocus.focus import FocusAnalyzer
    a = FocusAnalyzer()
    blur_rule = a.has_blur and a.params.focus_rule == "blur"
    a.close()
    if not blur_rule:
        # The default verdict is the in-focus head's (focus_rule = "classifier"), whose live
        # pull tests/test_verdict_live_pull.py holds to the judged ranges; these are the
        # issue's targets for a verdict decided by the blur estimate, not met yet.
        pytest.skip("the verdict is not decided by the blur head (focus_rule != \"blur\")")
    return verdict_bench


@pytest.mark.parametrize("name", SWEEPS)
def test_stills_and_live_pull_agree_with_the_judged_range(shared_data, bench, name):
    r = bench.bench_sweep(name, TRUTH, TRUTH["region"], shared_data, 1, True)
    assert r["precision"] >= 0.9, r        # what lights is what a photographer keeps
    assert r["recall"] >= 0.67, r          # ... and most of what they keep lights
    assert r["pull_lit_at_all"], r
    assert r["pull_max_outside_frames"] <= 1, r
