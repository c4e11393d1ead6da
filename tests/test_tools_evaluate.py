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
