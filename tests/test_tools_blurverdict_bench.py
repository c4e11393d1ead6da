"""tools/blurverdict_bench.py (the blur-source experiment of issue 9) on literal records and on
a literal three-frame sweep (the procedural chart through disk PSFs; no shared data): the
variants' verdicts and precision/recall, and that blurest on the ROI reads the disk radius."""

import importlib.util
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pifocus.focus.blurest import dead_leaves
from pifocus.sources.simulated import defocus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bb():
    if str(ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location("_tool_blurverdict_bench", ROOT / "tools" / "blurverdict_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rec(frame, blur, cnn_frac, led=False, judgeable=True):
    return {"frame": frame, "judgeable": judgeable, "cnn_frac": cnn_frac, "cnn_raw": cnn_frac >= 0.5,
            "led": led, "blur_px": blur, "scale": 1, "sharpness": 1.0}


def test_variants_on_literal_records(bb):
    blur = [3.0, 1.2, 0.4, 0.8, 2.0]
    cnn = [0.0, 0.9, 0.9, 0.2, 0.0]
    stills = [_rec(i, b, c) for i, (b, c) in enumerate(zip(blur, cnn))]
    order = list(range(5)) + list(range(3, -1, -1))
    pull = [_rec(i, blur[i], cnn[i], led=i in (1, 2)) for i in order]
    run = {"accepted": [2, 3], "stills": stills, "pull": pull}
    e = bb.score(run, "edges", 1.0)
    assert e["in_focus"] == [2, 3] and e["precision"] == 1.0 and e["recall"] == 1.0
    # Default dwell of 2 frames: on at the second sharp frame (3), held one frame past each
    # end (4, then 1 on the way back): at most 1 frame outside, so the pull is ok.
    assert e["pull_lit"] == [1, 2, 3, 4] and e["pull_ok"]
    both = bb.score(run, "edges+cnn", 1.0)
    assert both["in_focus"] == [2] and both["recall"] == 0.5
    main = bb.score(run, "cnn", None)
    assert main["in_focus"] == [1, 2] and main["precision"] == 0.5 and main["pull_lit"] == [1, 2]
    loose = bb.score(run, "edges", 1.5)
    assert loose["in_focus"] == [1, 2, 3] and math.isclose(loose["precision"], 2 / 3)
    # Not judgeable, or no edges (NaN blur): never in focus.
    run2 = {"accepted": [0, 0], "stills": [_rec(0, math.nan, 1.0), _rec(1, 0.1, 1.0, judgeable=False)], "pull": []}
    assert bb.score(run2, "edges", 1.0)["in_focus"] == []


def test_collect_reads_disk_radius_of_dead_leaves_sweep(bb, tmp_path):
    """blurest's own calibration scene (dead leaves) through disk PSFs of 3, 0, 3 px.  (The
    procedural focus chart is not used: its dense fine texture reads far too little blur --
    0.7 px for a 3 px disk -- which is one of the experiment's findings.)"""
    folder = tmp_path / "focus-sweeps" / "chart"
    folder.mkdir(parents=True)
    scene = dead_leaves(480, seed=3)
    rng = np.random.default_rng(0)
    for i, r in enumerate((3.0, 0.0, 3.0)):
        img = (defocus(scene, r) if r else scene) * 255 + rng.normal(0.0, 1.0, scene.shape)
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.clip(img, 0, 255).astype(np.uint8))
    truth = {"region": [0.25, 0.25, 0.5, 0.5], "sweeps": {"chart": {"acceptable": [1, 1]}}}
    run = bb.collect("chart", truth, tmp_path, 1, tiles=False)
    b = [s["blur_px"] for s in run["stills"]]
    assert all(s["scale"] == 1 for s in run["stills"])
    assert b[1] <= 0.5, b
    assert all(2.0 <= b[i] <= 4.0 for i in (0, 2)), b
    assert bb.score(run, "edges", 1.0)["in_focus"] == [1]
