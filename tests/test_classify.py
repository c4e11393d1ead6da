"""The classifier stage: normalization, metadata, the LiteRT runner and its errors."""

import json
import shutil

import numpy as np
import pytest

from pifocus.classify import ModelInfo, default_model_path, load_classifier, normalize_tiles
from pifocus.classify.litert import LiteRTClassifier
from pifocus.exc import ModelError


def test_normalize_tiles_removes_brightness_and_contrast():
    rng = np.random.default_rng(0)
    t = rng.integers(60, 120, (3, 16, 16)).astype(np.uint8)
    a = normalize_tiles(t)
    b = normalize_tiles(t.astype(np.float32) * 2 + 10)
    assert a.shape == (3, 16, 16, 1) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_normalize_tiles_does_not_amplify_a_flat_tile():
    rng = np.random.default_rng(1)
    flat = (128 + rng.normal(0, 0.5, (1, 16, 16))).astype(np.float32)
    out = normalize_tiles(flat, std_floor=4.0)
    assert np.abs(out).max() < 1.0


def test_normalize_tiles_clips():
    t = np.zeros((1, 16, 16), np.float32)
    t[0, 0, 0] = 255
    assert normalize_tiles(t, clip=3.0).max() == pytest.approx(3.0)


def test_model_info_roundtrip_and_extra(tmp_path):
    info = ModelInfo(name="m", version="2", tile_px=32, threshold=0.6, extra={"auc": 0.98})
    p = tmp_path / "m.json"
    info.save(p)
    back = ModelInfo.load(p)
    assert back == info and back.extra == {"auc": 0.98}


@pytest.mark.parametrize("data, match", [
    ({"tile_px": 4}, "tile_px"),
    ({"threshold": 1.5}, "threshold"),
    ({"normalization": "minmax"}, "normalization"),
    ({"tile_px": "big"}, "bad value"),
])
def test_bad_metadata_is_a_model_error(tmp_path, data, match):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=match):
        ModelInfo.load(p)


def test_tiny_model_runs_int8_and_batches(tiny_model_path):
    c = LiteRTClassifier(tiny_model_path)
    assert c.input_dtype == np.int8 and c.tile_px == 16
    rng = np.random.default_rng(0)
    sharp = (rng.random((37, 16, 16)) > 0.5).astype(np.uint8) * 200
    flat = np.full((3, 16, 16), 90, np.uint8)
    p = c.predict(np.concatenate([sharp, flat]))
    assert p.shape == (40,) and p.dtype == np.float32
    assert np.all(p[:37] > 0.9) and np.all(p[37:] < 0.1)
    # Batching must not change results: one at a time gives the same numbers.
    one = np.array([c.predict(t[None])[0] for t in np.concatenate([sharp[:5], flat])])
    np.testing.assert_allclose(one, np.concatenate([p[:5], p[37:]]), atol=1e-6)
    assert c.predict(np.zeros((0, 16, 16), np.uint8)).shape == (0,)
    # 40 tiles go as 32 + 8 and 77 as 32 + 32 + 8 + 4 + 1, nothing padded; same numbers as one by one
    from pifocus.classify.litert import BATCH_BUCKETS
    assert max(BATCH_BUCKETS) == 32
    many = np.concatenate([sharp, flat, sharp])
    np.testing.assert_allclose(c.predict(many), np.concatenate([p, p[:37]]), atol=1e-6)
    every = np.array([c.predict(t[None])[0] for t in many])
    np.testing.assert_allclose(c.predict(many), every, atol=1e-6)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="not found.*--no-cnn"):
        LiteRTClassifier(tmp_path / "none.tflite")


def test_not_a_tflite_file(tmp_path, tiny_model_path):
    p = tmp_path / "bad.tflite"
    p.write_bytes(b"this is not a model at all")
    shutil.copy(tiny_model_path.with_suffix(".json"), p.with_suffix(".json"))
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        LiteRTClassifier(p)


def test_missing_metadata(tmp_path, tiny_model_path):
    p = tmp_path / "m.tflite"
    shutil.copy(tiny_model_path, p)
    with pytest.raises(ModelError, match=r"m\.json.*not found"):
        LiteRTClassifier(p)


def test_wrong_input_shape_for_metadata(tmp_path, tiny_model_path):
    p = tmp_path / "m.tflite"
    shutil.copy(tiny_model_path, p)
    ModelInfo(tile_px=32).save(p.with_suffix(".json"))
    with pytest.raises(ModelError, match=r"input shape \(1, 16, 16, 1\) does not match"):
        LiteRTClassifier(p)


def test_shipped_model_loads_when_present():
    path = default_model_path()
    if not path.exists():
        pytest.skip("no shipped model in this checkout yet")
    c = load_classifier()
    assert c.tile_px == c.info.tile_px
    assert c.predict(np.full((2, c.tile_px, c.tile_px), 100, np.uint8)).shape == (2,)


def test_shipped_model_metadata_carries_its_checksum():
    from pifocus.classify import ModelInfo, default_model_path, file_sha256, metadata_path_for
    info = ModelInfo.load(metadata_path_for(default_model_path()))
    assert info.extra.get("sha256") == file_sha256(default_model_path())
