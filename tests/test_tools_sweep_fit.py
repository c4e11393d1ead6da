"""tools/sweep_fit.py: the relative defocus fit on literal arrays (the procedural chart and
random texture through known disk PSFs and shifts), and on the shared sweeps the judged truth
read against it (skipped without ``../shared/data``)."""

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pifocus.sources.simulated import defocus, focus_chart

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sf():
    if str(ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location("_tool_sweep_fit", ROOT / "tools" / "sweep_fit.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def scene():
    """A sharp 160 x 160 region: the procedural chart's centre with fine random texture."""
    chart = focus_chart(320, 240, seed=3).astype(np.float32)
    rng = np.random.default_rng(7)
    tex = cv2.GaussianBlur(rng.normal(0, 1, (160, 160)).astype(np.float32), (0, 0), 0.7)
    img = 0.7 * chart[40:200, 80:240] + 0.12 * tex / tex.std()
    return np.clip(img * 200 + 20, 0, 255).astype(np.float32)


@pytest.mark.parametrize("radius", [0.0, 0.75, 1.0, 1.5, 2.5, 4.0])
def test_fit_finds_the_disk_radius(sf, scene, radius):
    rng = np.random.default_rng(int(radius * 10))
    blurry = defocus(scene, radius) + rng.normal(0, 1.0, scene.shape).astype(np.float32)
    fit = sf.relative_defocus(scene, blurry)
    assert fit["radius_px"] == radius
    assert fit["corr"] > 0.95


def test_fit_is_gain_and_offset_invariant(sf, scene):
    fit = sf.relative_defocus(scene, 0.6 * defocus(scene, 1.25) + 30.0)
    assert fit["radius_px"] == 1.25


def test_unrelated_content_has_no_fit(sf, scene):
    other = np.random.default_rng(1).uniform(0, 255, scene.shape).astype(np.float32)
    fit = sf.relative_defocus(scene, other)
    assert fit["radius_px"] is None and fit["corr"] < 0.9


def test_bad_shapes_are_a_value_error(sf, scene):
    with pytest.raises(ValueError, match="same 2-D shape"):
        sf.relative_defocus(scene, scene[:-1])
    with pytest.raises(ValueError, match="border_px"):
        sf.relative_defocus(scene[:10, :10], scene[:10, :10])


def test_registration_undoes_a_subpixel_shift_and_zoom(sf, scene):
    """Focus breathing: the same region 1.5 % larger and shifted 1.3 px reads blurred by
    several pixels unregistered, and its true radius once registered."""
    h, w = scene.shape
    warp = np.float32([[1.015, 0, -1.3 - 0.0075 * w], [0, 1.015, 0.8 - 0.0075 * h]])
    moved = cv2.warpAffine(defocus(scene, 0.75), warp, (w, h), flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT)
    raw = sf.relative_defocus(scene, moved)
    reg = sf.relative_defocus(scene, sf.register(scene, moved))
    assert raw["radius_px"] is None or raw["radius_px"] >= 1.5
    assert reg["radius_px"] in (0.5, 0.75, 1.0)
    assert reg["corr"] > raw["corr"]


#: Sweeps whose judged region holds one plane of the subject (the others mix planes in the
#: region: the fit of the whole region then reads the frame's mix, see the tool's docs).
SINGLE_PLANE = ("beetle_mandibles_macro", "canon-36", "shotgun_stilllife", "flies_in_amber_macro",
                "wicker_balls_phone")


_FITTED = {}


@pytest.fixture
def fitted(sf, shared_data):
    """The single-plane sweeps fitted once per session (about 5 s)."""
    if not _FITTED:
        from verdict_bench import load_truth
        truth = load_truth()
        _FITTED["v"] = truth, {name: sf.fit_sweep(name, truth, shared_data) for name in SINGLE_PLANE}
    return _FITTED["v"]


def test_judged_ranges_agree_with_the_fit(fitted):
    """The by-eye ranges against physics: within four frames of the judged sharpest frame the
    fitted defocus grows away from it; every accepted frame is within 1.25 px of it, every
    frame outside the accepted and near frames at least 1 px from it."""
    truth, res = fitted
    for name, r in res.items():
        t = truth["sweeps"][name]
        radius = {f["frame"]: f["radius_px"] for f in r["frames"]}
        best, (a0, a1) = t["sharpest"], t["acceptable"]
        assert radius[best] == 0.0, name
        for step in (1, -1):
            seq = [radius[i] for i in range(best, best + 5 * step, step) if i in radius]
            assert all(x is not None for x in seq), (name, seq)
            assert all(b >= a for a, b in zip(seq, seq[1:])), (name, step, seq)
        for i, rad in radius.items():
            if a0 <= i <= a1:
                assert rad <= 1.25, (name, i, rad)
            elif i not in t.get("near", []) and abs(i - best) <= 4:
                assert rad >= 1.0, (name, i, rad)


def test_near_frames_are_further_than_accepted_ones(sf, fitted):
    """What a single-frame estimator must resolve: the accepted frames (median 0.75 px from
    the sharpest) against the near ones (1-2 px) -- a fraction of a pixel."""
    _, res = fitted
    s = sf.summarize(list(res.values()))
    assert s["accepted"] and s["near"]
    assert np.median(s["accepted"]) < np.median(s["near"]) <= 2.0
    assert max(s["accepted"]) <= 1.25
