"""End to end: pifocus.classify.evaluate on a small tile set and image folders, with the
shipped model, against the Laplacian baseline."""

import json

import numpy as np
import pytest

from pifocus.classify import evaluate as ev


def _tiles(rng, n, sharp, blur=4.0):
    import cv2
    out = []
    for _ in range(n):
        t = (rng.random((48, 48)) * 255).astype(np.float32)
        t = cv2.GaussianBlur(t, (0, 0), 0.6 if sharp else blur)
        t = (t - t.mean()) * (60.0 / max(t.std(), 1e-3)) + 128  # same contrast either way
        out.append(np.clip(t[8:40, 8:40], 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture
def tileset(tmp_path):
    rng = np.random.default_rng(0)
    tiles = np.concatenate([_tiles(rng, 20, True), _tiles(rng, 20, False)] * 2)
    labels = np.array(([1] * 20 + [0] * 20) * 2, np.uint8)
    split = np.array(["train"] * 40 + ["val"] * 40)
    source = np.array(["a"] * 60 + ["synthetic"] * 20)
    path = tmp_path / "t.npz"
    np.savez(path, tiles=tiles, labels=labels, split=split, source=source)
    return path


def test_evaluate_tile_set_with_shipped_model(tileset, tmp_path):
    res = ev.evaluate(tiles_path=tileset, split="val", plot=tmp_path / "roc.png")
    g = res["groups"]
    assert set(g) >= {"all", "real", "a", "synthetic"}
    # contrast-equalized tiles: the CNN separates them, the tuned Laplacian threshold too
    assert g["all"]["cnn"]["auc"] > 0.95 and g["all"]["cnn"]["accuracy"] > 0.9
    assert g["all"]["cnn"]["n"] == 40
    assert res["laplacian_threshold"] > 0
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_main_json_and_errors(tileset, tmp_path, capsys):
    assert ev.main(["--tiles", str(tileset), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "val" and "laplacian" in out["groups"]["all"]
    assert ev.main(["--tiles", str(tmp_path / "none.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pifocus: error:") and "none.npz" in err and err.count("\n") == 1
    wrong = tmp_path / "w.npz"
    np.savez(wrong, tiles=np.zeros((4, 16, 16), np.uint8), labels=np.zeros(4, np.uint8))
    assert ev.main(["--tiles", str(wrong)]) == 2
    assert "--tile 32" in capsys.readouterr().err


def test_evaluate_image_folders_uses_metadata_threshold(tmp_path):
    import cv2
    rng = np.random.default_rng(1)
    for name, sharp in (("in_focus", True), ("out_of_focus", False)):
        (tmp_path / name).mkdir()
        tiles = _tiles(rng, 6, sharp, blur=2.0)  # blurred, but textured enough to keep
        cv2.imwrite(str(tmp_path / name / "x.png"), np.concatenate(list(tiles), axis=1))
    res = ev.evaluate(images=tmp_path)
    assert res["groups"]["all"]["cnn"]["n_in_focus"] == 6
    assert res["groups"]["all"]["cnn"]["n"] > 6
    assert res["groups"]["all"]["cnn"]["accuracy"] > 0.8


@pytest.fixture
def blur_tileset(tmp_path):
    """Chart tiles with known disk radii and motion lengths, the blur_dataset.py layout
    (in-focus label 255 = none on motion tiles)."""
    import cv2
    from pifocus.sources.simulated import defocus, focus_chart, sensor
    chart = focus_chart(448, 320, seed=7)
    rng = np.random.default_rng(0)
    tiles, labels, radius, motion, split = [], [], [], [], []
    sharp = np.clip(chart * 255, 0, 255)
    pos = [(y, x) for y in range(0, 288, 32) for x in range(0, 416, 32)
           if sharp[y:y + 32, x:x + 32].std() >= 25]
    for r, length in ((0.0, 0.0), (1.0, 0.0), (3.0, 0.0), (6.0, 0.0), (0.0, 9.0)):
        img = defocus(chart, r) if r else chart
        if length:
            img = cv2.filter2D(img, -1, np.full((1, int(length)), 1 / length, np.float32))
        img = sensor(img, rng)
        for y, x in pos:
            tiles.append(img[y:y + 32, x:x + 32])
            labels.append(255 if length else (1 if r <= 0.75 else 0))
            radius.append(np.nan if length else r)
            motion.append(length)
            split.append("val")
    n = len(tiles)
    tiles += tiles[:4]  # a few train tiles so the Laplacian threshold can be tuned
    labels += [1, 0, 1, 0]
    radius += [np.nan] * 4
    motion += [0.0] * 4
    split += ["train"] * 4
    path = tmp_path / "blur.npz"
    np.savez(path, tiles=np.stack(tiles), labels=np.array(labels, np.uint8),
             radius_px=np.array(radius, np.float32), motion_px=np.array(motion, np.float32),
             split=np.array(split), source=np.array(["chart-defocus"] * (n + 4)),
             texture_snr=np.full(n + 4, 20.0, np.float32))
    return path


def test_evaluate_reports_blur_and_motion_for_a_model_with_heads(blur_tileset, capsys):
    from pifocus.classify import load_classifier
    if not load_classifier().has_blur:
        pytest.skip("the shipped model has no blur/motion heads")
    res = ev.evaluate(tiles_path=blur_tileset, split="val")
    g = res["blur"]["all"]
    bins = {b["bin"]: b for b in g["radius_bins"]}
    assert bins["0-0.5"]["n"] > 0 and bins["6-8"]["n"] > 0 and bins["1-1.5"]["mae_px"] < 1.0
    assert g["motion"]["n_motion"] > 0 and g["motion"]["n_still"] > 0
    assert g["motion"]["tpr"] > 0.5 and g["motion"]["fpr"] < 0.5
    # the in-focus AUC is computed on the labelled (non-motion) tiles only
    assert res["groups"]["all"]["cnn"]["n"] == 4 * bins["0-0.5"]["n"]
    assert ev.main(["--tiles", str(blur_tileset), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "radius_bins" in out["blur"]["all"]
    assert ev.main(["--tiles", str(blur_tileset)]) == 0
    text = capsys.readouterr().out
    assert "blur_px MAE" in text and "motion flag" in text


def test_evaluate_with_a_binary_model_has_no_blur_section(blur_tileset, tiny_model_path, tmp_path):
    d = dict(np.load(blur_tileset))
    d["tiles"] = d["tiles"][:, 8:24, 8:24]  # the tiny model takes 16 px tiles
    small = tmp_path / "small.npz"
    np.savez(small, **d)
    res = ev.evaluate(model_path=tiny_model_path, tiles_path=small, split="val")
    assert "blur" not in res and res["groups"]["all"]["cnn"]["n"] > 0
