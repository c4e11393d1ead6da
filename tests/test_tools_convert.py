"""The converter: tiny Keras model -> full-int8 TFLite -> LiteRTClassifier, and its refusals."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pifocus.exc import ConfigError, ModelError

ROOT = Path(__file__).resolve().parents[1]


def test_import_pifocus_classify_does_not_import_tensorflow():
    code = ("import sys, pifocus, pifocus.classify, pifocus.classify.convert, pifocus.classify.evaluate; "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_non_model_files_are_refused(tmp_path):
    from pifocus.classify.convert import load_model
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing.keras")
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(ModelError, match="not a Keras model"):
        load_model(txt)
    fake = tmp_path / "model.keras"
    fake.write_text("this is not a zip archive")
    with pytest.raises(ModelError, match="not a .keras archive"):
        load_model(fake)
    fake_h5 = tmp_path / "model.h5"
    fake_h5.write_bytes(b"GIF89a....")
    with pytest.raises(ModelError, match="not an HDF5 file"):
        load_model(fake_h5)
    d = tmp_path / "folder"
    d.mkdir()
    with pytest.raises(ModelError, match="not a SavedModel"):
        load_model(d)


def test_convert_main_reports_one_line_error(tmp_path, capsys):
    from pifocus.classify.convert import main
    bad = tmp_path / "x.keras"
    bad.write_text("nope")
    assert main([str(bad), "--out", str(tmp_path / "o.tflite")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pifocus: error:") and "x.keras" in err and "\n" not in err


def test_calibration_errors(tmp_path):
    from pifocus.classify.convert import load_calibration
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="not found"):
        load_calibration(tmp_path / "nothing", 16, rng)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(ConfigError, match="no readable images"):
        load_calibration(empty, 16, rng)
    np.save(tmp_path / "wrong.npy", np.zeros((5, 8, 8), np.uint8))
    with pytest.raises(ConfigError, match="--tile 16"):
        load_calibration(tmp_path / "wrong.npy", 16, rng)


@pytest.fixture(scope="module")
def keras_mod():
    pytest.importorskip("tensorflow")
    import keras
    keras.utils.set_random_seed(0)
    return keras


def _tiny_model(keras, tile=16):
    from keras import layers
    inp = keras.Input((tile, tile, 1), name="tile")
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inp, out)


def test_tiny_keras_model_converts_to_int8_and_loads(keras_mod, tmp_path):
    from pifocus.classify import ModelInfo
    from pifocus.classify.convert import convert
    from pifocus.classify.litert import LiteRTClassifier
    model = _tiny_model(keras_mod)
    src = tmp_path / "tiny.keras"
    model.save(src)
    rng = np.random.default_rng(1)
    calib = tmp_path / "calib.npy"
    np.save(calib, rng.integers(0, 256, (120, 16, 16), dtype=np.uint8))
    out = tmp_path / "tiny_int8.tflite"
    report = convert(src, out, calib, n_calib=60, n_check=60, threshold=0.5)
    assert out.read_bytes()[4:8] == b"TFL3"
    assert report["quantize"] == "int8" and report["check_tiles"] == 60
    assert report["agreement"] >= 0.9 and report["size_bytes"] < 20_000
    assert report["ms_per_tile_batch1"] > 0
    info = ModelInfo.load(out.with_suffix(".json"))
    assert info.tile_px == 16 and info.threshold == 0.5 and info.extra["conversion"]["quantize"] == "int8"
    assert info.extra["output"] == "logit"  # the final sigmoid is applied by the runner
    from pifocus.classify import file_sha256
    assert info.extra["sha256"] == file_sha256(out)  # the runner checks the file against it
    clf = LiteRTClassifier(out)
    assert clf.input_dtype == np.int8
    p = clf.predict(rng.integers(0, 256, (37, 16, 16), dtype=np.uint8))
    assert p.shape == (37,) and p.dtype == np.float32 and ((p >= 0) & (p <= 1)).all()
    # int8 output tracks the float model
    from pifocus.classify import normalize_tiles
    t = rng.integers(0, 256, (20, 16, 16), dtype=np.uint8)
    pf = model.predict(normalize_tiles(t), verbose=0).ravel()
    assert np.abs(clf.predict(t) - pf).max() < 0.05


def test_calibration_from_image_folder_and_float16(keras_mod, tmp_path):
    import cv2
    from pifocus.classify.convert import convert
    from pifocus.classify.litert import LiteRTClassifier
    src = tmp_path / "tiny.keras"
    _tiny_model(keras_mod).save(src)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        cv2.imwrite(str(imgs / f"im{i}.png"), rng.integers(0, 256, (64, 64), dtype=np.uint8))
    out = tmp_path / "tiny_f16.tflite"
    report = convert(src, out, imgs, quantize="float16", n_calib=20, n_check=20)
    assert report["quantize"] == "float16"
    clf = LiteRTClassifier(out)
    assert clf.input_dtype == np.float32
    assert clf.predict(rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)).shape == (3,)


def test_multi_input_model_is_refused(keras_mod, tmp_path):
    from keras import layers
    from pifocus.classify.convert import load_model
    keras = keras_mod
    a = keras.Input((16, 16, 1))
    b = keras.Input((16, 16, 1))
    x = layers.Concatenate()([a, b])
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(1, activation="sigmoid")(x)
    path = tmp_path / "two.keras"
    keras.Model([a, b], out).save(path)
    with pytest.raises(ModelError, match="2 inputs"):
        load_model(path)


def test_non_image_input_and_multi_output_are_refused(keras_mod, tmp_path):
    from keras import layers
    from pifocus.classify.convert import load_model
    keras = keras_mod
    v = keras.Input((10,))
    path = tmp_path / "vec.h5"
    keras.Model(v, layers.Dense(1, activation="sigmoid")(v)).save(path)
    with pytest.raises(ModelError, match="not a single square"):
        load_model(path)
    t = keras.Input((16, 16, 1))
    x = layers.GlobalAveragePooling2D()(t)
    path2 = tmp_path / "vec2.keras"
    keras.Model(t, layers.Dense(3)(x)).save(path2)
    with pytest.raises(ModelError, match="one probability per tile"):
        load_model(path2)


def test_int8_needs_calibration(keras_mod, tmp_path):
    from pifocus.classify.convert import convert
    src = tmp_path / "tiny.keras"
    _tiny_model(keras_mod).save(src)
    with pytest.raises(ConfigError, match="calibration"):
        convert(src, tmp_path / "o.tflite", None)
    with pytest.raises(ConfigError, match=".tflite"):
        convert(src, tmp_path / "o.bin", None, quantize="float32")


def test_unquantizable_ops_are_refused_and_float32_is_offered(keras_mod, tmp_path):
    """A SavedModel with an op that has no int8 kernel (sin): int8 refused with the reason,
    --quantize float32 converts it."""
    from keras import layers
    from pifocus.classify.convert import convert
    from pifocus.classify.litert import LiteRTClassifier
    keras = keras_mod
    inp = keras.Input((16, 16, 1))
    x = layers.Conv2D(2, 3, padding="same")(inp)
    x = layers.Lambda(lambda t: keras.ops.sin(t))(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, layers.Dense(1, activation="sigmoid")(x))
    sm = tmp_path / "sin_savedmodel"
    model.export(str(sm), format="tf_saved_model", verbose=False)
    calib = tmp_path / "cal.npy"
    np.save(calib, np.random.default_rng(3).integers(0, 256, (40, 16, 16), dtype=np.uint8))
    with pytest.raises(ModelError, match="(?i)sin.*float16 or float32"):
        convert(sm, tmp_path / "sin_int8.tflite", calib, n_calib=20, n_check=20)
    out = tmp_path / "sin_f32.tflite"
    report = convert(sm, out, calib, quantize="float32", n_calib=20, n_check=20)
    assert report["agreement"] == 1.0
    assert LiteRTClassifier(out).predict(np.zeros((2, 16, 16), np.uint8)).shape == (2,)


def test_runner_output_kind_from_metadata(tmp_path):
    """``"output": "logit"`` makes the runner apply the sigmoid; unknown kinds are refused."""
    import shutil
    from pifocus.classify import default_model_path, metadata_path_for
    from pifocus.classify.litert import LiteRTClassifier
    src = default_model_path()
    meta = json.loads(metadata_path_for(src).read_text())
    assert meta["output"] == "logit"
    model = tmp_path / "m.tflite"
    shutil.copy(src, model)
    tiles = np.random.default_rng(0).integers(0, 256, (5, 32, 32), dtype=np.uint8)
    (tmp_path / "m.json").write_text(json.dumps(meta))
    p = LiteRTClassifier(model).predict(tiles)
    meta["output"] = "probability"  # now the raw logit, clipped to 0..1, comes back
    (tmp_path / "m.json").write_text(json.dumps(meta))
    raw = LiteRTClassifier(model).predict(tiles)
    assert ((p > 0) & (p < 1)).all()
    assert not np.allclose(p, raw)
    meta["output"] = "odds"
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="output = 'odds'"):
        LiteRTClassifier(model)


def test_multi_head_model_converts_with_its_layout(keras_mod, tmp_path):
    """A model whose .train.json has a 'heads' layout: one logit vector per tile, the layout
    copied into the metadata, predict_all() decoding it; without the layout it is refused."""
    from keras import layers
    from pifocus.classify import ModelInfo
    from pifocus.classify.convert import convert, load_model
    from pifocus.classify.heads import OutputLayout
    from pifocus.classify.litert import LiteRTClassifier
    keras = keras_mod
    inp = keras.Input((16, 16, 1), name="tile")
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, layers.Dense(5, name="heads")(x))
    src = tmp_path / "heads.keras"
    model.save(src)
    with pytest.raises(ModelError, match="one probability per tile"):
        load_model(src)
    layout = OutputLayout(in_focus=0, blur=1, blur_thresholds_px=(1.0, 2.0, 4.0), motion=4, motion_threshold=0.4)
    src.with_suffix(".train.json").write_text(json.dumps({"heads": layout.to_dict(), "threshold_train_tuned": 0.5}))
    calib = tmp_path / "calib.npy"
    rng = np.random.default_rng(4)
    np.save(calib, rng.integers(0, 256, (120, 16, 16), dtype=np.uint8))
    out = tmp_path / "heads_int8.tflite"
    report = convert(src, out, calib, n_calib=60, n_check=60)
    assert report["output"] == "logit" and "blur_mean_abs_diff_px" in report and "motion_agreement" in report
    info = ModelInfo.load(out.with_suffix(".json"))
    assert info.heads == layout and info.has_blur
    clf = LiteRTClassifier(out)
    pred = clf.predict_all(rng.integers(0, 256, (7, 16, 16), dtype=np.uint8))
    assert pred.blur_px.shape == (7,) and ((pred.blur_px >= 0) & (pred.blur_px <= 4.0)).all()
    assert ((pred.p_motion >= 0) & (pred.p_motion <= 1)).all()
    with pytest.raises(ModelError, match="exported as logits"):
        convert(src, tmp_path / "p.tflite", calib, n_calib=60, n_check=60, output="probability")
