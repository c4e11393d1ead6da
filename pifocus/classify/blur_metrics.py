"""Blur-radius error and motion-blur detection metrics (numpy only).

Used by ``pifocus evaluate`` (:mod:`.evaluate`) when the model has blur and motion heads and
the tile set carries ``radius_px`` / ``motion_px`` labels (``tools/blur_dataset.py``), and by
the training script's per-epoch report.

* :func:`radius_bins` -- mean absolute error of ``blur_px`` per true-radius bin.
* :func:`mean_by_radius` -- mean (and spread of) the prediction per true radius value.
* :func:`mae_by_bins` -- MAE over radii 0-3 px per bin of a tile covariate (the tile's
  contrast: where the blur of a tile is observable at all).
* :func:`motion_rates` -- motion flag rate on motion-blurred tiles (TPR) and on sharp or
  defocused tiles (FPR).
* :func:`blur_report` -- all of it per tile source, as a JSON-ready dict;
  :func:`format_blur_report` its text table.

Units: radii and motion lengths in pixels at the tile's scale.  The blur head saturates at
its last threshold (``max_px``, 8 px for the shipped model): errors are measured against the
true radius clipped to ``max_px``.
"""

from typing import Dict, Optional, Sequence

import numpy as np

#: Lower edges of the reporting bins (px); the last bin is open ("8 px or more").
RADIUS_BIN_EDGES_PX = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
#: Lower edges of the tile-contrast bins (standard deviation of the tile, DN) of the report.
CONTRAST_BIN_EDGES_DN = (0.0, 6.0, 12.0, 24.0)
#: Motion blur of at least this path length (px) is "motion-blurred".
MOTION_MIN_PX = 3.0


def _bin_name(lo: float, hi: Optional[float]) -> str:
    return f"{lo:g}-{hi:g}" if hi is not None else f">={lo:g}"


def radius_bins(pred_px, true_px, max_px: float = 8.0, edges=RADIUS_BIN_EDGES_PX) -> list:
    """MAE of predicted vs true radius per true-radius bin ``[edge_i, edge_i+1)``.

    Args:
        pred_px: predicted radii (px).
        true_px: true radii (px); NaN entries are ignored.
        max_px: the head's saturation; true radii are clipped to it for the error.

    Returns:
        ``[{"bin", "lo_px", "hi_px", "n", "mae_px", "bias_px", "mean_pred_px"}]`` (empty bins
        included with n = 0 and NaN errors).
    """
    p = np.asarray(pred_px, np.float64).ravel()
    t = np.asarray(true_px, np.float64).ravel()
    ok = np.isfinite(t) & np.isfinite(p)
    p, t = p[ok], t[ok]
    tc = np.minimum(t, max_px)
    rows = []
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else None
        m = (t >= lo) & ((t < hi) if hi is not None else True)
        n = int(m.sum())
        err = p[m] - tc[m]
        rows.append({"bin": _bin_name(lo, hi), "lo_px": lo, "hi_px": hi, "n": n,
                     "mae_px": float(np.abs(err).mean()) if n else float("nan"),
                     "bias_px": float(err.mean()) if n else float("nan"),
                     "mean_pred_px": float(p[m].mean()) if n else float("nan")})
    return rows


def mae_up_to(pred_px, true_px, max_true_px: float = 3.0) -> float:
    """MAE over the tiles with true radius ``<= max_true_px`` (NaN if none)."""
    p = np.asarray(pred_px, np.float64).ravel()
    t = np.asarray(true_px, np.float64).ravel()
    m = np.isfinite(t) & np.isfinite(p) & (t <= max_true_px)
    return float(np.abs(p[m] - t[m]).mean()) if m.any() else float("nan")


def mae_by_bins(pred_px, true_px, covariate, edges, max_true_px: float = 3.0) -> list:
    """MAE of the radius estimate over tiles with true radius ``<= max_true_px``, per bin
    ``[edge_i, edge_i+1)`` of ``covariate`` (the last bin open), e.g. the tile's standard
    deviation in DN (``CONTRAST_BIN_EDGES_DN``).

    Returns ``[{"bin", "lo", "hi", "n", "mae_px"}]`` (empty bins: n = 0, NaN).
    """
    p = np.asarray(pred_px, np.float64).ravel()
    t = np.asarray(true_px, np.float64).ravel()
    c = np.asarray(covariate, np.float64).ravel()
    ok = np.isfinite(p) & np.isfinite(t) & np.isfinite(c) & (t <= max_true_px)
    rows = []
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else None
        m = ok & (c >= lo) & ((c < hi) if hi is not None else True)
        n = int(m.sum())
        rows.append({"bin": _bin_name(lo, hi), "lo": lo, "hi": hi, "n": n,
                     "mae_px": float(np.abs(p[m] - t[m]).mean()) if n else float("nan")})
    return rows


def mean_by_radius(pred_px, true_px, step_px: float = 0.5, max_px: float = 10.0) -> list:
    """Mean, 10th and 90th percentile of the prediction per true radius, the true radii
    rounded to ``step_px`` (``[{"true_px", "n", "mean_pred_px", "p10_px", "p90_px"}]``)."""
    p = np.asarray(pred_px, np.float64).ravel()
    t = np.asarray(true_px, np.float64).ravel()
    ok = np.isfinite(t) & np.isfinite(p) & (t <= max_px + step_px / 2)
    p, t = p[ok], np.round(t[ok] / step_px) * step_px
    rows = []
    for v in np.unique(t):
        m = t == v
        rows.append({"true_px": float(v), "n": int(m.sum()), "mean_pred_px": float(p[m].mean()),
                     "p10_px": float(np.percentile(p[m], 10)), "p90_px": float(np.percentile(p[m], 90))})
    return rows


def is_monotonic(rows: Sequence[dict], key: str = "mean_pred_px", tol_px: float = 0.0) -> bool:
    """Whether ``rows[i][key]`` never decreases by more than ``tol_px`` (rows in true order)."""
    v = [r[key] for r in rows if r["n"] > 0]
    return all(b >= a - tol_px for a, b in zip(v, v[1:]))


def motion_rates(p_motion, motion_px, threshold: float = 0.5, min_px: float = MOTION_MIN_PX,
                 positive_mask=None) -> Dict[str, float]:
    """Motion-flag rates at ``threshold``.

    Args:
        p_motion: motion probabilities.
        motion_px: true motion path length (px; 0 = none; NaN = unknown, ignored).
        positive_mask: optional extra condition on the positives (e.g. textured tiles).

    Returns:
        ``{"tpr", "n_motion", "fpr", "n_still"}``: the fraction of tiles with motion
        ``>= min_px`` flagged, and of tiles with no motion (sharp or defocused) flagged.
    """
    p = np.asarray(p_motion, np.float64).ravel()
    L = np.asarray(motion_px, np.float64).ravel()
    pos = np.isfinite(L) & (L >= min_px)
    if positive_mask is not None:
        pos &= np.asarray(positive_mask, bool).ravel()
    neg = np.isfinite(L) & (L == 0)
    flag = p >= threshold
    return {"tpr": float(flag[pos].mean()) if pos.any() else float("nan"), "n_motion": int(pos.sum()),
            "fpr": float(flag[neg].mean()) if neg.any() else float("nan"), "n_still": int(neg.sum()),
            "threshold": float(threshold)}


def motion_by_length(p_motion, motion_px, threshold: float = 0.5) -> list:
    """Flag rate per true motion length (rounded to 1 px): ``[{"motion_px", "n", "tpr"}]``."""
    p = np.asarray(p_motion, np.float64).ravel()
    L = np.round(np.asarray(motion_px, np.float64).ravel())
    rows = []
    for v in np.unique(L[np.isfinite(L) & (L >= MOTION_MIN_PX)]):
        m = L == v
        rows.append({"motion_px": float(v), "n": int(m.sum()), "tpr": float(np.mean(p[m] >= threshold))})
    return rows


def blur_report(blur_px, p_motion, radius_px, motion_px, source, max_px: float = 8.0,
                motion_threshold: float = 0.5, textured=None, contrast_dn=None) -> dict:
    """Blur and motion metrics overall and per source (JSON-ready).

    Args:
        blur_px, p_motion: model outputs per tile.
        radius_px, motion_px: labels per tile (NaN = unknown).
        source: tile source names.
        textured: optional bool mask of tiles whose scene texture stands clearly above the
            noise (``texture_snr >= 10``); adds ``mae_0_3_px_textured``, ``radius_bins_textured``
            and ``motion_textured``.
        contrast_dn: optional per-tile standard deviation (DN); adds ``mae_0_3_by_contrast``
            (:func:`mae_by_bins` over ``CONTRAST_BIN_EDGES_DN``).

    Returns:
        ``{group: {"radius_bins": [...], "mae_0_3_px": x, "by_radius": [...],
        "monotonic": bool, "motion": {...}, "motion_textured": {...}}}`` for ``all`` and
        each source with labels.
    """
    source = np.asarray(source).astype(str)
    r = np.asarray(radius_px, np.float64)
    L = np.asarray(motion_px, np.float64)
    groups = {"all": np.ones(len(source), bool)}
    for s in sorted(set(source.tolist())):
        groups[s] = source == s
    out = {}
    for name, m in groups.items():
        g = {}
        if np.isfinite(r[m]).any():
            g["radius_bins"] = radius_bins(blur_px[m], r[m], max_px)
            g["mae_0_3_px"] = mae_up_to(blur_px[m], r[m], 3.0)
            g["by_radius"] = mean_by_radius(blur_px[m], r[m])
            g["monotonic"] = is_monotonic([x for x in g["by_radius"] if x["true_px"] <= max_px])
            if textured is not None:
                tm = np.asarray(textured, bool)[m]
                g["mae_0_3_px_textured"] = mae_up_to(blur_px[m][tm], r[m][tm], 3.0)
                g["radius_bins_textured"] = radius_bins(blur_px[m][tm], r[m][tm], max_px)
            if contrast_dn is not None:
                g["mae_0_3_by_contrast"] = mae_by_bins(blur_px[m], r[m], np.asarray(contrast_dn)[m],
                                                       CONTRAST_BIN_EDGES_DN)
        if np.isfinite(L[m]).any():
            g["motion"] = motion_rates(p_motion[m], L[m], motion_threshold)
            if (L[m] >= MOTION_MIN_PX).any():
                g["motion_by_length"] = motion_by_length(p_motion[m], L[m], motion_threshold)
            if textured is not None:
                g["motion_textured"] = motion_rates(p_motion[m], L[m], motion_threshold,
                                                    positive_mask=np.asarray(textured)[m])
        if g:
            out[name] = g
    return out


def format_blur_report(rep: dict) -> str:
    """Text tables of a :func:`blur_report`."""
    lines = []
    for name, g in rep.items():
        if "radius_bins" in g:
            bins = [b for b in g["radius_bins"] if b["n"]]
            lines.append(f"{name}: blur_px MAE (px) per true radius bin; MAE 0-3 px = {g['mae_0_3_px']:.3f}, "
                         f"mean prediction monotonic: {g['monotonic']}")
            lines.append("  " + " ".join(f"{b['bin']:>7s}" for b in bins))
            lines.append("  " + " ".join(f"{b['mae_px']:7.3f}" for b in bins))
            lines.append("  n " + " ".join(f"{b['n']:>5d}" for b in bins))
            if "mae_0_3_px_textured" in g:
                lines.append(f"  textured tiles: MAE 0-3 px = {g['mae_0_3_px_textured']:.3f}")
            if g.get("mae_0_3_by_contrast"):
                lines.append("  MAE 0-3 px by tile std (DN): " + ", ".join(
                    f"{x['bin']} {x['mae_px']:.2f} (n {x['n']})" for x in g["mae_0_3_by_contrast"] if x["n"]))
            lines.append("  true -> mean pred: " + ", ".join(f"{x['true_px']:g}->{x['mean_pred_px']:.2f}"
                                                              for x in g["by_radius"]))
        if "motion" in g:
            mo = g["motion"]
            line = (f"{name}: motion flag (p >= {mo['threshold']:.2f}): TPR {mo['tpr']:.3f} on "
                    f"{mo['n_motion']} tiles with >= {MOTION_MIN_PX:g} px motion, FPR {mo['fpr']:.3f} on "
                    f"{mo['n_still']} sharp/defocused tiles")
            if "motion_textured" in g:
                line += f"; TPR on textured tiles {g['motion_textured']['tpr']:.3f} ({g['motion_textured']['n_motion']})"
            lines.append(line)
            if g.get("motion_by_length"):
                lines.append("  TPR by motion length: " + ", ".join(
                    f"{x['motion_px']:g} px {x['tpr']:.2f}" for x in g["motion_by_length"]))
    return "\n".join(lines)
