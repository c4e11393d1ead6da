"""Evaluation metrics (numpy ROC/AUC, threshold tuning, Laplacian baseline) and the
dataset labelling functions, on literal and synthetic arrays."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from pifocus.classify import evaluate as ev
from pifocus.exc import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f"_tool_{name}", ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def ds():
    return _load_tool("dataset")


# ---- ROC / AUC ------------------------------------------------------------------------

def test_auc_literal_values():
    assert ev.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert ev.roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert ev.roc_auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    # all tied: a coin toss
    assert ev.roc_auc([0.5] * 4, [0, 1, 0, 1]) == pytest.approx(0.5)
    # one tie between a positive and a negative counts one half
    assert ev.roc_auc([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1]) == pytest.approx(0.875)
    assert np.isnan(ev.roc_auc([1, 2], [1, 1]))


def test_auc_equals_pairwise_probability():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=300), 1)  # many ties
    y = rng.random(300) < 0.4
    pos, neg = s[y], s[~y]
    pairwise = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert ev.roc_auc(s, y) == pytest.approx(pairwise)


def test_roc_curve_and_trapezoid_area():
    fpr, tpr, thr = ev.roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    assert thr[0] == np.inf and thr[-1] == 0.1
    s = np.random.default_rng(1).random(200)
    y = np.random.default_rng(2).random(200) < s
    f, t, _ = ev.roc_curve(s, y)
    area = float(np.sum(np.diff(f) * (t[1:] + t[:-1]) / 2))
    assert area == pytest.approx(ev.roc_auc(s, y))


def test_accuracy_and_best_threshold():
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    y = np.array([0, 0, 0, 1, 1, 1])
    t = ev.best_threshold(s, y)
    assert 0.3 < t <= 0.6 and ev.accuracy(s, y, t) == 1.0
    assert ev.accuracy(s, y, 0.0) == 0.5
    # all negatives: the best threshold calls nothing positive
    assert ev.accuracy([1, 2, 3], [0, 0, 0], ev.best_threshold([1, 2, 3], [0, 0, 0])) == 1.0


def test_laplacian_variance_matches_opencv_interior():
    import cv2
    rng = np.random.default_rng(3)
    tiles = rng.integers(0, 256, (4, 16, 16), dtype=np.uint8)
    got = ev.laplacian_variance(tiles)
    for t, g in zip(tiles, got):
        lap = cv2.Laplacian(t.astype(np.float64), cv2.CV_64F)[1:-1, 1:-1]
        assert g == pytest.approx(lap.var())
    assert ev.laplacian_variance(np.full((1, 8, 8), 77, np.uint8))[0] == 0.0


def test_compare_reports_both_methods_per_source():
    p = np.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.3])
    lv = np.array([500.0, 20.0, 300.0, 10.0, 200.0, 50.0])
    y = np.array([1, 1, 0, 0, 1, 0])
    src = np.array(["a", "a", "a", "a", "synthetic", "synthetic"])
    res = ev.compare(p, lv, y, src, 0.5, 100.0, real_mask=np.array([1, 1, 1, 1, 0, 0], bool))
    assert set(res) == {"all", "real", "a", "synthetic"}
    assert res["a"]["cnn"]["accuracy"] == 1.0 and res["a"]["laplacian"]["accuracy"] == 0.5
    assert res["all"]["cnn"]["n"] == 6
    assert "acc gain" in ev.format_table(res)


def test_plot_roc_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "roc.png"
    ev.plot_roc(out, {"CNN": ([0.1, 0.9, 0.8, 0.3], [0, 1, 1, 0]),
                      "Laplacian var": ([1, 3, 2, 4], [0, 1, 1, 0])})
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_tile_set_and_image_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        ev.load_tileset(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(ConfigError, match="bad.npz"):
        ev.load_tileset(bad)
    np.savez(tmp_path / "nolabels.npz", tiles=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ConfigError, match="labels"):
        ev.load_tileset(tmp_path / "nolabels.npz")
    (tmp_path / "imgs").mkdir()
    with pytest.raises(ConfigError, match="in_focus"):
        ev.load_image_folders(tmp_path / "imgs", 32)


def test_image_folders_become_labelled_tiles(tmp_path):
    import cv2
    rng = np.random.default_rng(4)
    sharp = rng.integers(0, 256, (64, 96), dtype=np.uint8)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4)
    (tmp_path / "in_focus").mkdir()
    (tmp_path / "out_of_focus").mkdir()
    cv2.imwrite(str(tmp_path / "in_focus" / "a.png"), sharp)
    cv2.imwrite(str(tmp_path / "out_of_focus" / "b.png"), blurred)
    (tmp_path / "in_focus" / "junk.jpg").write_text("not an image")
    d = ev.load_image_folders(tmp_path, 32)
    assert d["tiles"].shape[1:] == (32, 32)
    assert (d["labels"] == 1).sum() == 6  # 2x3 grid of textured tiles
    assert d["labels"].dtype == np.uint8


# ---- dataset labelling ----------------------------------------------------------------

def test_tile_energy_matches_direct_computation(ds):
    import cv2
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (70, 90), dtype=np.uint8)
    e = ds.tile_energy(img, 32, 16)
    assert e.shape == (3, 4)
    lap = cv2.Laplacian(img.astype(np.float32), cv2.CV_32F)
    assert e[1, 2] == pytest.approx(lap[16:48, 32:64].var(), rel=1e-4)


def test_label_pair_margin_and_flat(ds):
    a = np.array([1000.0, 100.0, 500.0, 10.0, 300.0])
    b = np.array([100.0, 1000.0, 400.0, 1.0, 299.0])
    lab = ds.label_pair(a, b, margin=3.0, flat=60.0)
    # A sharper, B sharper, ambiguous (ratio 1.25), flat (both < 60), ambiguous
    assert lab.tolist() == [1, -1, 0, 0, 0]


def test_label_pair_on_blurred_image_halves(ds):
    import cv2
    rng = np.random.default_rng(6)
    scene = cv2.GaussianBlur(rng.random((64, 128)).astype(np.float32), (0, 0), 0.7) * 255
    blurred = cv2.GaussianBlur(scene, (0, 0), 3)
    a = scene.copy()
    a[:, 64:] = blurred[:, 64:]  # A: left half sharp
    b = scene.copy()
    b[:, :64] = blurred[:, :64]  # B: right half sharp
    lab = ds.label_pair(ds.tile_energy(a, 32, 32), ds.tile_energy(b, 32, 32))
    assert lab[:, :2].tolist() == [[1, 1], [1, 1]]
    assert lab[:, 2:].tolist() == [[-1, -1], [-1, -1]]


def test_blur_fit_finds_the_disk_radius_and_rejects_misregistered_pairs(ds):
    from pifocus.sources.simulated import defocus
    rng = np.random.default_rng(3)
    import cv2
    sharp = ((cv2.GaussianBlur(rng.random((128, 128)).astype(np.float32), (0, 0), 0.8) - 0.5) * 600
             + 128).clip(0, 255).astype(np.float32)
    for r_true, expect_ok in ((3.0, True), (0.75, False)):  # clearly defocused / only softer
        blurry = defocus(sharp, r_true)
        r, c = ds.blur_fit(sharp, blurry, 32, 16)
        inner = (slice(1, -1), slice(1, -1))  # away from the border reflection
        assert np.all(np.abs(r[inner] - r_true) <= 0.5) and np.all(c[inner] > 0.97)
        ok = ds.fit_ok(r, c)
        assert np.all(ok[inner] == expect_ok)
    # the same content shifted by 3 px (misregistration) does not fit at any radius
    moved = np.roll(defocus(sharp, 3.0), 3, axis=1)
    r, c = ds.blur_fit(sharp, moved, 32, 16)
    assert np.median(c) < ds.FIT_MIN_CORR
    assert not ds.fit_ok(r, c).any()


def test_label_sweep(ds):
    # cell 0: peak at frame 2; cell 1: flat energy everywhere (never in focus); cell 2: tiny
    e = np.array([[100, 200, 5], [400, 210, 6], [1000, 205, 7], [800, 200, 6], [90, 190, 5]], float)
    lab = ds.label_sweep(e, keep=0.7, out_frac=0.2, min_range=6.0, flat=60.0)
    assert lab[:, 0].tolist() == [0, -1, 1, 1, 0]
    assert (lab[:, 1] == -1).all() and (lab[:, 2] == -1).all()


def test_label_blur_coc(ds):
    assert ds.label_blur([0.0, 0.5, 0.75, 1.0, 1.9, 2.0, 8.0]).tolist() == [1, 1, 1, -1, -1, 0, 0]


def test_scene_split_is_deterministic_and_by_scene(ds):
    names = [f"set_{i:02d}" for i in range(200)]
    a = [ds.scene_split(n) for n in names]
    assert a == [ds.scene_split(n) for n in names]
    frac = a.count("val") / len(a)
    assert 0.15 < frac < 0.35


def test_synth_tile_blur_lowers_energy_and_flat_tiles_are_smooth(ds):
    rng = np.random.default_rng(7)
    patch = (rng.random((80, 80)) * 255).astype(np.uint8)
    sharp, snr_sharp = ds.synth_tile(patch, 0.0, rng, 32, return_snr=True)
    blurred, snr_blur = ds.synth_tile(patch, 5.0, rng, 32, return_snr=True)
    assert sharp.shape == (32, 32) and sharp.dtype == np.uint8
    assert ds.tile_energy(sharp, 32, 32)[0, 0] > 10 * ds.tile_energy(blurred, 32, 32)[0, 0]
    assert snr_sharp > snr_blur
    noisy = ds.synth_tile(patch, 0.0, rng, 32, gain=16.0, jpeg_quality=60)
    assert noisy.shape == (32, 32)
    flat = ds.flat_tile(np.random.default_rng(8), 32)
    assert flat.shape == (32, 32) and flat.std() < 25


def test_dataset_bad_layout_is_one_line_error(ds, tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        ds.mfifb_scenes(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    with pytest.raises(ConfigError, match="SET_NN"):
        ds.mfifb_scenes(tmp_path)
    assert ds.main(["--data", str(tmp_path), "--out", str(tmp_path / "o.npz")]) == 2


def test_dataset_builds_from_a_tiny_fake_layout(ds, tmp_path):
    import cv2
    rng = np.random.default_rng(9)
    root = tmp_path / "data"
    for k in range(2):
        d = root / "multifocus-pairs" / "mfifb" / f"fake_{k:02d}"
        d.mkdir(parents=True)
        scene = ((cv2.GaussianBlur(rng.random((128, 128)).astype(np.float32), (0, 0), 0.8) - 0.5) * 500 + 128).clip(0, 255)
        blurred = cv2.GaussianBlur(scene, (0, 0), 3)
        a, b = scene.copy(), scene.copy()
        a[:, 64:], b[:, :64] = blurred[:, 64:], blurred[:, :64]
        cv2.imwrite(str(d / f"fake_{k:02d}_A.png"), a.astype(np.uint8))
        cv2.imwrite(str(d / f"fake_{k:02d}_B.png"), b.astype(np.uint8))
    sw = root / "focus-sweeps" / "fake"
    sw.mkdir(parents=True)
    base = ((cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 0.8) - 0.5) * 500 + 128).clip(0, 255)
    for i, s in enumerate([4, 2, 0.01, 2, 4]):
        cv2.imwrite(str(sw / f"f{i}.png"), cv2.GaussianBlur(base, (0, 0), s).astype(np.uint8))
    out = tmp_path / "t.npz"
    meta = ds.build(root, out, tile=32, n_flat=8, sheet=tmp_path / "sheet.png",
                    sources=("mfifb", "sweep", "synthetic"))
    z = np.load(out)
    assert z["tiles"].dtype == np.uint8 and z["tiles"].shape[1:] == (32, 32)
    assert set(z["source"].tolist()) == {"mfifb", "sweep", "synthetic", "synthetic-flat"}
    assert z["labels"].min() == 0 and z["labels"].max() == 1
    # no scene in both splits
    scenes_train = set(z["scene"][z["split"] == "train"].tolist())
    assert not scenes_train & set(z["scene"][z["split"] == "val"].tolist())
    assert (tmp_path / "sheet.png").is_file() and meta["n"] == len(z["labels"])
