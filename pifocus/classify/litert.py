"""Run a ``.tflite`` focus model with the LiteRT interpreter.

The interpreter is looked up in order: ``ai_edge_litert`` (current, wheels for x86_64 and
aarch64), ``tflite_runtime`` (legacy, 32-bit Raspberry Pi OS, needs numpy < 2), then
``tensorflow.lite`` (development machines only).  int8, uint8 and float32 models are all
handled from the input/output quantization parameters.
"""

import logging
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ..exc import ModelError
from . import ModelInfo, TileClassifier, metadata_path_for, normalize_tiles, physical_cores
from .heads import TilePredictions

log = logging.getLogger(__name__)

#: Batch sizes the interpreter is resized to (one interpreter each, made on first use).  A
#: frame's tiles go in chunks of the largest size that fits what is left, so nothing is
#: padded: padding 24 or 32 tiles up to a batch of 64 (the old buckets 1, 4, 16, 64) ran
#: 2-2.7x the tiles, and the CNN stage of a 2028 x 1520 frame took 6-8 ms for 24-32 tiles
#: (``pifocus bench``); XNNPACK's cost per tile is about the same from batch 2 to 32.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)


def interpreter_class():
    """The best available TFLite ``Interpreter`` class.

    Raises:
        ModelError: none of ai_edge_litert, tflite_runtime, tensorflow is installed.
    """
    errors = []
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError as e:
        errors.append(f"ai_edge_litert: {e}")
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter
    except ImportError as e:
        errors.append(f"tflite_runtime: {e}")
    try:
        import tensorflow as tf  # development machines only
        return tf.lite.Interpreter
    except ImportError as e:
        errors.append(f"tensorflow: {e}")
    raise ModelError("no TFLite interpreter found (" + "; ".join(errors) + "); install one: "
                     "pip install ai-edge-litert (64-bit), or pip install 'pifocus[tflite-runtime]' "
                     "on 32-bit Raspberry Pi OS, or run with --no-cnn (Laplacian only)")


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.float32:
        return x.astype(np.float32, copy=False)
    scale, zero = detail["quantization"]
    if not scale:
        raise ModelError(f"model input is {np.dtype(dtype).name} but has no quantization scale")
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return y.astype(np.float32, copy=False)
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


class LiteRTClassifier(TileClassifier):
    """A ``.tflite`` focus model: in/out-of-focus, and (models with heads) blur radius and
    motion blur per tile.

    A model whose metadata has no ``"heads"`` layout and whose output is one value per tile
    is the old binary classifier: it loads with a warning (``blur_px``/``p_motion`` of
    :meth:`predict_all` are then NaN).

    Args:
        model_path: the ``.tflite`` file; its metadata is the ``.json`` beside it.
        num_threads: interpreter threads (default 1; capped at the physical core count).
        info: metadata to use instead of reading the JSON file (tools that have it in hand).

    Raises:
        ModelError: the file is missing or not a TFLite model; its input is not a single
            ``(1, tile_px, tile_px, 1)`` image tensor matching the metadata; its output size
            does not match the metadata's ``"heads"`` layout (or, without one, is not one
            value per tile).
    """

    def __init__(self, model_path, num_threads: Optional[int] = None, info: Optional[ModelInfo] = None):
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelError(f"model file {str(self.path)!r} not found; pass --model PATH to a "
                             ".tflite file, or --no-cnn for Laplacian-only analysis")
        self.info = info if info is not None else ModelInfo.load(metadata_path_for(self.path))
        cores = physical_cores()
        self.num_threads = max(1, min(int(num_threads or 1), cores))
        self._content = self.path.read_bytes()
        if len(self._content) < 8 or self._content[4:8] != b"TFL3":
            raise ModelError(f"model file {str(self.path)!r} is not a TFLite flatbuffer (no 'TFL3' "
                             "identifier); convert Keras models with tools/convert.py first")
        self._interpreters: Dict[int, object] = {}
        interp = self._interpreter(1)
        inputs, outputs = interp.get_input_details(), interp.get_output_details()
        if len(inputs) != 1:
            raise ModelError(f"model {str(self.path)!r} has {len(inputs)} inputs; a focus model "
                             "takes one image tensor")
        shape = tuple(int(s) for s in inputs[0]["shape"])
        want = (1, self.info.tile_px, self.info.tile_px, 1)
        if shape != want:
            raise ModelError(f"model {str(self.path)!r} input shape {shape} does not match its "
                             f"metadata (tile_px={self.info.tile_px} -> {want}); fix tile_px in "
                             f"{metadata_path_for(self.path).name} or re-export the model")
        if len(outputs) != 1:
            raise ModelError(f"model {str(self.path)!r} has {len(outputs)} output tensors; a focus "
                             "model has one (its heads are entries of one vector, see 'heads')")
        out_shape = tuple(int(s) for s in outputs[0]["shape"])
        n_out = int(np.prod(out_shape))
        layout = self.info.layout
        meta_name = metadata_path_for(self.path).name
        if self.info.heads is None and n_out != 1:
            raise ModelError(f"model {str(self.path)!r} output shape {out_shape} has {n_out} values per "
                             f"tile but {meta_name} has no 'heads' layout saying what they are; add "
                             "one (see models/MODEL_CARD.md) or re-convert the model")
        if n_out != layout.n_outputs:
            raise ModelError(f"model {str(self.path)!r} output shape {out_shape} does not match the "
                             f"'heads' layout in {meta_name}, which describes {layout.n_outputs} values "
                             f"per tile ({layout.to_dict()}); fix the metadata or re-convert the model")
        self.n_outputs = n_out
        if not self.info.has_blur:
            missing = [name for name, ok in (("blur-radius head (blur_px)", layout.has_blur),
                                             ("motion-blur head (p_motion)", layout.has_motion)) if not ok]
            log.warning("model %s has no %s: loaded as a binary in/out-of-focus classifier; "
                        "predict_all() returns NaN for %s", self.path, " and no ".join(missing),
                        " and ".join(m.split("(")[1].rstrip(")") for m in missing))
        self.input_dtype = np.dtype(inputs[0]["dtype"])
        # "output": "logit" in the metadata: the model ends before its sigmoid (finer int8
        # resolution of confident tiles); the sigmoid is applied here.
        kind = self.info.extra.get("output", "probability")
        if kind not in ("probability", "logit"):
            raise ModelError(f"model metadata {str(metadata_path_for(self.path))!r}: output = {kind!r} "
                             "is unknown; allowed: probability, logit")
        self._logit = kind == "logit"

    def _interpreter(self, batch: int):
        interp = self._interpreters.get(batch)
        if interp is None:
            cls = interpreter_class()
            try:
                interp = cls(model_content=self._content, num_threads=self.num_threads)
                if batch != 1:
                    idx = interp.get_input_details()[0]["index"]
                    interp.resize_tensor_input(idx, [batch, self.info.tile_px, self.info.tile_px, 1],
                                               strict=False)
                interp.allocate_tensors()
            except (ValueError, RuntimeError) as e:
                raise ModelError(f"model {str(self.path)!r} cannot be loaded by the TFLite "
                                 f"interpreter: {e}") from e
            self._interpreters[batch] = interp
        return interp

    def raw(self, tiles: np.ndarray) -> np.ndarray:
        """The dequantized model output, ``(N, n_outputs)`` float32 (logits or probabilities,
        as the metadata's ``"output"`` says), for ``(N, tile_px, tile_px)`` uint8 tiles."""
        n = len(tiles)
        k = self.n_outputs
        if n == 0:
            return np.zeros((0, k), np.float32)
        x = normalize_tiles(tiles, self.info.std_floor, self.info.clip)
        out = np.empty((n, k), np.float32)
        start = 0
        while start < n:
            remaining = n - start
            batch = max(b for b in BATCH_BUCKETS if b <= remaining)
            interp = self._interpreter(batch)
            din = interp.get_input_details()[0]
            dout = interp.get_output_details()[0]
            interp.set_tensor(din["index"], _quantize(x[start:start + batch], din))
            interp.invoke()
            out[start:start + batch] = _dequantize(interp.get_tensor(dout["index"]), dout).reshape(batch, k)
            start += batch
        return out

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        """In-focus probabilities for ``(N, tile_px, tile_px)`` uint8 tiles (float32, length N)."""
        z = self.raw(tiles)[:, self.info.layout.in_focus]
        if self._logit:
            return (1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0)))).astype(np.float32)
        return np.clip(z, 0.0, 1.0).astype(np.float32)

    def predict_all(self, tiles: np.ndarray) -> TilePredictions:
        """In-focus probability, blur radius (px) and motion probability per tile.

        Args:
            tiles: ``(N, tile_px, tile_px)`` uint8 luma tiles.

        Returns:
            :class:`~pifocus.classify.heads.TilePredictions` with float32 ``(N,)`` arrays
            ``p_in_focus`` (0..1, the same as :meth:`predict`), ``blur_px`` (defocus disk
            radius in pixels, 0..the last blur threshold) and ``p_motion`` (0..1); the last
            two are NaN for a model without those heads.
        """
        return self.info.layout.decode(self.raw(tiles), logit=self._logit)

    def close(self) -> None:
        self._interpreters.clear()
