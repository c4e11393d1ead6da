"""The CNN stage: classify texture-gated tiles as in or out of focus.

:class:`TileClassifier` is the base class; :mod:`.litert` runs an int8/uint8/float
``.tflite`` model with the LiteRT interpreter (``ai_edge_litert`` -> ``tflite_runtime`` ->
``tensorflow.lite``).  The contract every model and tool shares:

* **input**: square luma tiles of ``tile_px`` pixels, taken from the frame at full
  resolution (never resized: resizing changes sharpness), shape ``(N, tile_px, tile_px, 1)``;
* **normalization** (:func:`normalize_tiles`): per tile, subtract the mean and divide by
  ``max(std, std_floor)``, then clip to ``+-clip``, so brightness and contrast cannot decide
  focus but a flat tile stays near zero instead of having its noise blown up;
* **output**: one vector per tile: the in-focus logit (or probability) and, for models with
  heads (metadata ``"heads"``, :class:`~pifocus.classify.heads.OutputLayout`), a defocus
  blur radius code and a motion-blur logit; :meth:`TileClassifier.predict` returns the
  in-focus probability, :meth:`TileClassifier.predict_all` all three
  (:class:`~pifocus.classify.heads.TilePredictions`);
* **metadata JSON** beside the model (``model.tflite`` -> ``model.json``), see :class:`ModelInfo`.

Modules:

* ``__init__`` -- the contract: :class:`TileClassifier`, :class:`ModelInfo`,
  :func:`normalize_tiles`, :func:`load_classifier`.
* :mod:`.heads` -- the output layout (:class:`~pifocus.classify.heads.OutputLayout`) and its
  decoding into :class:`~pifocus.classify.heads.TilePredictions` (``blur_px``, ``p_motion``).
* :mod:`.litert` -- :class:`~pifocus.classify.litert.LiteRTClassifier`, the runner on the Pi.
* :mod:`.convert` -- quantize a desktop-trained Keras/SavedModel model to int8 TFLite
  (``pifocus convert``; needs TensorFlow).
* :mod:`.evaluate` -- ROC AUC / accuracy against the Laplacian baseline (``pifocus evaluate``).
* :mod:`.blur_metrics` -- blur-radius error per radius bin and motion-blur detection rates
  (part of ``pifocus evaluate`` for models with heads).
"""

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..exc import FileRefusedError, ModelError
from ..safeio import METADATA_MAX_BYTES, read_limited
from .heads import OutputLayout, TilePredictions

log = logging.getLogger(__name__)

#: Normalization methods a model's metadata may name.
NORMALIZATIONS = ("standardize",)


@dataclass(frozen=True)
class ModelInfo:
    """What a focus model expects, read from the JSON file beside it.

    Attributes:
        name: model name, e.g. ``"pifocus-cnn"``.
        version: model version string.
        tile_px: tile side in pixels (input is ``tile_px x tile_px x 1``).
        normalization: ``"standardize"`` (see :func:`normalize_tiles`).
        std_floor: lower bound on the per-tile standard deviation (8-bit DN) used to scale.
        clip: normalized values are clipped to ``[-clip, clip]``.
        threshold: probability at or above which a tile counts as in focus.
        heads: the output layout (``"heads"`` in the JSON), ``None`` for a binary model
            (one in-focus value per tile).
        extra: anything else the file holds (training data, metrics, ...), kept as is.
    """

    name: str = "pifocus-cnn"
    version: str = "0"
    tile_px: int = 32
    normalization: str = "standardize"
    std_floor: float = 4.0
    clip: float = 4.0
    threshold: float = 0.5
    heads: Optional[OutputLayout] = None
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not (8 <= int(self.tile_px) <= 256):
            raise ModelError(f"model metadata: tile_px = {self.tile_px!r} is outside 8..256 pixels")
        if self.normalization not in NORMALIZATIONS:
            raise ModelError(f"model metadata: normalization = {self.normalization!r} is unknown; "
                             f"allowed: {', '.join(NORMALIZATIONS)}")
        if not (0.0 < float(self.threshold) < 1.0):
            raise ModelError(f"model metadata: threshold = {self.threshold!r} must lie in (0, 1)")
        if float(self.std_floor) <= 0 or float(self.clip) <= 0:
            raise ModelError("model metadata: std_floor and clip must be > 0; "
                             f"got std_floor={self.std_floor!r}, clip={self.clip!r}")
        if self.heads is not None and not isinstance(self.heads, OutputLayout):
            raise ModelError(f"model metadata: heads must be an OutputLayout, got {type(self.heads).__name__}")

    @property
    def layout(self) -> OutputLayout:
        """The output layout (a binary model's is ``OutputLayout()``: one value)."""
        return self.heads if self.heads is not None else OutputLayout()

    @property
    def has_blur(self) -> bool:
        """Whether the model has the blur-radius and motion heads."""
        return self.heads is not None and self.heads.has_blur and self.heads.has_motion

    @classmethod
    def from_dict(cls, data: dict, source: str = "metadata") -> "ModelInfo":
        """Build from a parsed metadata dict; unknown keys go to ``extra``.

        Raises:
            ModelError: a field has the wrong type or value.
        """
        if not isinstance(data, dict):
            raise ModelError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__ if f not in ("extra", "heads")}
        kwargs = {k: data[k] for k in known if k in data}
        extra = {k: v for k, v in data.items() if k not in known and k != "heads"}
        heads = OutputLayout.from_dict(data["heads"], source) if data.get("heads") is not None else None
        try:
            kwargs = {k: (type(getattr(cls, k))(v) if k != "normalization" else str(v))
                      for k, v in kwargs.items()}
            return cls(extra=extra, heads=heads, **kwargs)
        except ModelError as e:
            raise ModelError(f"{source}: {e}") from e
        except (TypeError, ValueError) as e:
            raise ModelError(f"{source}: bad value ({e}); see models/MODEL_CARD.md for the format") from e

    @classmethod
    def load(cls, path, model_path=None) -> "ModelInfo":
        """Read a metadata JSON file and check the model file against its ``sha256``.

        Args:
            path: the metadata JSON.
            model_path: the model it describes (default: the same stem, ``.tflite``; not
                checked when that file does not exist).

        Raises:
            ModelError: the file is missing, not JSON, holds bad values, or its ``sha256``
                does not match the model file (corrupt or swapped).  Metadata without a
                ``sha256`` loads with a warning.
        """
        path = Path(path)
        try:
            data = json.loads(read_limited(path, "model metadata", METADATA_MAX_BYTES).decode("utf-8"))
        except FileNotFoundError as e:
            raise ModelError(f"model metadata {str(path)!r} not found; every .tflite needs a .json "
                             "beside it (tools/convert.py writes both)") from e
        except FileRefusedError as e:
            raise ModelError(f"{e}; give the .json written beside the .tflite") from e
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelError(f"model metadata {str(path)!r} is not valid JSON: {e}") from e
        info = cls.from_dict(data, source=f"model metadata {str(path)!r}")
        model = Path(model_path) if model_path is not None else path.with_suffix(".tflite")
        if model.is_file():
            verify_model_hash(model, info.extra.get("sha256"), path)
        return info

    def to_dict(self) -> dict:
        """The metadata as a JSON-ready dict (``extra`` merged in)."""
        d = asdict(self)
        extra = d.pop("extra")
        d.pop("heads")
        if self.heads is not None:
            d["heads"] = self.heads.to_dict()
        d.update(extra)
        return d

    def save(self, path) -> None:
        """Write the metadata JSON file."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n",
                              encoding="utf-8")


def normalize_tiles(tiles: np.ndarray, std_floor: float = 4.0, clip: float = 4.0) -> np.ndarray:
    """Contrast-normalize luma tiles for the CNN.

    Args:
        tiles: ``(N, h, w)`` or ``(N, h, w, 1)`` array of 8-bit luma (any numeric dtype).
        std_floor: lower bound on the per-tile standard deviation, in 8-bit DN, so that a
            flat tile's sensor noise is not amplified into fake texture.
        clip: clip the result to ``[-clip, clip]``.

    Returns:
        float32 array ``(N, h, w, 1)``: ``clip((x - mean) / max(std, std_floor))``.
    """
    t = np.asarray(tiles, dtype=np.float32)
    if t.ndim == 3:
        t = t[..., None]
    if t.ndim != 4 or t.shape[-1] != 1:
        raise ValueError(f"tiles must be (N, h, w) or (N, h, w, 1); got shape {t.shape}")
    mean = t.mean(axis=(1, 2, 3), keepdims=True)
    std = t.std(axis=(1, 2, 3), keepdims=True)
    out = (t - mean) / np.maximum(std, np.float32(std_floor))
    return np.clip(out, -clip, clip, out=out)


#: model files already warned about for lacking a sha256
_WARNED_NO_HASH: set = set()


def file_sha256(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_model_hash(model_path, expected, meta_path) -> None:
    """Compare the model file's SHA-256 with the metadata's ``sha256``.

    Raises:
        ModelError: they differ (a bit-flipped, truncated or swapped model), or ``sha256``
            is not a 64-digit hex string.  A missing ``sha256`` only logs a warning.
    """
    if expected is None:
        key = str(Path(model_path).resolve())
        if key in _WARNED_NO_HASH:
            return
        _WARNED_NO_HASH.add(key)  # once per model file and process (reloads, repeated loads)
        log.warning("model metadata %s has no sha256 of %s; the model file cannot be checked for "
                    "corruption (re-export it with pifocus convert, or add \"sha256\")", meta_path,
                    Path(model_path).name)
        return
    if not (isinstance(expected, str) and len(expected) == 64
            and all(c in "0123456789abcdefABCDEF" for c in expected)):
        raise ModelError(f"model metadata {str(meta_path)!r}: sha256 = {expected!r} is not a SHA-256 "
                         "(64 hex digits); write the output of `sha256sum` of the .tflite")
    try:
        actual = file_sha256(model_path)
    except OSError as e:
        raise ModelError(f"model {str(model_path)!r} cannot be read: {e}") from e
    if actual.lower() != expected.lower():
        raise ModelError(f"model {str(model_path)!r} is corrupt or not the one its metadata describes: "
                         f"sha256 {actual[:16]}... != {expected[:16]}... in {Path(meta_path).name}; "
                         "reinstall or re-copy the model together with its .json")


def metadata_path_for(model_path) -> Path:
    """The metadata JSON path that belongs to a model file (same stem, ``.json``)."""
    return Path(model_path).with_suffix(".json")


def default_model_path() -> Path:
    """Path of the model shipped with pifocus (package data ``pifocus.models``).

    Falls back to the checkout's ``models/`` folder when running from source.
    """
    try:
        from importlib.resources import files
        p = files("pifocus.models") / "focus_cnn_int8.tflite"
        if p.is_file():
            return Path(str(p))
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "models" / "focus_cnn_int8.tflite"


class TileClassifier:
    """Base class: turns a batch of luma tiles into in-focus probabilities.

    Attributes:
        info: the :class:`ModelInfo` (tile size, normalization, threshold).
    """

    info: ModelInfo

    @property
    def tile_px(self) -> int:
        """Tile side in pixels."""
        return self.info.tile_px

    @property
    def threshold(self) -> float:
        """Probability at or above which a tile is in focus."""
        return self.info.threshold

    @property
    def has_blur(self) -> bool:
        """Whether :meth:`predict_all` gives real ``blur_px`` and ``p_motion`` (else NaN)."""
        return self.info.has_blur

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        """In-focus probability (float32, 0..1) for each of ``N`` tiles.

        Args:
            tiles: ``(N, tile_px, tile_px)`` uint8 luma tiles (not yet normalized).
        """
        raise NotImplementedError

    def predict_all(self, tiles: np.ndarray) -> TilePredictions:
        """Everything the model says about each of ``N`` tiles.

        Args:
            tiles: ``(N, tile_px, tile_px)`` uint8 luma tiles (not yet normalized).

        Returns:
            :class:`~pifocus.classify.heads.TilePredictions`: ``p_in_focus`` (0..1),
            ``blur_px`` (defocus disk radius, pixels) and ``p_motion`` (0..1), float32
            ``(N,)`` each; ``blur_px`` and ``p_motion`` are NaN for a model without those
            heads.  This base implementation has none.
        """
        return TilePredictions.binary(self.predict(tiles))

    def close(self) -> None:
        """Release the interpreter."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_classifier(model_path=None, num_threads: Optional[int] = None) -> TileClassifier:
    """Load a ``.tflite`` focus model (default: the shipped one) with its metadata.

    Raises:
        ModelError: the file is missing, not a TFLite model, has the wrong input shape, or
            no TFLite interpreter is installed.
    """
    from .litert import LiteRTClassifier
    path = Path(model_path) if model_path else default_model_path()
    return LiteRTClassifier(path, num_threads=num_threads)


def physical_cores() -> int:
    """Physical CPU cores (LiteRT must not run more threads than this)."""
    try:
        with open("/proc/cpuinfo") as f:
            ids = {line.split(":")[1].strip() for line in f if line.startswith("core id")}
        if ids:
            return max(1, min(len(ids), os.cpu_count() or 1))
    except OSError:
        pass
    return max(1, os.cpu_count() or 1)
