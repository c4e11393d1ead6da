"""tools/verdict_bench.py on a literal three-frame sweep (the procedural chart through disk
PSFs; no shared data): the numbers it reports, and that ``--model`` really selects the model."""

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pifocus.classify import default_model_path
from pifocus.exc import ModelError
from pifocus.sources.simulated import defocus, focus_chart

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def vb():
    if str(ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location("_tool_verdict_bench", ROOT / "tools" / "verdict_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """focus-sweeps/chart/: radius 4, 0, 4 px (frame 1 is the sharp one)."""
    root = tmp_path_factory.mktemp("data")
    folder = root / "focus-sweeps" / "chart"
    folder.mkdir(parents=True)
    chart = focus_chart(480, 360, seed=5)
    for i, r in enumerate((4.0, 0.0, 4.0)):
        img = defocus(chart, r) if r else chart
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.clip(img * 255, 0, 255).astype(np.uint8))
    truth = {"region": [0.3, 0.3, 0.4, 0.4],
             "sweeps": {"chart": {"frames": 3, "sharpest": 1, "acceptable": [1, 1]}}}
    return root, truth


def test_precision_recall_on_literal_frame_lists(vb):
    assert vb.precision_recall([1, 2], range(1, 2)) == {"precision": 0.5, "recall": 1.0,
                                                         "precision_near_free": 0.5}
    r = vb.precision_recall([], range(3, 5))
    assert np.isnan(r["precision"]) and r["recall"] == 0.0 and np.isnan(r["precision_near_free"])
    # near frames count neither way in the near-free view; other soft frames still count
    r = vb.precision_recall([2, 3, 4, 5, 7], range(3, 5), near=[2, 5])
    assert r["precision"] == 0.4 and r["recall"] == 1.0 and r["precision_near_free"] == 2 / 3
    # only near frames lit: nothing left to judge
    assert np.isnan(vb.precision_recall([2], range(3, 5), near=[2])["precision_near_free"])


def test_bench_sweep_with_the_shipped_model_finds_the_sharp_frame(vb, sweep):
    root, truth = sweep
    r = vb.bench_sweep("chart", truth, truth["region"], root, 1, True, default_model_path())
    assert r["frames"] == 3 and r["sharpest_measured"] == 1
    assert r["accepted"] == [1, 1] and 0 not in r["in_focus"] and 2 not in r["in_focus"]


def test_bench_sweep_model_option_is_used(vb, sweep, tmp_path):
    root, truth = sweep
    with pytest.raises(ModelError):
        vb.bench_sweep("chart", truth, truth["region"], root, 1, True, tmp_path / "missing.tflite")


def test_plot_sweep_writes_the_focus_curve(vb, sweep, tmp_path):
    """--plot: the stills, the pull and the fitted defocus of a literal sweep as one PNG."""
    pytest.importorskip("matplotlib")
    from sweep_fit import fit_sweep
    root, truth = sweep
    r = vb.bench_sweep("chart", truth, truth["region"], root, 1, True, default_model_path(), keep_frames=True)
    assert [s["frame"] for s in r["stills"]] == [0, 1, 2] and len(r["pull"]) == 5
    fit = fit_sweep("chart", truth, root)
    assert [f["radius_px"] for f in fit["frames"]][1] == 0.0
    out = tmp_path / "chart_x1.png"
    vb.plot_sweep(r, truth["sweeps"]["chart"], out, fit)
    img = cv2.imread(str(out))
    assert img is not None and img.shape[:2] == (600, 900)
    # not a blank canvas: the curves and the shaded range are drawn
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50
