"""tools/blur_dataset.py and tools/train_heads.py on literal arrays: the PSFs, the radius fit,
the parameter checks and the training targets (no TensorFlow, no shared data)."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from pifocus.classify import blur_metrics as bm
from pifocus.classify.heads import OutputLayout
from pifocus.exc import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _load_tool(name):
    if str(ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location(f"_tool_{name}", ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bd():
    return _load_tool("blur_dataset")


@pytest.fixture(scope="module")
def th():
    return _load_tool("train_heads")


def _second_moment_extent(k):
    """Length of a line PSF from its second moment along its long axis (box: L^2/12)."""
    yy, xx = np.mgrid[0:k.shape[0], 0:k.shape[1]].astype(float)
    cy, cx = (k * yy).sum(), (k * xx).sum()
    cov = np.array([[(k * (xx - cx) ** 2).sum(), (k * (xx - cx) * (yy - cy)).sum()],
                    [(k * (xx - cx) * (yy - cy)).sum(), (k * (yy - cy) ** 2).sum()]])
    return math.sqrt(12 * np.linalg.eigvalsh(cov)[-1]), np.linalg.eigvalsh(cov)[0], (cy, cx)


@pytest.mark.parametrize("length, angle", [(3, 0.0), (7, 0.7), (15, math.pi / 2)])
def test_motion_kernel_is_a_centred_line_of_the_given_length(bd, length, angle):
    k = bd.motion_kernel(length, angle)
    assert k.dtype == np.float32 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert k.sum() == pytest.approx(1.0, abs=1e-5) and k.min() >= 0
    extent, minor, (cy, cx) = _second_moment_extent(k)
    assert extent == pytest.approx(length, abs=0.45)  # bilinear splats add ~1/6 px^2
    assert minor < 0.2  # thin
    assert (cy, cx) == pytest.approx(((k.shape[0] - 1) / 2, (k.shape[1] - 1) / 2), abs=0.05)


def test_shake_kernel_is_normalized_and_not_a_point(bd):
    rng = np.random.default_rng(0)
    for length in (3.0, 8.0, 15.0):
        k = bd.shake_kernel(length, rng)
        assert k.sum() == pytest.approx(1.0, abs=1e-5)
        extent, _, _ = _second_moment_extent(k)
        assert 0.3 * length <= extent <= length + 0.45


def test_motion_blur_smears_along_its_direction_only(bd):
    img = np.zeros((41, 41), np.float32)
    img[20, 20] = 1.0
    out = bd.apply_psf(img, bd.motion_kernel(9, 0.0))
    assert np.count_nonzero(out[20] > 1e-3) >= 8 and np.count_nonzero(out[:, 20] > 1e-3) <= 2


def test_fit_radius_recovers_known_disk_radii(bd):
    from pifocus.sources.simulated import defocus, focus_chart
    chart = (focus_chart(320, 240, seed=5) * 255).astype(np.float32)
    for r in (1.0, 1.6, 2.4, 3.3, 5.5):
        est, corr = bd.fit_radius(chart, defocus(chart, r), 32, 32)
        assert np.median(est) == pytest.approx(r, abs=0.12)
        assert np.median(corr) > 0.99


def test_downsample_halves_with_area_average(bd):
    img = np.array([[0, 100], [200, 100]], np.uint8)
    assert bd.downsample(img, 2).tolist() == [[100]]
    assert bd.downsample(img, 1) is img


@pytest.mark.parametrize("kw", [{"downsample": 5}, {"motion_px": (5.0, 3.0)}, {"max_radius_px": 40.0},
                                {"jpeg_fraction": 1.5}, {"gains": (0.5,)}, {"tile_px": 4}])
def test_bad_params_are_config_errors(bd, kw):
    with pytest.raises(ConfigError, match="blur dataset"):
        bd.BlurSetParams(**kw)


def _checker(n=80, cell=3, lo=40.0, hi=200.0):
    """A literal checkerboard (exactly sharp, pixel-aligned edges)."""
    yy, xx = np.mgrid[0:n, 0:n]
    return np.where(((yy // cell) + (xx // cell)) % 2 == 0, lo, hi).astype(np.float32)


def test_sharpness_retention_separates_sharp_from_pre_blurred_sources(bd):
    from pifocus.sources.simulated import defocus
    sharp = _checker()
    q0 = bd.sharpness_retention(sharp, 24, 32)
    q06 = bd.sharpness_retention(defocus(sharp, 0.6), 24, 32)
    q1 = bd.sharpness_retention(defocus(sharp, 1.0), 24, 32)
    assert q0 < 0.2 < q06 < q1 < 1.0, (q0, q06, q1)
    # white noise of a known sigma is not detail: removing it keeps a noisy sharp source sharp
    noisy = sharp + np.random.default_rng(0).normal(0, 3.0, sharp.shape).astype(np.float32)
    assert bd.sharpness_retention(noisy, 24, 32, 3.0) == pytest.approx(q0, abs=0.03)
    # nothing above the noise: no verdict
    assert math.isnan(bd.sharpness_retention(np.full((80, 80), 100.0, np.float32), 24, 32, 2.0))


def test_screen_sources_keeps_procedural_and_drops_soft_real_patches(bd):
    from pifocus.sources.simulated import defocus
    p = bd.BlurSetParams(source_max_q=0.24)
    sharp = np.clip(_checker(), 0, 255).astype(np.uint8)
    soft = np.clip(defocus(_checker(), 1.0), 0, 255).astype(np.uint8)
    patches = [bd.Patch(sharp, "mfifb:a", "train"), bd.Patch(soft, "mfifb:b", "train"),
               bd.Patch(soft, "leaves:0", "train")]
    out = bd.screen_sources(patches, p)
    assert [q.blur_ok for q in patches] == [True, False, True]
    assert out["real"] == 2 and out["soft"] == 1
    assert patches[1].source_q > p.source_max_q > patches[0].source_q
    assert bd.BlurSetParams().source_max_q == 1.0  # off by default: every patch keeps its labels
    with pytest.raises(ConfigError, match="source_max_q"):
        bd.BlurSetParams(source_max_q=0.0)


def test_render_variant_shapes_and_texture_numbers(bd):
    from pifocus.sources.simulated import focus_chart
    p = bd.BlurSetParams(gains=(1.0,), jpeg_fraction=0.0)
    lum = focus_chart(400, 300, seed=2)[100:100 + p.context_px, 150:150 + p.context_px]
    rng = np.random.default_rng(0)
    sharp, i0 = bd.render_variant(lum, rng, p, radius_px=0.0)
    blurred, i1 = bd.render_variant(lum, rng, p, radius_px=3.0)
    moving, i2 = bd.render_variant(lum, rng, p, motion=bd.motion_kernel(9, 0.3))
    assert sharp.shape == (32, 32) and sharp.dtype == np.uint8
    assert i1["snr"] < i0["snr"] and i1["texture_snr"] == pytest.approx(i0["texture_snr"], rel=0.5)
    assert i2["motion_visibility"] > 2


def test_training_targets_mask_unlabelled_heads(th):
    lay = OutputLayout(0, 1, th.THRESHOLDS_PX, 1 + len(th.THRESHOLDS_PX))
    focus = np.array([1, 0, 255, 255, 255])
    radius = np.array([np.nan, np.nan, 1.25, np.nan, 0.0])
    motion = np.array([0.0, 0.0, 0.0, 7.0, np.nan])
    y = th.targets(lay, focus, radius, motion)
    assert y.shape == (5, 10)
    assert y[:, 0].tolist() == [1, 0, -1, -1, -1]
    assert (y[[0, 1, 3], 1:9] == -1).all()
    np.testing.assert_allclose(y[2, 1:9], [1, 1, 0.5, 0, 0, 0, 0, 0])
    assert (y[4, 1:9] == 0).all()
    assert y[:, 9].tolist() == [0, 0, 0, 1, -1]
    # motion of 1-3 px is neither "still" nor "motion-blurred": masked
    assert th.targets(lay, [255], [np.nan], [2.0])[0, 9] == -1


def test_blur_metrics_on_literal_numbers():
    true = np.array([0, 0, 1, 1, 2, 2, 4, 10, np.nan])
    pred = np.array([0.2, 0.4, 1.0, 1.4, 2.0, 2.2, 4.5, 8.0, 3.0])
    rows = {r["bin"]: r for r in bm.radius_bins(pred, true)}
    assert rows["0-0.5"]["n"] == 2 and rows["0-0.5"]["mae_px"] == pytest.approx(0.3)
    assert rows["1-1.5"]["mae_px"] == pytest.approx(0.2)
    assert rows[">=8"]["mae_px"] == pytest.approx(0.0)  # saturated head vs clipped truth
    assert bm.mae_up_to(pred, true, 3.0) == pytest.approx((0.2 + 0.4 + 0 + 0.4 + 0 + 0.2) / 6)
    by = bm.mean_by_radius(pred, true)
    assert [r["true_px"] for r in by] == [0, 1, 2, 4, 10] and bm.is_monotonic(by)
    rates = bm.motion_rates([0.9, 0.2, 0.7, 0.1, 0.6], [5, 4, 0, 0, 2])
    assert rates["tpr"] == 0.5 and rates["fpr"] == 0.5 and rates["n_motion"] == 2 and rates["n_still"] == 2
    rep = bm.blur_report(pred, np.zeros(9), true, np.zeros(9), np.array(["a"] * 9))
    assert rep["all"]["monotonic"] and "a" in rep and "motion" in rep["all"]
    assert "MAE" in bm.format_blur_report(rep)


def test_mae_by_contrast_bins_on_literal_numbers():
    pred = np.array([0.0, 1.0, 2.0, 0.5, 3.0, 9.0])
    true = np.array([0.0, 0.0, 2.0, 1.0, 3.0, 8.0])   # the 8 px tile is outside 0-3 px
    std = np.array([2.0, 5.0, 8.0, 30.0, 50.0, 30.0])
    rows = bm.mae_by_bins(pred, true, std, bm.CONTRAST_BIN_EDGES_DN)
    assert [r["bin"] for r in rows] == ["0-6", "6-12", "12-24", ">=24"]
    assert [r["n"] for r in rows] == [2, 1, 0, 2]
    assert rows[0]["mae_px"] == pytest.approx(0.5) and rows[1]["mae_px"] == 0.0
    assert math.isnan(rows[2]["mae_px"]) and rows[3]["mae_px"] == pytest.approx(0.25)
    rep = bm.blur_report(pred, np.zeros(6), true, np.zeros(6), np.array(["a"] * 6), contrast_dn=std)
    assert rep["a"]["mae_0_3_by_contrast"][3]["n"] == 2
    assert "by tile std (DN): 0-6 0.50 (n 2)" in bm.format_blur_report(rep)


@pytest.mark.parametrize("arch", ["mh_tap3", "mh_tap2", "mh_tap2r"])
def test_shared_trunk_heads_keep_the_v1_in_focus_output(th, arch):
    """``--arch mh_tap2 / mh_tap3 / mh_tap2r``: the heads read the frozen v1 net's own features (tap2r
    beside a small branch of its own from the raw tile), so the
    model's first output is v1's in-focus logit exactly, and only the head layers train."""
    pytest.importorskip("keras")
    v1 = th.keras_from_baseline_tflite(th.ROOT / "models" / "focus_cnn_v1_int8.tflite")
    model = th.with_shared_trunk(v1, arch, n_heads=9)
    x = np.random.default_rng(0).normal(0, 1, (8, 32, 32, 1)).astype(np.float32)
    out = np.asarray(model.predict(x, verbose=0))
    assert out.shape == (8, 10)
    np.testing.assert_allclose(out[:, 0], np.asarray(v1.predict(x, verbose=0))[:, 0], rtol=1e-5, atol=1e-5)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable and all(name.startswith("blur_") for name in trainable)
    with pytest.raises(ValueError, match="mh_tap"):
        th.with_shared_trunk(v1, "mh_base", n_heads=9)
