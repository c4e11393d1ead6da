"""Build the tiny hand-weighted focus model the test suite uses (tests/data/tiny_focus_int8.*).

Not a trained model: one Laplacian filter pair, ReLU, global average pooling and a logistic
unit, so its output rises with the high-frequency energy of the normalized tile.  It
exercises the real int8 conversion and the real LiteRT interpreter in tests without
needing TensorFlow at test time.  Regenerate with:

    python tools/make_test_model.py tests/data/tiny_focus_int8.tflite
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pifocus.classify import ModelInfo, normalize_tiles  # noqa: E402
from pifocus.sources.simulated import defocus, focus_chart  # noqa: E402

TILE = 16


def build(out: Path) -> None:
    import keras
    import tensorflow as tf

    inp = keras.Input(shape=(TILE, TILE, 1), batch_size=1)
    lap = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)
    conv = keras.layers.Conv2D(2, 3, padding="valid", activation="relu", use_bias=False)
    x = conv(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(1, activation="sigmoid")
    y = dense(x)
    model = keras.Model(inp, y)
    conv.set_weights([np.stack([lap, -lap], axis=-1)[:, :, None, :]])
    # Sharp normalized tiles give mean |lap|/2 around 1..2; blurred ones well below 0.3.
    dense.set_weights([np.array([[6.0], [6.0]], np.float32), np.array([-4.0], np.float32)])

    chart = focus_chart(256, 256, seed=3)
    rng = np.random.default_rng(0)
    samples = []
    for r in (0.0, 1.0, 2.0, 4.0):
        img = np.clip(defocus(chart, r) * 255, 0, 255).astype(np.uint8)
        for _ in range(16):
            y0, x0 = rng.integers(0, 256 - TILE, 2)
            samples.append(img[y0:y0 + TILE, x0:x0 + TILE])
    rep = normalize_tiles(np.stack(samples))

    def representative():
        for t in rep:
            yield [t[None]]

    conv_ = tf.lite.TFLiteConverter.from_keras_model(model)
    conv_.optimizations = [tf.lite.Optimize.DEFAULT]
    conv_.representative_dataset = representative
    conv_.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv_.inference_input_type = tf.int8
    conv_.inference_output_type = tf.int8
    out.write_bytes(conv_.convert())
    ModelInfo(name="tiny-test-model", version="test", tile_px=TILE, threshold=0.5,
              extra={"note": "hand-weighted Laplacian-energy model for tests; not trained"}) \
        .save(out.with_suffix(".json"))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    build(ap.parse_args().out)
