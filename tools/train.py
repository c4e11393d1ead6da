#!/usr/bin/env python3
"""Train the focus tile CNN (Keras 3 / TensorFlow, CPU).

Reads the tile set from ``tools/dataset.py``, trains on its ``train`` split (scenes never in
``val``), reports validation metrics per source each epoch, and saves a ``.keras`` model plus
a ``.train.json`` with everything needed to reproduce it.  Convert the result with
``tools/convert.py``.

Architectures (``--arch``):

* ``baseline`` -- the seed work's net: three 3x3 conv + 2x2 max-pool blocks (16, 32, 64),
  flatten, dense 128, dropout 0.5, sigmoid.
* ``focusnet`` -- two 3x3 convs at full resolution (edges are where focus shows), then two
  conv + pool stages, batch norm (folded away on conversion), global average + global max
  pooling (a sharp edge anywhere in the tile counts; no position dependence), dense 32,
  sigmoid.
* ``focusnet2`` -- the baseline's head (flatten keeps where in the tile the edges are; dense
  128, dropout 0.5) on focusnet's trunk: two 3x3 convs at full resolution, batch norm.

Inputs are :func:`pifocus.classify.normalize_tiles` output, so brightness and contrast cannot
decide focus.  Augmentation per epoch: flips, 90-degree rotations, brightness/contrast
(gain 0.5..1.5, offset +-40 DN, before normalization), low-amplitude Gaussian noise.
Everything is seeded (numpy, Python, Keras/TF; TF ops made deterministic).

Usage::

    python tools/train.py --tiles build/tiles.npz --arch focusnet --epochs 10 --out build/focusnet.keras
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from pifocus.classify import ModelInfo, normalize_tiles  # noqa: E402
from pifocus.classify.evaluate import (best_threshold, compare, format_table,  # noqa: E402
                                       laplacian_variance, load_tileset)

ARCHS = ("baseline", "focusnet", "focusnet2")


def set_threads(n: int) -> None:
    """Limit TensorFlow to ``n`` CPU threads (call before building any model)."""
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(n)


def build_model(arch: str, tile: int, batch_size=None):
    """The Keras model for ``arch``; ``batch_size=1`` gives the static graph for export."""
    import keras
    from keras import layers
    inp = keras.Input((tile, tile, 1), batch_size=batch_size, name="tile")

    def cbr(x, f):
        """3x3 conv (no bias) + batch norm + ReLU."""
        x = layers.Conv2D(f, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    if arch == "baseline":
        x = inp
        for f in (16, 32, 64):
            x = layers.Conv2D(f, 3, padding="same", activation="relu")(x)
            x = layers.MaxPooling2D(2)(x)
        x = layers.Flatten()(x)
        x = layers.Dense(128, activation="relu")(x)
        x = layers.Dropout(0.5)(x)
    elif arch == "focusnet":
        x = cbr(inp, 16)
        x = cbr(x, 16)
        x = layers.MaxPooling2D(2)(x)
        x = cbr(x, 32)
        x = layers.MaxPooling2D(2)(x)
        x = cbr(x, 48)
        x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
        x = layers.Dense(32, activation="relu")(x)
        x = layers.Dropout(0.2)(x)
    elif arch == "focusnet2":
        x = cbr(inp, 16)
        x = cbr(x, 16)
        x = layers.MaxPooling2D(2)(x)
        x = cbr(x, 32)
        x = layers.MaxPooling2D(2)(x)
        x = cbr(x, 64)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Flatten()(x)
        x = layers.Dense(128, activation="relu")(x)
        x = layers.Dropout(0.5)(x)
    else:
        raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}")
    out = layers.Dense(1, activation="sigmoid", name="p_in_focus")(x)
    return keras.Model(inp, out, name=arch)


def count_macs(model) -> int:
    """Multiply-accumulates per tile of the conv and dense layers (batch 1)."""
    from keras import layers
    macs = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            k = layer.kernel_size[0] * layer.kernel_size[1]
            cin = layer.input.shape[-1]
            _, h, w, cout = layer.output.shape
            macs += h * w * cout * k * cin
        elif isinstance(layer, layers.Dense):
            macs += int(np.prod(layer.kernel.shape))
    return int(macs)


def augment(tiles_u8: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flips, 90-degree rotations, brightness/contrast, noise; float32 (N, t, t) in DN."""
    t = tiles_u8.astype(np.float32)
    n = len(t)
    k = rng.integers(0, 4, n)
    for r in range(1, 4):
        m = k == r
        t[m] = np.rot90(t[m], r, axes=(1, 2))
    f = rng.random(n) < 0.5
    t[f] = t[f, :, ::-1]
    gain = rng.uniform(0.5, 1.5, n).astype(np.float32)[:, None, None]
    offset = rng.uniform(-40, 40, n).astype(np.float32)[:, None, None]
    mean = t.mean(axis=(1, 2), keepdims=True)
    t = (t - mean) * gain + mean + offset
    sigma = rng.uniform(0, 2.5, n).astype(np.float32)[:, None, None] * (rng.random(n) < 0.5)[:, None, None]
    t += sigma * rng.standard_normal(t.shape, dtype=np.float32)
    return np.clip(np.round(t), 0, 255)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiles", default=str(ROOT / "build" / "tiles.npz"))
    p.add_argument("--arch", default="focusnet", choices=ARCHS)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--max-train", type=int, default=0, help="subsample the training tiles (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--std-floor", type=float, default=ModelInfo.std_floor,
                   help="normalization: lower bound on the tile std (DN), see normalize_tiles")
    p.add_argument("--clip", type=float, default=ModelInfo.clip, help="normalization clip")
    p.add_argument("--weight", action="append", default=[], metavar="SOURCE=W",
                   help="loss weight of a source's training tiles, e.g. sweep=4 (repeatable)")
    p.add_argument("--init", default=None, metavar="MODEL.keras",
                   help="start from this trained model's weights (same arch and tile size): fine-tuning")
    p.add_argument("--threads", type=int, default=2, help="TensorFlow CPU threads")
    p.add_argument("--out", default=None, help="output .keras (default build/ARCH.keras)")
    a = p.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    set_threads(a.threads)
    keras.utils.set_random_seed(a.seed)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(a.seed)

    data = load_tileset(a.tiles)
    tile = int(data["tiles"].shape[1])
    info = ModelInfo(tile_px=tile, std_floor=a.std_floor, clip=a.clip)
    split = data["split"].astype(str)
    source = data["source"].astype(str)
    tr, va = np.nonzero(split == "train")[0], np.nonzero(split == "val")[0]
    if a.max_train and len(tr) > a.max_train:
        tr = np.sort(rng.choice(tr, a.max_train, replace=False))
    xtr, ytr = data["tiles"][tr], data["labels"][tr].astype(np.float32)
    wtr = np.ones(len(tr), np.float32)
    for spec in a.weight:
        name, _, w = spec.partition("=")
        wtr[source[tr] == name] = float(w)
    xva = normalize_tiles(data["tiles"][va], info.std_floor, info.clip)
    yva = data["labels"][va]
    print(f"tiles {tile}px: train {len(tr)} ({ytr.mean():.1%} in focus), val {len(va)} "
          f"({yva.mean():.1%} in focus), scenes train {len(set(data['scene'][tr]))} / "
          f"val {len(set(data['scene'][va]))}", flush=True)

    model = build_model(a.arch, tile)
    if a.init:
        model.set_weights(keras.models.load_model(a.init, compile=False).get_weights())
        print(f"initialized from {a.init}", flush=True)
    macs = count_macs(model)
    print(f"{a.arch}: {model.count_params()} parameters, {macs / 1e6:.2f} M MACs per tile", flush=True)
    steps = a.epochs * int(np.ceil(len(tr) / a.batch))
    sched = keras.optimizers.schedules.CosineDecay(a.lr, steps, alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(sched), loss="binary_crossentropy",
                  metrics=["accuracy"])

    # Thresholds (the CNN's, and the Laplacian baseline's) are tuned on all training tiles,
    # synthetic flat/noise ones included: flat tiles that slip past the pipeline's texture
    # gate must fall below the threshold too.
    lv_tr = np.log10(laplacian_variance(data["tiles"][tr]) + 1e-3)
    lap_t = float(10 ** best_threshold(lv_tr, ytr))
    lv_va = laplacian_variance(data["tiles"][va])
    real = ~np.char.startswith(source[va], "synthetic")
    history = []
    t0 = time.time()
    for ep in range(a.epochs):
        xa = normalize_tiles(augment(xtr, rng), info.std_floor, info.clip)
        h = model.fit(xa, ytr, sample_weight=wtr, batch_size=a.batch, epochs=1, verbose=2, shuffle=True)
        pva = model.predict(xva, batch_size=1024, verbose=0).ravel()
        res = compare(pva, lv_va, yva, source[va], 0.5, lap_t, real)
        r = res.get("real", res["all"])
        history.append({"epoch": ep + 1, "loss": float(h.history["loss"][-1]),
                        "val_real_auc": r["cnn"]["auc"], "val_real_acc": r["cnn"]["accuracy"]})
        print(f"epoch {ep + 1}/{a.epochs}  {time.time() - t0:.0f}s  loss {history[-1]['loss']:.4f}  "
              f"val real AUC {r['cnn']['auc']:.4f} acc {r['cnn']['accuracy']:.2%} "
              f"(Laplacian acc {r['laplacian']['accuracy']:.2%})", flush=True)
    print(format_table(res))

    # threshold: the accuracy-optimal one on the (un-augmented) training tiles
    ptr = model.predict(normalize_tiles(xtr, info.std_floor, info.clip), batch_size=1024, verbose=0).ravel()
    thr = float(np.clip(best_threshold(ptr, ytr), 0.2, 0.8))
    out = Path(a.out or ROOT / "build" / f"{a.arch}.keras")
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    train_info = {"arch": a.arch, "tile_px": tile, "macs_per_tile": macs, "params": int(model.count_params()),
                  "epochs": a.epochs, "batch": a.batch, "lr": a.lr, "seed": a.seed,
                  "max_train": a.max_train, "weights": a.weight, "init": a.init, "train_tiles": int(len(tr)), "val_tiles": int(len(va)),
                  "threshold_train_tuned": thr, "laplacian_baseline_threshold": lap_t,
                  "std_floor": info.std_floor, "clip": info.clip, "tiles": str(a.tiles),
                  "seconds": round(time.time() - t0, 1), "history": history,
                  "command": "python tools/train.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    out.with_suffix(".train.json").write_text(json.dumps(train_info, indent=2) + "\n")
    print(f"saved {out} (threshold tuned on train: {thr:.3f}; Laplacian baseline threshold "
          f"{lap_t:.1f}) in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
