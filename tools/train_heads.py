#!/usr/bin/env python3
"""Train the multi-head focus CNN: in-focus logit, defocus radius code, motion-blur logit.

One output vector per tile, laid out as :class:`pifocus.classify.heads.OutputLayout`
describes (written to the ``.train.json`` beside the ``.keras`` file; ``pifocus convert``
copies it into the model's metadata):

* index 0 -- in-focus logit, trained on the in-focus tile set (``--tiles``, from
  ``tools/dataset.py``; masked on tiles without an in-focus label);
* indices 1..K -- the defocus radius in the "thermometer" code of ``--thresholds`` (soft
  targets ``clip((r - t_{k-1}) / (t_k - t_{k-1}), 0, 1)``), trained on the tiles of
  ``--blur-tiles`` (``tools/blur_dataset.py``) that carry an exact or fitted radius;
* index K+1 -- motion-blur logit (1 = linear/shake PSF of >= 3 px), trained on motion tiles
  and on every tile known to be still (all real and synthetic defocus tiles).

The loss is the sum of the heads' masked binary cross-entropies (weights ``--w-focus``,
``--w-blur``, ``--w-motion``).  Augmentation as ``tools/train.py`` (flips, 90-degree
rotations, contrast/brightness, low noise: none of these changes a disk or the presence of
a motion PSF).  Seeded and deterministic.  Progress: tqdm bars per epoch.

Usage::

    python tools/train_heads.py --tiles build/tiles_v1.npz --blur-tiles build/blur_tiles.npz \\
        --eval-tiles build/tiles_v2.npz --arch mh_base --epochs 12 --out build/heads.keras
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "tools"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import numpy as np  # noqa: E402

from pifocus.classify import ModelInfo, normalize_tiles  # noqa: E402
from pifocus.classify import blur_metrics as bm  # noqa: E402
from pifocus.classify.evaluate import (TEXTURED_SNR, best_threshold, laplacian_variance,  # noqa: E402
                                       load_tileset, roc_auc)
from pifocus.classify.heads import OutputLayout  # noqa: E402

#: Thermometer thresholds of the blur head (px): steps of 0.5 px up to 2, then coarser.
THRESHOLDS_PX = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
ARCHS = ("mh_base", "mh_mid", "mh_wide", "mh_branch", "mh_tap2", "mh_tap3", "mh_tap2r")
#: Archs that read the frozen v1 net's own features (``--focus-branch`` required): the blur
#: and motion heads cost little beside v1 (``mh_tap3``: a dense layer on v1's last pooled
#: conv features; ``mh_tap2``: one trainable 64-filter conv on v1's second pooled stage;
#: ``mh_tap2r``: the same conv on v1's second stage beside a small trainable branch from the
#: raw tile -- 12 and 24 filters at full and half resolution -- so the heads also see fine,
#: orientation-selective structure that v1's frozen focus features need not keep).
TAP_ARCHS = ("mh_tap2", "mh_tap3", "mh_tap2r")
#: Blur-set sources that are never trained on (validation report only).
REPORT_ONLY = ("real-mfifb-full",)


def build_model(arch: str, tile: int, n_out: int, batch_size=None, dropout: float = 0.3, bn: bool = False):
    """The Keras model: a conv trunk, flatten, dense 128, one ``n_out``-vector of logits.

    ``bn``: 3x3 conv + batch norm + ReLU (batch norm folds into the conv on conversion)
    instead of conv with bias + ReLU.
    """
    import keras
    from keras import layers
    inp = keras.Input((tile, tile, 1), batch_size=batch_size, name="tile")

    def conv(x, f):
        if not bn:
            return layers.Conv2D(f, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(f, 3, padding="same", use_bias=False)(x)
        return layers.ReLU()(layers.BatchNormalization()(x))

    if arch == "mh_base":  # the shipped v1 trunk (tools/train.py "baseline")
        plan = ((16,), (32,), (64,))
    elif arch == "mh_mid":
        plan = ((16,), (32, 32), (64,))
    elif arch == "mh_wide":
        plan = ((16, 16), (32, 32), (64,))
    elif arch == "mh_branch":  # the blur/motion branch beside the frozen v1 in-focus net
        plan = ((12, 12), (32, 32), (64,))
    else:
        raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}")
    x = inp
    for stage in plan:
        for f in stage:
            x = conv(x, f)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    out = layers.Dense(n_out, name="heads")(x)  # logits; the runner applies the sigmoids
    return keras.Model(inp, out, name=arch)


def keras_from_baseline_tflite(path, tile: int = 32):
    """The shipped v1 in/out-of-focus net (``tools/train.py --arch baseline``, exported as a
    logit) rebuilt as a float Keras model from its int8 ``.tflite``: every conv and dense
    weight is dequantized (``(q - zero) x scale`` per output channel), so the model computes
    what the int8 model computes up to activation rounding.  Frozen (``trainable = False``).

    Raises:
        ValueError: the file is not that architecture.
    """
    import keras
    from keras import layers
    from pifocus.classify.litert import interpreter_class
    it = interpreter_class()(model_path=str(path))
    it.allocate_tensors()
    det = {t["index"]: t for t in it.get_tensor_details()}
    ops = [o for o in it._get_ops_details() if o["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]

    def deq(i):
        t = det[i]
        q = t["quantization_parameters"]
        v = it.get_tensor(i).astype(np.float64)
        shape = [-1] + [1] * (v.ndim - 1)
        return ((v - np.asarray(q["zero_points"]).reshape(shape)) * np.asarray(q["scales"]).reshape(shape)
                ).astype(np.float32)
    weights = [(deq(o["inputs"][1]), deq(o["inputs"][2])) for o in ops]
    if [o["op_name"] for o in ops] != ["CONV_2D"] * 3 + ["FULLY_CONNECTED"] * 2:
        raise ValueError(f"{path}: not the v1 baseline architecture (3 conv + 2 dense)")
    inp = keras.Input((tile, tile, 1), name="tile")
    x = inp
    convs = []
    for f in (16, 32, 64):
        conv = layers.Conv2D(f, 3, padding="same", activation="relu")
        convs.append(conv)
        x = layers.MaxPooling2D(2)(conv(x))
    x = layers.Flatten()(x)
    d1 = layers.Dense(128, activation="relu")
    d2 = layers.Dense(1, name="in_focus_logit")
    out = d2(d1(x))
    model = keras.Model(inp, out, name="v1_in_focus")
    for layer, (w, b) in zip(convs, weights[:3]):
        layer.set_weights([w.transpose(1, 2, 3, 0), b])
    for layer, (w, b) in zip((d1, d2), weights[3:]):
        layer.set_weights([w.T, b])
    model.trainable = False
    return model


def with_focus_branch(focus_model, heads_model):
    """One model, one output vector: the frozen in-focus logit of ``focus_model`` followed by
    the blur and motion logits of ``heads_model`` (input shared)."""
    import keras
    from keras import layers
    inp = keras.Input(focus_model.input_shape[1:], name="tile")
    out = layers.Concatenate(name="heads")([focus_model(inp), heads_model(inp)])
    return keras.Model(inp, out, name="pifocus_heads")


def with_shared_trunk(focus_model, arch: str, n_heads: int, dropout: float = 0.3):
    """One model, one output vector: the frozen in-focus logit of ``focus_model`` (the v1
    net of :func:`keras_from_baseline_tflite`) followed by ``n_heads`` blur and motion logits
    computed from v1's own intermediate features (``arch`` in :data:`TAP_ARCHS`), so the
    in-focus output is v1's and the heads add only their own layers' cost."""
    import keras
    from keras import layers
    inp = keras.Input(focus_model.input_shape[1:], name="tile")
    x, pooled = inp, []
    for layer in focus_model.layers[1:]:
        x = layer(x)
        if isinstance(layer, layers.MaxPooling2D):
            pooled.append(x)
    focus_out = x
    if arch == "mh_tap2":
        y = layers.Conv2D(64, 3, padding="same", activation="relu", name="blur_conv3")(pooled[1])
        y = layers.Flatten()(layers.MaxPooling2D(2)(y))
    elif arch == "mh_tap2r":
        r = layers.Conv2D(12, 3, padding="same", activation="relu", name="blur_raw_conv1")(inp)
        r = layers.MaxPooling2D(2)(r)
        r = layers.Conv2D(24, 3, padding="same", activation="relu", name="blur_raw_conv2")(r)
        r = layers.MaxPooling2D(2)(r)
        y = layers.Concatenate(name="blur_tap_raw")([pooled[1], r])
        y = layers.Conv2D(64, 3, padding="same", activation="relu", name="blur_conv3")(y)
        y = layers.Flatten()(layers.MaxPooling2D(2)(y))
    elif arch == "mh_tap3":
        y = layers.Flatten()(pooled[2])
    else:
        raise ValueError(f"{arch!r} is not one of {TAP_ARCHS}")
    y = layers.Dense(96, activation="relu", name="blur_dense")(y)
    y = layers.Dropout(dropout)(y)
    heads = layers.Dense(n_heads, name="blur_motion")(y)
    out = layers.Concatenate(name="heads")([focus_out, heads])
    return keras.Model(inp, out, name="pifocus_heads")


def make_loss(layout: OutputLayout, w_focus: float, w_blur: float, w_motion: float):
    """Masked sum of per-head binary cross-entropies (targets < 0 are masked)."""
    import tensorflow as tf
    w = np.zeros(layout.n_outputs, np.float32)
    w[layout.in_focus] = w_focus
    w[layout.blur:layout.blur + len(layout.blur_thresholds_px)] = w_blur / len(layout.blur_thresholds_px)
    w[layout.motion] = w_motion
    wt = tf.constant(w)

    def loss(y_true, y_pred):
        m = tf.cast(y_true >= 0, tf.float32)
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.clip_by_value(y_true, 0.0, 1.0), logits=y_pred)
        return tf.reduce_sum(bce * m * wt, axis=-1)
    return loss


def targets(layout: OutputLayout, focus, radius_px, motion_px) -> np.ndarray:
    """``(N, n_outputs)`` float32 training targets, -1 where a head has no label."""
    n = len(focus)
    y = np.full((n, layout.n_outputs), -1.0, np.float32)
    f = np.asarray(focus, np.float32)
    y[:, layout.in_focus] = np.where((f == 0) | (f == 1), f, -1.0)
    r = np.asarray(radius_px, np.float64)
    ok = np.isfinite(r)
    k = len(layout.blur_thresholds_px)
    y[ok, layout.blur:layout.blur + k] = layout.blur_targets(r[ok])
    L = np.asarray(motion_px, np.float64)
    y[:, layout.motion] = np.where(np.isfinite(L), (L >= bm.MOTION_MIN_PX).astype(np.float32), -1.0)
    y[np.isfinite(L) & (L > 0) & (L < bm.MOTION_MIN_PX), layout.motion] = -1.0
    return y


def load_sets(tiles_path, blur_path, focus_from_blur: bool, motion_from_focus_set: bool = False):
    """Both tile sets merged: tiles, focus labels, radius, motion, source, split, snr."""
    b = load_tileset(blur_path)
    if tiles_path in (None, "", "none"):  # blur/motion heads only (e.g. the screening model)
        t = b["tiles"].shape[1]
        a = {"tiles": np.zeros((0, t, t), np.uint8), "labels": np.zeros(0, np.uint8),
             "source": np.zeros(0, str), "split": np.zeros(0, str)}
    else:
        a = load_tileset(tiles_path)
    keep = ~np.isin(b["source"].astype(str), REPORT_ONLY)
    na, nb = len(a["labels"]), int(keep.sum())
    fb = b["labels"][keep].astype(np.int16)
    if not focus_from_blur:
        fb[:] = 255
    return {
        "tiles": np.concatenate([a["tiles"], b["tiles"][keep]]),
        "focus": np.concatenate([a["labels"].astype(np.int16), fb]),
        "radius_px": np.concatenate([np.full(na, np.nan, np.float32), b["radius_px"][keep]]),
        # the in-focus set's tiles are believed still (tripod sweeps, benchmark pairs, synthetic)
        # but unverified (MFIFB has hand-held pairs): motion negatives only on request
        "motion_px": np.concatenate([np.zeros(na, np.float32) if motion_from_focus_set
                                     else np.full(na, np.nan, np.float32), b["motion_px"][keep]]),
        "source": np.concatenate([a["source"].astype(str), b["source"][keep].astype(str)]),
        "split": np.concatenate([a["split"].astype(str), b["split"][keep].astype(str)]),
        "texture_snr": np.concatenate([np.full(na, np.nan, np.float32), b["texture_snr"][keep]]),
        "from_blur_set": np.r_[np.zeros(na, bool), np.ones(nb, bool)],
    }


def write_calibration(tiles_path, blur_path, out, n_each: int = 3000, seed: int = 0) -> Path:
    """Write a calibration tile set for ``pifocus convert --calib``: validation tiles of both
    sets (in-focus and blur/motion), ``n_each`` of each, so the int8 ranges cover sharp,
    defocused, motion-blurred and flat tiles alike."""
    rng = np.random.default_rng(seed)
    parts = []
    for path in (tiles_path, blur_path):
        if path in (None, "", "none"):
            continue
        t = load_tileset(path)
        idx = np.nonzero(t["split"].astype(str) == "val")[0]
        parts.append(t["tiles"][np.sort(rng.choice(idx, min(n_each, len(idx)), replace=False))])
    tiles = np.concatenate(parts)
    tiles = tiles[rng.permutation(len(tiles))]
    out = Path(out)
    np.savez_compressed(out, tiles=tiles, split=np.array(["val"] * len(tiles)))
    return out


def augment(tiles_u8: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """tools/train.py's augmentation (flips, rotations, contrast/brightness, noise)."""
    import train
    return train.augment(tiles_u8, rng)


class TqdmEpoch:
    """A Keras callback drawing one tqdm bar per epoch (batches, running loss)."""

    def __new__(cls, total_batches: int, epoch: int, epochs: int):
        import keras
        from tqdm import tqdm

        class _Cb(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.bar = tqdm(total=total_batches, desc=f"epoch {epoch}/{epochs}", unit="batch",
                                file=sys.stderr, mininterval=2.0)

            def on_train_batch_end(self, batch, logs=None):
                self.bar.update(1)
                if logs and batch % 20 == 0:
                    self.bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.4f}")

            def on_train_end(self, logs=None):
                self.bar.close()
        return _Cb()


def validate(model, layout, xva, d, va, eval_sets, info) -> dict:
    """Per-epoch validation: in-focus AUC on real tiles, blur MAE, motion rates."""
    z = model.predict(xva, batch_size=1024, verbose=0)
    pred = layout.decode(z, logit=True)
    src = d["source"][va]
    res = {}
    blur_set = d["from_blur_set"][va]
    rep = bm.blur_report(pred.blur_px[blur_set], pred.p_motion[blur_set], d["radius_px"][va][blur_set],
                         d["motion_px"][va][blur_set], src[blur_set], max_px=layout.max_blur_px,
                         motion_threshold=layout.motion_threshold,
                         textured=d["texture_snr"][va][blur_set] >= TEXTURED_SNR)
    syn = rep.get("synthetic-defocus", {})
    res["mae_0_3_px"] = syn.get("mae_0_3_px", float("nan"))
    res["mae_0_3_px_textured"] = syn.get("mae_0_3_px_textured", float("nan"))
    res["leaves_mae_0_3_px"] = rep.get("leaves-defocus", {}).get("mae_0_3_px", float("nan"))
    res["real_blur_mae_0_3_px"] = rep.get("real-mfifb", {}).get("mae_0_3_px", float("nan"))
    res["motion_tpr"] = rep.get("synthetic-motion", {}).get("motion", {}).get("tpr", float("nan"))
    res["motion_tpr_textured"] = rep.get("synthetic-motion", {}).get("motion_textured", {}).get("tpr", float("nan"))
    res["motion_fpr"] = rep.get("all", {}).get("motion", {}).get("fpr", float("nan"))
    for name, (tiles, labels, real) in eval_sets.items():
        pr = layout.decode(model.predict(normalize_tiles(tiles[real], info.std_floor, info.clip), batch_size=1024,
                                         verbose=0), logit=True)
        res[f"{name}_real_auc"] = roc_auc(pr.p_in_focus, labels[real])
        res[f"{name}_real_motion_fpr"] = float(np.mean(pr.p_motion >= layout.motion_threshold))
    res["_report"] = rep
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiles", default=str(ROOT / "build" / "tiles_v1.npz"), help="in-focus tile set")
    p.add_argument("--blur-tiles", default=str(ROOT / "build" / "blur_tiles.npz"), help="blur/motion tile set")
    p.add_argument("--eval-tiles", action="append", default=[], metavar="NAME=PATH",
                   help="extra in-focus sets whose val real-tile AUC is reported each epoch")
    p.add_argument("--arch", default="mh_base", choices=ARCHS)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--bn", action="store_true", help="batch norm after every conv")
    p.add_argument("--w-focus", type=float, default=1.0)
    p.add_argument("--w-blur", type=float, default=1.0)
    p.add_argument("--w-motion", type=float, default=0.5)
    p.add_argument("--motion-from-focus-set", action="store_true",
                   help="also use every in-focus-set tile as a still (motion = 0) example")
    p.add_argument("--focus-from-blur", action="store_true",
                   help="also train the in-focus head on the blur set's radius-derived labels")
    p.add_argument("--motion-fpr", type=float, default=0.02,
                   help="tune the motion flag threshold for this false-flag rate on the training split's "
                        "still tiles (sharp and defocused)")
    p.add_argument("--focus-branch", default=None, metavar="V1.tflite",
                   help="keep this binary model's in-focus net as the in-focus head, frozen (its int8 "
                        "weights dequantized into Keras); the trained net gives the blur and motion "
                        "outputs only; the model's threshold is kept")
    p.add_argument("--teacher", default=None, metavar="OLD.tflite",
                   help="distil the in-focus head from this model: its target on labelled tiles becomes "
                        "(1 - w) x label + w x the teacher's probability (keeps the old model's behaviour)")
    p.add_argument("--teacher-weight", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--std-floor", type=float, default=24.0)
    p.add_argument("--clip", type=float, default=ModelInfo.clip)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "build" / "heads.keras"))
    a = p.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    import train
    train.set_threads(a.threads)
    keras.utils.set_random_seed(a.seed)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(a.seed)

    layout = OutputLayout(in_focus=0, blur=1, blur_thresholds_px=THRESHOLDS_PX, motion=1 + len(THRESHOLDS_PX))
    d = load_sets(a.tiles, a.blur_tiles, a.focus_from_blur, a.motion_from_focus_set)
    tile = int(d["tiles"].shape[1])
    info = ModelInfo(tile_px=tile, std_floor=a.std_floor, clip=a.clip)
    y = targets(layout, d["focus"], d["radius_px"], d["motion_px"])
    tr, va = np.nonzero(d["split"] == "train")[0], np.nonzero(d["split"] == "val")[0]
    if a.teacher:
        from pifocus.classify.litert import LiteRTClassifier
        lab = np.nonzero(y[:, layout.in_focus] >= 0)[0]
        with LiteRTClassifier(a.teacher) as teacher:
            pt = np.concatenate([teacher.predict(d["tiles"][lab[i:i + 4096]]) for i in range(0, len(lab), 4096)])
        y[lab, layout.in_focus] = (1 - a.teacher_weight) * y[lab, layout.in_focus] + a.teacher_weight * pt
        print(f"in-focus head distilled from {a.teacher} (weight {a.teacher_weight}) on {len(lab)} tiles", flush=True)
    xva = normalize_tiles(d["tiles"][va], info.std_floor, info.clip)
    eval_sets = {}
    for spec in ([f"v1={a.tiles}"] if a.tiles not in ("", "none") else []) + a.eval_tiles:
        name, _, path = spec.partition("=")
        e = load_tileset(path)
        sel = e["split"].astype(str) == "val"
        real = ~np.char.startswith(e["source"][sel].astype(str), "synthetic")
        eval_sets[name] = (e["tiles"][sel], e["labels"][sel], real)
    print(f"train {len(tr)} tiles (focus {int((y[tr, 0] >= 0).sum())}, blur {int((y[tr, 1] >= 0).sum())}, "
          f"motion {int((y[tr, layout.motion] >= 0).sum())} of which positive "
          f"{int((y[tr, layout.motion] == 1).sum())}); val {len(va)}", flush=True)

    if a.focus_branch:
        focus_net = keras_from_baseline_tflite(a.focus_branch, tile)
        if a.arch in TAP_ARCHS:
            model = with_shared_trunk(focus_net, a.arch, layout.n_outputs - 1, dropout=a.dropout)
            macs = train.count_macs(model)
        else:
            branch = build_model(a.arch, tile, layout.n_outputs - 1, dropout=a.dropout, bn=a.bn)
            model = with_focus_branch(focus_net, branch)
            macs = train.count_macs(focus_net) + train.count_macs(branch)
        a.w_focus = 0.0  # frozen
        print(f"in-focus head: {a.focus_branch} (frozen, {train.count_macs(focus_net) / 1e6:.2f} M MACs)", flush=True)
    elif a.arch in TAP_ARCHS:
        p.error(f"--arch {a.arch} reads the v1 net's features: give --focus-branch V1.tflite")
    else:
        model = build_model(a.arch, tile, layout.n_outputs, dropout=a.dropout, bn=a.bn)
        macs = train.count_macs(model)
    print(f"{a.arch}: {model.count_params()} parameters, {macs / 1e6:.2f} M MACs per tile", flush=True)
    steps_per_epoch = int(np.ceil(len(tr) / a.batch))
    sched = keras.optimizers.schedules.CosineDecay(a.lr, a.epochs * steps_per_epoch, alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(sched),
                  loss=make_loss(layout, a.w_focus, a.w_blur, a.w_motion))
    xtr, ytr = d["tiles"][tr], y[tr]
    history = []
    t0 = time.time()
    for ep in range(a.epochs):
        xa = normalize_tiles(augment(xtr, rng), info.std_floor, info.clip)
        h = model.fit(xa, ytr, batch_size=a.batch, epochs=1, verbose=0, shuffle=True,
                      callbacks=[TqdmEpoch(steps_per_epoch, ep + 1, a.epochs)])
        v = validate(model, layout, xva, d, va, eval_sets, info)
        v.pop("_report")
        history.append({"epoch": ep + 1, "loss": float(h.history["loss"][-1]), **v})
        print(f"epoch {ep + 1}/{a.epochs} {time.time() - t0:.0f}s loss {history[-1]['loss']:.4f} " +
              " ".join(f"{k} {val:.4f}" for k, val in v.items()), flush=True)
    # motion flag threshold: the given false-flag rate on the training split's still tiles
    still = tr[(y[tr, layout.motion] == 0) & d["from_blur_set"][tr]]
    z = model.predict(normalize_tiles(d["tiles"][still], info.std_floor, info.clip), batch_size=1024, verbose=0)
    pm = layout.decode(z).p_motion
    mthr = float(np.clip(np.quantile(pm, 1.0 - a.motion_fpr), 0.05, 0.95))
    layout = OutputLayout(in_focus=layout.in_focus, blur=layout.blur, blur_thresholds_px=layout.blur_thresholds_px,
                          motion=layout.motion, motion_threshold=round(mthr, 4))
    print(f"motion threshold {mthr:.3f} (false flags {a.motion_fpr:.1%} of {len(still)} training still tiles)")
    v = validate(model, layout, xva, d, va, eval_sets, info)
    print(bm.format_blur_report(v.pop("_report")))

    # in-focus threshold: accuracy-optimal on the (un-augmented) training tiles of the in-focus set
    ftr = tr[y[tr, 0] >= 0]
    ftr = ftr[~d["from_blur_set"][ftr]]
    thr, lap_t = 0.5, float("nan")
    if a.focus_branch:  # the in-focus head is the old model: so are its thresholds
        from pifocus.classify import metadata_path_for
        old = ModelInfo.load(metadata_path_for(a.focus_branch))
        thr = old.threshold
        lap_t = float(old.extra.get("laplacian_baseline_threshold", float("nan")))
    elif len(ftr):
        ptr = layout.decode(model.predict(normalize_tiles(d["tiles"][ftr], info.std_floor, info.clip),
                                          batch_size=1024, verbose=0)).p_in_focus
        thr = float(np.clip(best_threshold(ptr, d["focus"][ftr]), 0.2, 0.8))
        lv = np.log10(laplacian_variance(d["tiles"][ftr]) + 1e-3)
        lap_t = float(10 ** best_threshold(lv, d["focus"][ftr]))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    train_info = {"arch": a.arch, "tile_px": tile, "macs_per_tile": macs, "params": int(model.count_params()),
                  "heads": layout.to_dict(), "epochs": a.epochs, "batch": a.batch, "lr": a.lr,
                  "dropout": a.dropout, "bn": a.bn, "seed": a.seed, "loss_weights": {"focus": a.w_focus, "blur": a.w_blur,
                                                                        "motion": a.w_motion},
                  "focus_branch": a.focus_branch, "motion_fpr": a.motion_fpr, "motion_from_focus_set": a.motion_from_focus_set, "focus_from_blur": a.focus_from_blur, "teacher": a.teacher, "teacher_weight": a.teacher_weight, "train_tiles": int(len(tr)), "val_tiles": int(len(va)),
                  "threshold_train_tuned": thr, "laplacian_baseline_threshold": lap_t,
                  "std_floor": info.std_floor, "clip": info.clip, "tiles": str(a.tiles),
                  "blur_tiles": str(a.blur_tiles), "seconds": round(time.time() - t0, 1), "history": history,
                  "final": v,
                  "command": "python tools/train_heads.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    out.with_suffix(".train.json").write_text(json.dumps(train_info, indent=2) + "\n")
    calib = write_calibration(a.tiles, a.blur_tiles, out.with_suffix(".calib.npz"), seed=a.seed)
    print(f"calibration tiles for pifocus convert -> {calib}")
    print(f"saved {out} (threshold {thr:.3f}, Laplacian threshold {lap_t:.1f}) in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
