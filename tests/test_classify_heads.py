"""The output layout ("heads") of a focus model: validation, decoding, the runner's binary
mode for models without blur/motion heads, and metadata that does not fit the tensor."""

import json
import logging
import shutil

import numpy as np
import pytest

from pifocus.classify import ModelInfo, default_model_path, metadata_path_for
from pifocus.classify.heads import OutputLayout, TilePredictions
from pifocus.classify.litert import LiteRTClassifier
from pifocus.exc import ModelError

TH = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


def full_layout():
    return OutputLayout(in_focus=0, blur=1, blur_thresholds_px=TH, motion=9)


def test_layout_sizes_and_roundtrip():
    lay = full_layout()
    assert lay.n_outputs == 10 and lay.has_blur and lay.has_motion and lay.max_blur_px == 8.0
    back = OutputLayout.from_dict(json.loads(json.dumps(lay.to_dict())))
    assert back == lay
    assert OutputLayout().n_outputs == 1 and not OutputLayout().has_blur


@pytest.mark.parametrize("data, match", [
    ({"in_focus": 0, "blur": 1, "blur_thresholds_px": [1, 0.5], "motion": 3}, "increasing"),
    ({"in_focus": 0, "blur": 1, "blur_thresholds_px": [0.5, 1], "motion": 1}, "exactly once"),
    ({"in_focus": 0, "blur": 2, "blur_thresholds_px": [0.5, 1], "motion": 4}, "exactly once"),
    ({"in_focus": 0, "blur": 1}, "come together"),
    ({"in_focus": 0, "motion": 1, "colour": 2}, "unknown key"),
    ({"in_focus": "zero"}, "integer"),
    ({"in_focus": 0, "motion": 1, "n_outputs": 3}, "n_outputs"),
    ([0, 1, 2], "JSON object"),
])
def test_bad_layouts_are_model_errors(data, match):
    with pytest.raises(ModelError, match=match):
        OutputLayout.from_dict(data, "m.json")


def test_thermometer_code_decodes_exactly():
    lay = full_layout()
    r = np.array([0.0, 0.3, 0.5, 1.2, 2.0, 2.7, 5.0, 7.9, 8.0, 12.0])
    codes = lay.blur_targets(r)
    assert codes.shape == (10, 8) and codes.min() >= 0 and codes.max() <= 1
    np.testing.assert_allclose(lay.decode_blur(codes), np.minimum(r, 8.0), atol=1e-5)
    # monotone in every logit
    eps = 1e-4
    logit = np.log((codes + eps) / (1 - codes + eps))
    raw = np.zeros((10, 10), np.float32)
    raw[:, 1:9] = logit
    pred = lay.decode(raw)
    np.testing.assert_allclose(pred.blur_px, np.minimum(r, 8.0), atol=2e-3)
    assert np.all(np.diff(pred.blur_px) >= -1e-6)
    np.testing.assert_allclose(pred.p_in_focus, 0.5)
    with pytest.raises(ValueError, match="does not match"):
        lay.decode(np.zeros((3, 9), np.float32))


def test_tile_predictions_binary():
    p = TilePredictions.binary(np.array([0.2, 0.9]))
    assert len(p) == 2 and np.isnan(p.blur_px).all() and np.isnan(p.p_motion).all()
    assert set(p.as_dict()) == {"p_in_focus", "blur_px", "p_motion"}


def test_model_info_heads_roundtrip(tmp_path):
    info = ModelInfo(tile_px=32, heads=full_layout(), extra={"output": "logit"})
    assert info.has_blur and info.layout.n_outputs == 10
    path = tmp_path / "m.json"
    info.save(path)
    raw = json.loads(path.read_text())
    assert raw["heads"]["motion"] == 9 and raw["heads"]["blur_thresholds_px"] == list(TH)
    back = ModelInfo.load(path)
    assert back == info and back.has_blur
    assert not ModelInfo().has_blur and ModelInfo().layout.n_outputs == 1


def test_old_binary_model_loads_in_binary_mode_with_a_warning(tiny_model_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pifocus.classify.litert"):
        clf = LiteRTClassifier(tiny_model_path)
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "tiny_focus_int8.tflite" in msg and "blur" in msg and "motion" in msg
    assert not clf.has_blur
    tiles = (np.random.default_rng(0).random((5, 16, 16)) > 0.5).astype(np.uint8) * 200
    out = clf.predict_all(tiles)
    assert out.p_in_focus.shape == (5,) and out.p_in_focus.dtype == np.float32
    np.testing.assert_allclose(out.p_in_focus, clf.predict(tiles))
    assert np.isnan(out.blur_px).all() and np.isnan(out.p_motion).all()
    assert clf.predict_all(np.zeros((0, 16, 16), np.uint8)).p_in_focus.shape == (0,)


def test_heads_on_a_one_output_model_is_a_model_error(tmp_path, tiny_model_path):
    p = tmp_path / "m.tflite"
    shutil.copy(tiny_model_path, p)
    meta = json.loads(tiny_model_path.with_suffix(".json").read_text())
    meta["heads"] = full_layout().to_dict()
    p.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"output shape \(1, 1\) does not match the 'heads' layout.*10 values"):
        LiteRTClassifier(p)


def _shipped_copy(tmp_path):
    src = default_model_path()
    meta = json.loads(metadata_path_for(src).read_text())
    if "heads" not in meta:
        pytest.skip("the shipped model has no heads")
    p = tmp_path / "m.tflite"
    shutil.copy(src, p)
    return p, meta


def test_shipped_model_with_wrong_layout_is_a_model_error(tmp_path):
    p, meta = _shipped_copy(tmp_path)
    meta["heads"]["blur_thresholds_px"] = meta["heads"]["blur_thresholds_px"][:-1]
    meta["heads"]["motion"] -= 1
    meta["heads"].pop("n_outputs")
    p.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="does not match the 'heads' layout"):
        LiteRTClassifier(p)


def test_shipped_model_without_heads_in_its_metadata_is_a_model_error(tmp_path):
    p, meta = _shipped_copy(tmp_path)
    meta.pop("heads")
    p.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="has no 'heads' layout"):
        LiteRTClassifier(p)
