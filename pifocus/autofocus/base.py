"""The base of the autofocus package: the :class:`Strategy` interface, the strategy
registry, the :class:`AutofocusResult` and the measure's scales.

Nothing here imports another module of the package, so every module can import this one.
"""

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Type

#: Down-scaling factors of the multi-scale focus measure.
SCALES = (2, 4, 8)

#: Strategy name -> :class:`Strategy` subclass, in the order :data:`STRATEGIES` lists
#: them.  Filled by :func:`register` (``pifocus.autofocus`` registers the built-in ones
#: when the package is imported).
REGISTRY: Dict[str, Type["Strategy"]] = {}


class Strategy:
    """One way to search for focus: where to sample, and which peak fit to trust.

    A strategy only *searches*: :func:`~pifocus.autofocus.autofocus` sets the run up, calls
    :meth:`search`, then applies the quality gate, makes the final approach and verifies.

    Subclasses set :attr:`name` (the ``[autofocus] strategy`` value) and
    :attr:`params_field` (the :class:`~pifocus.autofocus.AutofocusParams` field holding
    their parameters), and implement :meth:`search`.

    Attributes:
        params: this strategy's parameter object (e.g. a ``SweepParams``).
    """

    #: the name users select the strategy by
    name: str = ""
    #: the AutofocusParams field with this strategy's parameters
    params_field: str = ""

    def __init__(self, params):
        self.params = params

    @classmethod
    def from_params(cls, af_params) -> "Strategy":
        """The strategy configured from an ``AutofocusParams`` (its :attr:`params_field`)."""
        return cls(getattr(af_params, cls.params_field))

    def search(self, run) -> Tuple[Optional[dict], Optional[float]]:
        """Sample the focus curve through ``run`` (the run's ``_Run``).

        Returns:
            ``(fit, target)``: the peak fit (a :func:`~pifocus.autofocus.fit_peak` dict, or
            None) and the position to finish at (drive units; None = the best sample).

        Raises:
            _OutOfFrames: (from ``run``) the frame budget is used up; the caller finishes
                with the samples taken so far.
        """
        raise NotImplementedError


def register(cls: Type[Strategy]) -> Type[Strategy]:
    """Add a :class:`Strategy` subclass to :data:`REGISTRY` under its ``name``.

    Raises:
        ValueError: the class has no name, or the name is taken by another class.
    """
    if not cls.name:
        raise ValueError(f"strategy class {cls.__name__} has no name")
    if REGISTRY.get(cls.name, cls) is not cls:
        raise ValueError(f"strategy name {cls.name!r} is taken by {REGISTRY[cls.name].__name__}")
    REGISTRY[cls.name] = cls
    return cls


@dataclass
class AutofocusResult:
    """The outcome of one AF run.

    Attributes:
        final_position: where the drive was left (drive units).
        frames_used: frames read (including frames discarded while settling).
        moves: physical drive moves (an overshoot + approach counts as two).
        time_s: wall time of the run.
        curve: ``[[position, score], ...]`` in sampling order.
        success: the quality gate passed.
        reason: ``"ok"`` or why the run failed.
        fit: the peak fit used (model, peak, r2, sigma, coefficients) or None.
        strategy: the strategy name.
        best_position, best_score: the best sample.
        final_score: score of the verification frame at the final position.
        p_in_focus: CNN in-focus probability of that frame (None in Laplacian-only mode).
        confidence: how sure the run is that it stands at the subject's focus, 0..1
            (:func:`pifocus.autofocus.gate.confidence`: bracketed, clearly peaked, well fitted,
            reproduced; a failed run is at most 0.3).
        depth_of_focus: the depth of focus the curve shows, drive units (half width at half
            maximum of the fitted peak, :func:`pifocus.autofocus.gate.depth_of_focus`); None
            without a fit.  ``success`` means the final position is within it of the peak of
            the subject's curve, bracketed by lower samples.
    """

    final_position: float
    frames_used: int
    moves: int
    time_s: float
    curve: List[List[float]]
    success: bool
    reason: str
    fit: Optional[dict] = None
    strategy: str = ""
    best_position: Optional[float] = None
    best_score: Optional[float] = None
    final_score: Optional[float] = None
    p_in_focus: Optional[float] = None
    coarse_curve: List[List[float]] = field(default_factory=list)
    confidence: float = 0.0
    depth_of_focus: Optional[float] = None

    def to_dict(self) -> dict:
        """JSON-ready dict (the ``autofocus --json`` object)."""
        def num(v, nd=3):
            if v is None:
                return None
            v = float(v)
            return round(v, nd) if math.isfinite(v) else None

        fit = None
        if self.fit:
            fit = {k: (num(v, 6) if isinstance(v, float) else v) for k, v in self.fit.items()
                   if k in ("model", "peak", "r2", "sigma", "coef", "x_mid", "x_scale", "stage")}
            if isinstance(fit.get("coef"), list):
                fit["coef"] = [num(c, 6) for c in fit["coef"]]
        return {
            "final_position": num(self.final_position, 4),
            "frames_used": int(self.frames_used),
            "moves": int(self.moves),
            "time_s": num(self.time_s, 3),
            "success": bool(self.success),
            "reason": self.reason,
            "strategy": self.strategy,
            "curve": [[num(p, 4), num(s, 3)] for p, s in self.curve],
            "fit": fit,
            "best_position": num(self.best_position, 4),
            "best_score": num(self.best_score, 3),
            "final_score": num(self.final_score, 3),
            "p_in_focus": num(self.p_in_focus, 4),
            "confidence": num(self.confidence, 3),
            "depth_of_focus": num(self.depth_of_focus, 4),
        }
