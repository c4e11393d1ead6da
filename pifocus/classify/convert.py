"""Convert a desktop-trained focus model to a full-int8 TFLite model for the Pi.

Takes a Keras model (``.keras``, legacy ``.h5``) or a SavedModel folder whose single input
is a ``(batch, tile, tile, 1)`` luma tile (already normalized by
:func:`pifocus.classify.normalize_tiles`) and whose single output is one in-focus
probability per tile -- or, when its ``.train.json`` holds a ``"heads"`` layout
(``tools/train_heads.py``), one vector of logits per tile laid out as
:class:`~pifocus.classify.heads.OutputLayout` says (in focus, blur radius code, motion); the
layout is copied into the metadata.  Quantizes to full int8 (int8 input and output, int8 kernels only)
with a representative dataset drawn from calibration images or tiles, writes the ``.tflite``
and its metadata JSON, then checks itself:

* agreement of the int8 model with the float model on held-back tiles (same verdict at the
  threshold), and the largest probability difference;
* model file size;
* per-tile latency under the LiteRT interpreter with one thread (batch 1, and batched).

A model with more than one input, a non-image input, more than one output value per tile,
or ops that have no int8 kernel is refused with the reason; ``--quantize float16`` or
``float32`` writes an unquantized model instead.

TensorFlow is imported only inside the functions here (``import pifocus.classify`` never
imports it); it is needed on the desktop only (``pip install 'pifocus[train]'``).

Usage::

    pifocus convert MODEL.keras --calib TILES.npz|IMAGE_DIR --out models/focus_cnn_int8.tflite
    python tools/convert.py build/focusnet.keras --calib build/tiles.npz --out focus.tflite
"""

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from ..exc import ConfigError, ModelError
from . import ModelInfo, metadata_path_for, normalize_tiles
from .heads import OutputLayout
from ..argtypes import SEED, bounded_float, bounded_int

_N_CALIB = bounded_int(1, 1_000_000)
_N_CHECK = bounded_int(1, 10_000_000)

log = logging.getLogger(__name__)

QUANTIZE = ("int8", "float16", "float32")
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as e:
        raise ModelError("converting a model needs TensorFlow, which is not installed; on a "
                         "desktop run: pip install 'pifocus[train]'") from e
    return tf


class LoadedModel:
    """A float model to convert: its TFLite converter factory, a float predict, its tile size."""

    def __init__(self, path: Path, kind: str, tile_px: int, predict, make_converter, train_info: dict):
        self.path, self.kind, self.tile_px = path, kind, tile_px
        self.predict, self.make_converter, self.train_info = predict, make_converter, train_info
        self.can_logit = False  # make_converter(logit=True) drops a final sigmoid
        self.layout = OutputLayout()  # multi-head models: their train.json's "heads"


def _check_io(path: Path, in_shapes, out_shapes, n_outputs: int = 1) -> int:
    """Validate one image input (batch, t, t, 1) and ``n_outputs`` values per tile; returns t."""
    if len(in_shapes) != 1:
        raise ModelError(f"model {str(path)!r} has {len(in_shapes)} inputs; a focus model takes a "
                         "single image tensor (batch, tile, tile, 1) -- re-export it with one input")
    shape = [None if s is None else int(s) for s in in_shapes[0]]
    if len(shape) != 4 or shape[3] != 1 or shape[1] is None or shape[1] != shape[2]:
        raise ModelError(f"model {str(path)!r} input shape {tuple(shape)} is not a single square "
                         "luma image (batch, tile, tile, 1); re-export it with keras.Input((tile, tile, 1))")
    if not 8 <= shape[1] <= 256:
        raise ModelError(f"model {str(path)!r} input tile {shape[1]} px is outside 8..256")
    if shape[0] not in (None, 1):
        raise ModelError(f"model {str(path)!r} has a fixed batch of {shape[0]}; export it with "
                         "batch size None or 1")
    if len(out_shapes) != 1:
        raise ModelError(f"model {str(path)!r} has {len(out_shapes)} outputs; a focus model gives one "
                         "in-focus probability per tile")
    per_tile = [s for s in list(out_shapes[0])[1:]]
    if any(s is None for s in per_tile) or int(np.prod(per_tile or [1])) != n_outputs:
        if n_outputs == 1:
            raise ModelError(f"model {str(path)!r} output shape {tuple(out_shapes[0])} is not one "
                             "probability per tile (batch, 1); a multi-head model needs a 'heads' "
                             "layout in its .train.json")
        raise ModelError(f"model {str(path)!r} output shape {tuple(out_shapes[0])} does not match the "
                         f"'heads' layout of its .train.json ({n_outputs} values per tile)")
    return shape[1]


def load_model(path) -> LoadedModel:
    """Load a ``.keras`` / ``.h5`` file or a SavedModel folder and validate its interface.

    Raises:
        ModelError: not a model file, unreadable, or the wrong interface.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model {str(path)!r} not found; pass a .keras or .h5 file or a "
                         "SavedModel folder")
    train_info = {}
    ti = path.with_suffix(".train.json") if path.is_file() else path / "train.json"
    if ti.is_file():
        try:
            train_info = json.loads(ti.read_text())
        except (OSError, ValueError):
            log.warning("%s: unreadable training info, ignored", ti)
    layout = (OutputLayout.from_dict(train_info["heads"], f"training info {str(ti)!r}")
              if train_info.get("heads") else OutputLayout())
    n_out = layout.n_outputs
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ModelError(f"folder {str(path)!r} is not a SavedModel (no saved_model.pb); pass a "
                             ".keras/.h5 file or the folder model.export(..., format='tf_saved_model') wrote")
        tf = _tf()
        try:
            loaded = tf.saved_model.load(str(path))
            fn = loaded.signatures["serving_default"]
        except (KeyError, OSError, ValueError, RuntimeError) as e:
            raise ModelError(f"SavedModel {str(path)!r} cannot be loaded or has no serving_default "
                             f"signature ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e
        specs = fn.structured_input_signature[1]
        outs = fn.structured_outputs
        tile = _check_io(path, [s.shape.as_list() for s in specs.values()],
                         [o.shape.as_list() for o in outs.values()], n_out)
        in_name = next(iter(specs))
        out_name = next(iter(outs))

        def predict(x):
            res = []
            for i in range(0, len(x), 1024):
                res.append(fn(**{in_name: tf.constant(x[i:i + 1024])})[out_name].numpy().reshape(-1, n_out))
            out = np.concatenate(res) if res else np.zeros((0, n_out), np.float32)
            return out.reshape(-1) if n_out == 1 else out

        def make_converter(logit: bool = False):
            return tf.lite.TFLiteConverter.from_saved_model(str(path))
        loaded = LoadedModel(path, "savedmodel", tile, predict, make_converter, train_info)
        loaded.layout = layout
        return loaded

    suffix = path.suffix.lower()
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelError(f"model {str(path)!r} is not a Keras model (.keras, .h5) or a SavedModel "
                         "folder; export your model with model.save('model.keras')")
    with open(path, "rb") as f:
        head = f.read(8)
    if suffix == ".keras" and not head.startswith(b"PK"):
        raise ModelError(f"model {str(path)!r} is not a .keras archive (not a zip file); re-save it "
                         "with model.save('model.keras')")
    if suffix in (".h5", ".hdf5") and not head.startswith(b"\x89HDF"):
        raise ModelError(f"model {str(path)!r} is not an HDF5 file; re-save it with model.save()")
    _tf()
    import keras
    try:
        model = keras.models.load_model(str(path), compile=False)
    except Exception as e:  # keras raises many types for bad files
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(f"model {str(path)!r} cannot be loaded by Keras ({msg[:200]}); custom "
                         "layers must be registered, or export a SavedModel folder instead") from e
    tile = _check_io(path, [list(t.shape) for t in model.inputs], [list(t.shape) for t in model.outputs], n_out)

    def predict(x):
        y = np.asarray(model.predict(x, batch_size=1024, verbose=0), np.float32)
        return y.reshape(-1) if n_out == 1 else y.reshape(-1, n_out)

    lm = logit_model(model)

    def make_converter(logit: bool = False):
        tf = _tf()
        return tf.lite.TFLiteConverter.from_keras_model(lm if logit else model)
    loaded = LoadedModel(path, "keras", tile, predict, make_converter, train_info)
    loaded.can_logit = lm is not None
    loaded.layout = layout
    return loaded


def logit_model(model):
    """The model without its final sigmoid (a Dense or Activation layer), or ``None``."""
    import keras
    last = model.layers[-1]
    act = getattr(getattr(last, "activation", None), "__name__", "")
    try:
        if isinstance(last, keras.layers.Dense) and act == "sigmoid":
            dense = keras.layers.Dense(last.units, activation=None, name="logit")
            y = dense(last.input)
            dense.set_weights(last.get_weights())
            return keras.Model(model.inputs, y)
        if isinstance(last, keras.layers.Activation) and act == "sigmoid":
            return keras.Model(model.inputs, last.input)
    except (ValueError, AttributeError, TypeError):  # e.g. a layer used more than once
        return None
    return None


def load_calibration(path, tile: int, rng: np.random.Generator, limit: int = 4000) -> np.ndarray:
    """uint8 ``(N, tile, tile)`` tiles from a ``.npz`` (``tiles`` array), a ``.npy``, or a
    folder of images (cut into a grid of tiles, flat ones dropped).

    Raises:
        ConfigError: path missing, wrong tile size, or no usable images.
    """
    from .evaluate import grid_tiles
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"calibration data {str(path)!r} not found; pass --calib with a folder of "
                          "images or a .npz tile set")
    if path.is_file():
        try:
            if path.suffix.lower() == ".npz":
                z = np.load(path, allow_pickle=False)
                if "tiles" not in z.files:
                    raise ConfigError(f"calibration file {str(path)!r} has no 'tiles' array; build one "
                                      "with tools/dataset.py or pass a folder of images")
                tiles = z["tiles"]
                if "split" in z.files:  # calibrate on validation scenes if present, else anything
                    sel = z["split"].astype(str) == "val"
                    tiles = tiles[sel] if sel.any() else tiles
            elif path.suffix.lower() == ".npy":
                tiles = np.load(path, allow_pickle=False)
            else:
                raise ConfigError(f"calibration file {str(path)!r} is not .npz/.npy; pass a tile set "
                                  "or a folder of images")
        except (OSError, ValueError) as e:
            raise ConfigError(f"calibration file {str(path)!r} cannot be read ({e}); pass a .npz "
                              "tile set or a folder of images") from e
        if tiles.ndim == 4 and tiles.shape[-1] == 1:
            tiles = tiles[..., 0]
        if tiles.ndim != 3 or tiles.shape[1:] != (tile, tile):
            raise ConfigError(f"calibration tiles in {str(path)!r} have shape {tiles.shape[1:]}, the "
                              f"model takes {tile}x{tile}; rebuild them with --tile {tile}")
    else:
        import cv2
        files = sorted(f for f in path.rglob("*") if f.suffix.lower() in IMAGE_EXTS)
        chunks = []
        for f in files:
            img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            if img is not None:
                chunks.append(grid_tiles(img, tile))
        tiles = np.concatenate(chunks) if chunks else np.zeros((0, tile, tile), np.uint8)
        if len(tiles) == 0:
            raise ConfigError(f"calibration folder {str(path)!r} has no readable images with textured "
                              f"{tile}x{tile} tiles; point --calib at photos from your camera")
    tiles = np.asarray(tiles)
    if tiles.dtype != np.uint8:
        tiles = np.clip(np.round(tiles), 0, 255).astype(np.uint8)
    if len(tiles) > limit:
        tiles = tiles[np.sort(rng.choice(len(tiles), limit, replace=False))]
    return tiles


def _latency(model_bytes: bytes, tile: int, info: ModelInfo, runs: int = 300) -> dict:
    """Median per-tile latency (ms) under LiteRT with 1 thread, batch 1 and batch 64."""
    from .litert import _quantize, interpreter_class
    cls = interpreter_class()
    out = {}
    rng = np.random.default_rng(0)
    for batch in (1, 64):
        interp = cls(model_content=model_bytes, num_threads=1)
        d = interp.get_input_details()[0]
        if batch != 1:
            interp.resize_tensor_input(d["index"], [batch, tile, tile, 1], strict=False)
        interp.allocate_tensors()
        d = interp.get_input_details()[0]
        x = normalize_tiles(rng.integers(0, 255, (batch, tile, tile), dtype=np.uint8), info.std_floor, info.clip)
        interp.set_tensor(d["index"], _quantize(x, d))
        for _ in range(10):
            interp.invoke()
        times = []
        n = max(20, runs // batch)
        for _ in range(n):
            t0 = time.perf_counter()
            interp.invoke()
            times.append(time.perf_counter() - t0)
        out[f"ms_per_tile_batch{batch}"] = round(1000.0 * float(np.median(times)) / batch, 4)
    return out


def convert(model_path, out_path, calib=None, quantize: str = "int8", threshold: Optional[float] = None,
            n_calib: int = 500, n_check: int = 2000, name: str = "pifocus-cnn", version: str = "1",
            seed: int = 0, extra: Optional[dict] = None, normalization: Optional[dict] = None,
            output: str = "auto") -> dict:
    """Convert, write ``out_path`` + its metadata JSON, self-check; returns the check report.

    ``normalization``: ``{"std_floor": .., "clip": ..}`` the model was trained with (default:
    from the ``.train.json`` beside the model, else :class:`ModelInfo`'s defaults).
    ``output``: ``"probability"`` keeps the model's sigmoid output; ``"logit"`` exports the
    value before a final sigmoid (int8 then resolves confident tiles much more finely; the
    runner applies the sigmoid, metadata ``"output": "logit"``); ``"auto"`` = logit when the
    model ends in a sigmoid Dense/Activation layer (Keras models), else probability.

    Raises:
        ModelError: bad model or ops that cannot be quantized.
        ConfigError: bad options or calibration data.
    """
    if quantize not in QUANTIZE:
        raise ConfigError(f"--quantize {quantize!r} is unknown; allowed: {', '.join(QUANTIZE)}")
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".tflite":
        raise ConfigError(f"output {str(out_path)!r} must end in .tflite (the metadata JSON goes beside it)")
    rng = np.random.default_rng(seed)
    m = load_model(model_path)
    thr = float(threshold if threshold is not None else m.train_info.get("threshold_train_tuned", 0.5))
    norm = {k: float(v) for k, v in (normalization or {}).items() if v is not None}
    for k in ("std_floor", "clip"):  # the normalization the model was trained with
        if k not in norm and k in m.train_info:
            norm[k] = float(m.train_info[k])
    info_kw = dict(name=name, version=version, tile_px=m.tile_px, threshold=thr, **norm)
    base = ModelInfo(**info_kw)
    if calib is None:
        if quantize == "int8":
            raise ConfigError("int8 quantization needs calibration data: pass --calib with a folder of "
                              "images from your camera or a .npz tile set (or use --quantize float16)")
        tiles = np.random.default_rng(seed).integers(0, 255, (64, m.tile_px, m.tile_px), dtype=np.uint8)
        cal, check = tiles, tiles
    else:
        tiles = load_calibration(calib, m.tile_px, rng, limit=n_calib + n_check)
        if len(tiles) < 20:
            raise ConfigError(f"calibration data {str(calib)!r} gives only {len(tiles)} tiles; give "
                              "at least 20 (more images, or a larger tile set)")
        n_cal = min(n_calib, max(10, len(tiles) // 2))
        cal, check = tiles[:n_cal], tiles[n_cal:]
    xcal = normalize_tiles(cal, base.std_floor, base.clip)
    if output not in ("auto", "probability", "logit"):
        raise ConfigError(f"--output {output!r} is unknown; allowed: auto, probability, logit")
    multi = m.layout.n_outputs > 1  # a multi-head model: its output vector is logits already
    if multi and output == "probability":
        raise ModelError(f"model {str(model_path)!r} has heads ({m.layout.n_outputs} logits per tile); "
                         "it is exported as logits: use --output auto or logit")
    if output == "logit" and not (m.can_logit or multi):
        raise ModelError(f"model {str(model_path)!r} does not end in a sigmoid Dense/Activation "
                         "layer, so it has no logit to export; use --output probability")
    logit = m.can_logit and output in ("auto", "logit")
    out_extra = {"output": "logit"} if logit or multi else {}
    heads = m.layout if multi else None
    tf = _tf()
    conv = m.make_converter(logit=logit)
    if quantize == "int8":
        def representative():
            for i in range(len(xcal)):
                yield [xcal[i:i + 1]]
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    elif quantize == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    try:
        model_bytes = conv.convert()
    except Exception as e:  # the converter raises ConverterError and assorted others
        text = str(e)
        lines = [ln.strip() for ln in text.splitlines() if "op" in ln.lower() or "error" in ln.lower()]
        reason = (lines[0] if lines else text.splitlines()[0] if text else type(e).__name__)[:240]
        raise ModelError(f"model {str(model_path)!r} cannot be converted to {quantize} TFLite ({reason}); "
                         + ("some ops have no int8 kernel -- use --quantize float16 or float32, or "
                            "replace those layers" if quantize == "int8" else "simplify the model")) from e
    # verify full int8: every tensor with float type other than ... must not remain
    from .litert import interpreter_class
    interp = interpreter_class()(model_content=model_bytes, num_threads=1)
    din = interp.get_input_details()[0]
    if quantize == "int8":
        float_ops = [t["name"] for t in interp.get_tensor_details() if t["dtype"] == np.float32]
        if din["dtype"] != np.int8 or float_ops:
            raise ModelError(f"model {str(model_path)!r} could not be fully quantized (float tensors "
                             f"remain: {', '.join(float_ops[:3]) or 'input'}); use --quantize float16 or "
                             "float32, or replace the layers that stay float")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(model_bytes)

    # self-check on held-back tiles
    from .litert import LiteRTClassifier
    info_tmp = ModelInfo(**info_kw, heads=heads, extra=out_extra)
    clf = LiteRTClassifier(out_path, num_threads=1, info=info_tmp)
    q = clf.predict_all(check)
    raw_f = m.predict(normalize_tiles(check, base.std_floor, base.clip))
    f = m.layout.decode(raw_f) if multi else None
    p_q, p_f = q.p_in_focus, (f.p_in_focus if multi else np.clip(raw_f, 0, 1))
    agree = float(np.mean((p_q >= thr) == (p_f >= thr))) if len(check) else float("nan")
    report = {"quantize": quantize, "size_bytes": len(model_bytes), "tile_px": m.tile_px,
              "output": "logit" if logit or multi else "probability",
              "std_floor": base.std_floor, "clip": base.clip,
              "calibration_tiles": int(len(cal)), "check_tiles": int(len(check)),
              "agreement": round(agree, 5),
              "max_abs_diff": round(float(np.max(np.abs(p_q - p_f))) if len(check) else 0.0, 4),
              "mean_abs_diff": round(float(np.mean(np.abs(p_q - p_f))) if len(check) else 0.0, 4)}
    if multi and len(check):
        db = np.abs(q.blur_px - f.blur_px)
        report.update(blur_max_abs_diff_px=round(float(db.max()), 4), blur_mean_abs_diff_px=round(float(db.mean()), 4),
                      motion_agreement=round(float(np.mean((q.p_motion >= 0.5) == (f.p_motion >= 0.5))), 5))
    report.update(_latency(model_bytes, m.tile_px, base))
    meta = dict(extra or {})
    meta.update(out_extra)
    meta["source_model"] = Path(model_path).name
    meta["conversion"] = report
    for k in ("arch", "macs_per_tile", "params", "laplacian_baseline_threshold", "seed", "epochs",
              "train_tiles", "val_tiles", "command"):
        if k in m.train_info:
            meta.setdefault("training", {})[k] = m.train_info[k]
    if "laplacian_baseline_threshold" in m.train_info:
        meta["laplacian_baseline_threshold"] = m.train_info["laplacian_baseline_threshold"]
    from . import file_sha256
    meta["sha256"] = file_sha256(out_path)  # ModelInfo.load checks the model file against it
    ModelInfo(**info_kw, heads=heads, extra=meta).save(metadata_path_for(out_path))
    clf.close()
    return report


def add_arguments(p) -> None:
    """The converter's options (shared by ``tools/convert.py`` and ``pifocus convert``)."""
    p.add_argument("model", help=".keras or .h5 file, or a SavedModel folder")
    p.add_argument("--calib", help="calibration data: a folder of images from your camera, or a "
                   ".npz tile set from tools/dataset.py (its val split is used if present)")
    p.add_argument("--out", required=True, help="output .tflite path (metadata .json beside it)")
    p.add_argument("--quantize", default="int8", choices=QUANTIZE,
                   help="int8 (default; full integer), or float16/float32 for models that cannot be quantized")
    p.add_argument("--threshold", type=bounded_float(0.0, 1.0), default=None,
                   help="in-focus probability threshold, 0..1 (default: the training run's, else 0.5)")
    p.add_argument("--n-calib", type=_N_CALIB, default=500,
                   help=f"tiles for the representative dataset ({_N_CALIB.range})")
    p.add_argument("--n-check", type=_N_CHECK, default=2000,
                   help=f"held-back tiles for the self-check ({_N_CHECK.range})")
    p.add_argument("--output", default="auto", choices=("auto", "probability", "logit"),
                   help="export the logit before a final sigmoid (finer int8 resolution; the "
                   "runner applies the sigmoid) or the probability; auto = logit when possible")
    p.add_argument("--std-floor", type=bounded_float(0.001, 255.0), default=None,
                   help="normalization the model was trained with, 0.001..255 (default: its .train.json, else 4)")
    p.add_argument("--clip", type=bounded_float(0.001, 1e4), default=None,
                   help="normalization clip (0.001..10000; default: as --std-floor)")
    p.add_argument("--name", default="pifocus-cnn")
    p.add_argument("--version", default="1")
    p.add_argument("--seed", type=SEED, default=0, help=f"random seed ({SEED.range})")


def run_args(a) -> dict:
    """Convert with parsed arguments; returns the check report (raises PiFocusError)."""
    return convert(a.model, a.out, a.calib, a.quantize, a.threshold, a.n_calib, a.n_check,
                   a.name, a.version, a.seed, normalization={"std_floor": a.std_floor, "clip": a.clip},
                   output=a.output)


def report_text(report: dict, out) -> str:
    """The human-readable summary of a conversion report."""
    return (f"wrote {out} ({report['size_bytes'] / 1024:.1f} KiB, {report['quantize']}) and "
            f"{metadata_path_for(out).name}\n"
            f"int8 vs float agreement {report['agreement']:.2%} on {report['check_tiles']} held-back "
            f"tiles (max |dp| {report['max_abs_diff']:.3f})\n"
            f"LiteRT 1 thread: {report['ms_per_tile_batch1']:.4f} ms/tile at batch 1, "
            f"{report['ms_per_tile_batch64']:.4f} ms/tile at batch 64")


def main(argv=None) -> int:
    """``tools/convert.py``: the ``pifocus convert`` command; returns the exit status."""
    from ..cli import main as cli_main
    return cli_main(["convert", *(sys.argv[1:] if argv is None else argv)])
