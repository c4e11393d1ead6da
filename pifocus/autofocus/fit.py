"""Peak fits through focus-curve samples.

* :func:`fit_peak` -- Gaussian (parabola through log-scores) or plain parabola, with the
  peak position, width (sigma) and R² of the fit;
* :func:`fit_eval` -- evaluate such a fit;
* :func:`_neighbourhood`, :func:`_fit_around` -- pick the samples around the best one and
  fit through them.
"""

import math
from typing import List, Optional

import numpy as np

from .run import Sample, _Run


def fit_peak(xs, ys, model: str = "gaussian") -> Optional[dict]:
    """Fit a peak through samples: ``gaussian`` = parabola through log(y), or ``parabola``.

    Returns ``{"model", "peak", "sigma", "r2", "coef", "x", "y"}`` (``coef`` in the
    normalized coordinate ``u = (x - x_mid) / x_scale``; ``sigma`` only for gaussian), or
    None when there are fewer than 3 distinct positions or the curve is not concave.
    """
    xs = np.asarray(xs, np.float64)
    ys = np.asarray(ys, np.float64)
    if len(np.unique(xs)) < 3:
        return None
    mid = float((xs.max() + xs.min()) / 2)
    scale = float(max((xs.max() - xs.min()) / 2, 1e-9))
    u = (xs - mid) / scale
    t = np.log(np.maximum(ys, 1e-6)) if model == "gaussian" else ys
    try:
        coef = np.polyfit(u, t, 2)
    except (np.linalg.LinAlgError, ValueError):
        return None
    a, b, c = (float(v) for v in coef)
    pred = np.polyval(coef, u)
    ss_res = float(((t - pred) ** 2).sum())
    ss_tot = float(((t - t.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
    if not a < 0:
        return None
    peak_u = -b / (2 * a)
    out = {"model": model, "peak": mid + peak_u * scale, "r2": r2, "coef": [a, b, c],
           "x_mid": mid, "x_scale": scale, "x": xs.tolist(), "y": ys.tolist()}
    out["sigma"] = math.sqrt(-1.0 / (2 * a)) * scale if model == "gaussian" else None
    return out


def fit_eval(fit: dict, x) -> np.ndarray:
    """Evaluate a :func:`fit_peak` result at positions ``x`` (in score units)."""
    u = (np.asarray(x, np.float64) - fit["x_mid"]) / fit["x_scale"]
    t = np.polyval(fit["coef"], u)
    return np.exp(t) if fit["model"] == "gaussian" else t



def _neighbourhood(samples: List[Sample], best: Sample, k: int, key=lambda s: s.score) -> List[Sample]:
    """``k`` samples (sorted by position) centred on ``best``."""
    srt = sorted(samples, key=lambda s: s.position)
    i = srt.index(best)
    half = k // 2
    a = max(0, min(i - half, len(srt) - k))
    return srt[a:a + k]


def _fit_around(run: _Run, model: str = "gaussian", k: int = 3, pool: Optional[List[Sample]] = None):
    """Fit a peak (``model``) through the ``k`` samples of ``pool`` (default: one per
    position of the run) centred on the best one.

    Returns ``(fit, best)``: the :func:`fit_peak` dict (or None) and the best sample;
    ``(None, None)`` with fewer than 3 samples.
    """
    pool = run.unique_sorted() if pool is None else pool
    if len(pool) < 3:
        return None, None
    best = max(pool, key=lambda s: s.score)
    nb = _neighbourhood(pool, best, min(k, len(pool)))
    fit = fit_peak([s.position for s in nb], [s.score for s in nb], model)
    return fit, best
