"""The output layout of a focus model and the decoding of its per-tile output vector.

A focus model has one output tensor ``(batch, n_outputs)``.  :class:`OutputLayout` (the
``"heads"`` object of the metadata JSON) says which entry is what:

* ``in_focus`` -- index of the in-focus logit (the old binary model's only output);
* ``blur`` -- index of the first of ``len(blur_thresholds_px)`` defocus logits, and
  ``blur_thresholds_px`` -- increasing disk-PSF radii ``t_1 < ... < t_K`` in pixels at the
  tile's scale.  Logit ``k`` is the cumulative ("thermometer") code of the radius ``r``:
  ``sigmoid(z_k)`` is the fraction of the step ``[t_{k-1}, t_k]`` (``t_0`` = 0) that lies
  below ``r`` -- trained on ``clip((r - t_{k-1}) / (t_k - t_{k-1}), 0, 1)`` -- so for a
  sharp step it is ``P(r > t_k)``, and the blur estimate is
  ``blur_px = sum_k sigmoid(z_k) * (t_k - t_{k-1})`` (exact on the training code, monotone
  in every logit, saturating at ``t_K``);
* ``motion`` -- index of the motion-blur logit (linear or shake PSF of >= 3 px), and
  ``motion_threshold`` -- the ``p_motion`` at or above which a tile counts as motion-blurred
  (tuned on the training split for a low false-flag rate on still tiles; default 0.5).

A binary model has no ``"heads"`` entry: it is ``OutputLayout()`` with ``n_outputs == 1``.
"""

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..exc import ModelError

#: Keys the ``"heads"`` object may hold.
HEAD_KEYS = ("in_focus", "blur", "blur_thresholds_px", "motion", "motion_threshold", "n_outputs", "blur_code")
#: The only blur code so far (see the module docstring).
BLUR_CODE = "thermometer"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0)))).astype(np.float32)


@dataclass(frozen=True)
class OutputLayout:
    """Where each head sits in a model's output vector (validated).

    Attributes:
        in_focus: index of the in-focus logit.
        blur: index of the first defocus logit, or ``None`` (no blur head).
        blur_thresholds_px: increasing positive disk radii (px), one per defocus logit.
        motion: index of the motion-blur logit, or ``None`` (no motion head).
        motion_threshold: ``p_motion`` at or above which a tile is flagged motion-blurred.

    Raises:
        ModelError: negative, overlapping or gapped indices; thresholds not increasing;
            ``motion_threshold`` outside (0, 1).
    """

    in_focus: int = 0
    blur: Optional[int] = None
    blur_thresholds_px: Tuple[float, ...] = ()
    motion: Optional[int] = None
    motion_threshold: float = 0.5

    def __post_init__(self):
        th = tuple(float(t) for t in self.blur_thresholds_px)
        object.__setattr__(self, "blur_thresholds_px", th)
        if (self.blur is None) != (len(th) == 0):
            raise ModelError("model metadata heads: 'blur' (first blur logit) and 'blur_thresholds_px' "
                             "come together; give both or neither")
        if th and (th[0] <= 0 or any(b <= a for a, b in zip(th, th[1:])) or not all(map(math.isfinite, th))):
            raise ModelError(f"model metadata heads: blur_thresholds_px {list(th)} must be positive and "
                             "strictly increasing (pixels)")
        if not 0.0 < float(self.motion_threshold) < 1.0:
            raise ModelError(f"model metadata heads: motion_threshold = {self.motion_threshold!r} must lie in (0, 1)")
        used = [self.in_focus]
        if self.blur is not None:
            used += list(range(self.blur, self.blur + len(th)))
        if self.motion is not None:
            used.append(self.motion)
        if any(int(i) != i or i < 0 for i in used):
            raise ModelError(f"model metadata heads: indices must be integers >= 0; got {used}")
        if sorted(used) != list(range(len(used))):
            raise ModelError(f"model metadata heads: the output indices {sorted(used)} must cover 0.."
                             f"{len(used) - 1} exactly once (overlapping or missing entries)")

    @property
    def n_outputs(self) -> int:
        """Length of the output vector per tile."""
        return 1 + len(self.blur_thresholds_px) + (self.motion is not None)

    @property
    def has_blur(self) -> bool:
        """Whether the model estimates a defocus radius."""
        return self.blur is not None

    @property
    def has_motion(self) -> bool:
        """Whether the model flags motion blur."""
        return self.motion is not None

    @property
    def max_blur_px(self) -> float:
        """The largest radius the blur head can report (its last threshold), or NaN."""
        return self.blur_thresholds_px[-1] if self.blur_thresholds_px else float("nan")

    @classmethod
    def from_dict(cls, data, source: str = "model metadata") -> "OutputLayout":
        """Parse the ``"heads"`` object.

        Raises:
            ModelError: not an object, unknown keys, wrong types or an inconsistent layout.
        """
        if not isinstance(data, dict):
            raise ModelError(f"{source}: 'heads' must be a JSON object such as "
                             '{"in_focus": 0, "blur": 1, "blur_thresholds_px": [...], "motion": 9}')
        unknown = sorted(set(data) - set(HEAD_KEYS))
        if unknown:
            raise ModelError(f"{source}: unknown key(s) in 'heads': {', '.join(unknown)}; allowed: "
                             f"{', '.join(HEAD_KEYS)}")
        if data.get("blur_code", BLUR_CODE) != BLUR_CODE:
            raise ModelError(f"{source}: heads.blur_code = {data['blur_code']!r} is unknown; allowed: {BLUR_CODE}")
        try:
            th = data.get("blur_thresholds_px", ())
            if not isinstance(th, (list, tuple)):
                raise TypeError("blur_thresholds_px must be a list of numbers")
            out = cls(in_focus=_index(data.get("in_focus", 0)),
                      blur=None if data.get("blur") is None else _index(data["blur"]),
                      blur_thresholds_px=tuple(float(t) for t in th),
                      motion=None if data.get("motion") is None else _index(data["motion"]),
                      motion_threshold=float(data.get("motion_threshold", 0.5)))
        except ModelError as e:
            raise ModelError(f"{source}: {e}") from e
        except (TypeError, ValueError) as e:
            raise ModelError(f"{source}: bad 'heads' value ({e})") from e
        if "n_outputs" in data and data["n_outputs"] != out.n_outputs:
            raise ModelError(f"{source}: heads.n_outputs = {data['n_outputs']!r} but the listed heads "
                             f"occupy {out.n_outputs} outputs")
        return out

    def to_dict(self) -> dict:
        """The JSON ``"heads"`` object."""
        d = {"in_focus": self.in_focus, "n_outputs": self.n_outputs}
        if self.has_blur:
            d.update(blur=self.blur, blur_thresholds_px=list(self.blur_thresholds_px), blur_code=BLUR_CODE)
        if self.has_motion:
            d.update(motion=self.motion, motion_threshold=self.motion_threshold)
        return d

    def blur_targets(self, radius_px) -> np.ndarray:
        """The training code of radii: ``(N, K)`` float32 in 0..1 (NaN rows for NaN radii)."""
        r = np.asarray(radius_px, np.float64).reshape(-1, 1)
        t = np.asarray(self.blur_thresholds_px, np.float64)
        lo = np.r_[0.0, t[:-1]]
        return np.clip((r - lo) / (t - lo), 0.0, 1.0).astype(np.float32)

    def decode_blur(self, blur_probs: np.ndarray) -> np.ndarray:
        """Radius estimate (px) from the ``(N, K)`` blur probabilities."""
        t = np.asarray(self.blur_thresholds_px, np.float32)
        steps = np.diff(np.r_[np.float32(0.0), t])
        return (np.asarray(blur_probs, np.float32) @ steps).astype(np.float32)

    def decode(self, raw: np.ndarray, logit: bool = True) -> "TilePredictions":
        """Per-tile predictions from the ``(N, n_outputs)`` model output.

        Args:
            raw: dequantized model output.
            logit: the outputs are logits (sigmoid applied here); else probabilities
                (clipped to 0..1).

        Raises:
            ValueError: ``raw`` is not ``(N, n_outputs)``.
        """
        raw = np.asarray(raw, np.float32)
        if raw.ndim != 2 or raw.shape[1] != self.n_outputs:
            raise ValueError(f"model output of shape {raw.shape} does not match the layout's "
                             f"{self.n_outputs} values per tile")
        p = _sigmoid(raw) if logit else np.clip(raw, 0.0, 1.0)
        n = len(raw)
        nan = np.full(n, np.nan, np.float32)
        blur = (self.decode_blur(p[:, self.blur:self.blur + len(self.blur_thresholds_px)])
                if self.has_blur else nan)
        motion = p[:, self.motion].copy() if self.has_motion else nan.copy()
        return TilePredictions(p_in_focus=p[:, self.in_focus].copy(), blur_px=blur, p_motion=motion)


def _index(v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
        raise TypeError(f"an output index must be an integer, got {v!r}")
    return int(v)


@dataclass(frozen=True)
class TilePredictions:
    """What the CNN says about each of ``N`` tiles (float32 arrays of shape ``(N,)``).

    Attributes:
        p_in_focus: probability that the tile is in focus (0..1), as ``predict()`` returns.
        blur_px: estimated defocus (disk-PSF) radius in pixels at the tile's scale, 0 up to
            the model's largest threshold (8 px for the shipped model: "8 or more"); NaN when
            the model has no blur head.  Meaningful on textured tiles that are not
            motion-blurred.
        p_motion: probability that the tile is motion-blurred (a linear or shake PSF of
            >= 3 px); NaN when the model has no motion head.  Flag a tile as motion-blurred
            when ``p_motion >= info.heads.motion_threshold``.
    """

    p_in_focus: np.ndarray
    blur_px: np.ndarray
    p_motion: np.ndarray

    def __len__(self) -> int:
        return len(self.p_in_focus)

    def as_dict(self) -> dict:
        """``{"p_in_focus": array, "blur_px": array, "p_motion": array}``."""
        return {"p_in_focus": self.p_in_focus, "blur_px": self.blur_px, "p_motion": self.p_motion}

    @classmethod
    def binary(cls, p_in_focus: np.ndarray) -> "TilePredictions":
        """Predictions of a model with no blur or motion head (those are NaN)."""
        p = np.asarray(p_in_focus, np.float32)
        return cls(p_in_focus=p, blur_px=np.full(len(p), np.nan, np.float32),
                   p_motion=np.full(len(p), np.nan, np.float32))
