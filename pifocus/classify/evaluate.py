"""Evaluate a focus model against the Laplacian-variance baseline.

On a tile set (``.npz`` from ``tools/dataset.py``: ``tiles``, ``labels``, ``source``,
``split``) or on folders of images (``DIR/in_focus/*`` and ``DIR/out_of_focus/*``; images
larger than a tile are cut into a grid of tiles, flat tiles dropped), report side by side:

* the CNN: ROC AUC, accuracy at the model's shipped threshold;
* a Laplacian-variance threshold baseline: ROC AUC, accuracy at a threshold tuned on the
  **training split only** (all of it, as training tunes the CNN's) (or, for folders, the one stored in the model's metadata JSON,
  or ``--lap-threshold``);

overall and per source, and write a ROC plot PNG.  For a model with blur and motion heads
on a tile set with ``radius_px`` / ``motion_px`` labels (``tools/blur_dataset.py``), also the
blur-radius error per radius bin and the motion-blur detection rates
(:mod:`.blur_metrics`); tiles whose in-focus label is 255 ("none") count for those only.
numpy only (matplotlib for the plot,
imported when the plot is written); no TensorFlow.

Usage::

    python tools/evaluate.py --tiles build/tiles.npz --split val --plot build/roc.png
    pifocus evaluate --images DIR --json
"""

import logging
import sys
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ..exc import ConfigError, ModelError
from ..validate import require_matplotlib
from ..argtypes import bounded_float, bounded_int

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
#: Folder names that mean "in focus" / "out of focus" in an image-folder evaluation set.
IN_NAMES = ("in_focus", "in", "sharp", "1")
OUT_NAMES = ("out_of_focus", "out", "blurred", "blur", "0")
#: Blur/motion report: a tile is "textured" when its sharp source's texture energy is at least
#: this many times the noise energy (``texture_snr`` of tools/blur_dataset.py).
TEXTURED_SNR = 10.0
#: Tiles with a Laplacian variance below this are dropped from image folders (flat).
FLAT_LAPVAR = 60.0


# ---------------------------------------------------------------------------------------
# Metrics (numpy only)
# ---------------------------------------------------------------------------------------

def _check(scores, labels):
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores ({s.shape}) and labels ({y.shape}) differ in length")
    return s, y


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve (probability a random positive outscores a random negative,
    ties counting one half), by the rank-sum formula.  ``nan`` if a class is missing."""
    s, y = _check(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(scores, labels):
    """``(fpr, tpr, thresholds)``: one point per distinct score, from (0, 0) to (1, 1);
    a tile is called positive when its score is ``>=`` the threshold."""
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.nonzero(np.diff(s))[0]
    idx = np.r_[distinct, len(s) - 1]
    tps = np.cumsum(y)[idx]
    fps = (idx + 1) - tps
    p, n = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    tpr = np.r_[0.0, tps / p]
    fpr = np.r_[0.0, fps / n]
    thr = np.r_[np.inf, s[idx]]
    return fpr, tpr, thr


def accuracy(scores, labels, threshold: float) -> float:
    """Fraction of tiles where ``score >= threshold`` equals the label."""
    s, y = _check(scores, labels)
    if len(s) == 0:
        return float("nan")
    return float(np.mean((s >= threshold) == y))


def best_threshold(scores, labels) -> float:
    """The threshold with the highest accuracy (midway between adjacent distinct scores)."""
    s, y = _check(scores, labels)
    if len(s) == 0:
        raise ValueError("cannot tune a threshold on no tiles")
    order = np.argsort(s, kind="mergesort")
    s, y = s[order], y[order]
    # calling everything at index >= k positive: correct = negatives below k + positives from k
    neg_below = np.r_[0, np.cumsum(~y)]
    pos_from = np.r_[np.cumsum(y[::-1])[::-1], 0]
    correct = neg_below + pos_from
    # only split between distinct values
    valid = np.r_[True, s[1:] != s[:-1], True]
    correct = np.where(valid, correct, -1)
    k = int(np.argmax(correct))
    if k == 0:
        return float(s[0])
    if k == len(s):
        return float(np.nextafter(s[-1], np.inf))
    return float((s[k - 1] + s[k]) / 2.0)


def laplacian_variance(tiles) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian over each tile's interior (the kernel of
    ``cv2.Laplacian(ksize=1)``), vectorized over ``(N, h, w)`` tiles; float64 (N,)."""
    t = np.asarray(tiles, np.float32)
    if t.ndim == 4:
        t = t[..., 0]
    lap = (t[:, :-2, 1:-1] + t[:, 2:, 1:-1] + t[:, 1:-1, :-2] + t[:, 1:-1, 2:]
           - 4.0 * t[:, 1:-1, 1:-1])
    return lap.reshape(len(t), -1).astype(np.float64).var(axis=1)


def metrics(scores, labels, threshold: float) -> Dict[str, float]:
    """AUC, accuracy at ``threshold``, counts."""
    s, y = _check(scores, labels)
    return {"auc": roc_auc(s, y), "accuracy": accuracy(s, y, threshold), "n": int(len(s)),
            "n_in_focus": int(y.sum()), "threshold": float(threshold)}


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------

def load_tileset(path) -> dict:
    """Read a ``.npz`` tile set; raises ConfigError naming the path on a bad file."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
        d = {k: z[k] for k in z.files}
    except FileNotFoundError as e:
        raise ConfigError(f"tile set {str(path)!r} not found; build one with tools/dataset.py") from e
    except (OSError, ValueError) as e:
        raise ConfigError(f"tile set {str(path)!r} is not a readable .npz ({e}); rebuild it "
                          "with tools/dataset.py") from e
    missing = [k for k in ("tiles", "labels") if k not in d]
    if missing:
        raise ConfigError(f"tile set {str(path)!r} lacks {', '.join(missing)}; expected the "
                          "arrays written by tools/dataset.py")
    n = len(d["labels"])
    d.setdefault("source", np.array(["tiles"] * n))
    d.setdefault("split", np.array(["val"] * n))
    if d["tiles"].ndim != 3 or len(d["tiles"]) != n:
        raise ConfigError(f"tile set {str(path)!r}: tiles must be (N, h, w) with N = len(labels)")
    return d


def grid_tiles(gray: np.ndarray, tile: int, flat: float = FLAT_LAPVAR) -> np.ndarray:
    """Non-overlapping ``tile`` grid over an image, flat tiles (Laplacian variance < ``flat``)
    dropped; a tile-sized image is returned as is."""
    h, w = gray.shape
    if h < tile or w < tile:
        return np.zeros((0, tile, tile), np.uint8)
    rows, cols = h // tile, w // tile
    t = gray[:rows * tile, :cols * tile].reshape(rows, tile, cols, tile).swapaxes(1, 2)
    t = t.reshape(-1, tile, tile)
    if len(t) == 1:
        return t
    return t[laplacian_variance(t) >= flat]


def load_image_folders(root, tile: int) -> dict:
    """Tiles from ``root/in_focus/*`` (label 1) and ``root/out_of_focus/*`` (label 0);
    ``source`` is the class folder's parent, e.g. ``root`` itself or ``root/SETNAME``."""
    import cv2
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"image folder {str(root)!r} not found; pass a folder holding "
                          "in_focus/ and out_of_focus/ subfolders of images")
    groups = []
    for d in sorted([root] + [p for p in root.iterdir() if p.is_dir()]):
        for label, names in ((1, IN_NAMES), (0, OUT_NAMES)):
            for name in names:
                if (d / name).is_dir():
                    groups.append((d.name, label, d / name))
    if not groups:
        raise ConfigError(f"image folder {str(root)!r} has no in_focus/ and out_of_focus/ "
                          "subfolders; put sharp images in ROOT/in_focus and blurred ones in "
                          "ROOT/out_of_focus (or per set: ROOT/SET/in_focus ...)")
    tiles, labels, source = [], [], []
    for src, label, d in groups:
        for f in sorted(d.iterdir()):
            if f.suffix.lower() not in IMAGE_EXTS:
                continue
            img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            if img is None:
                log.warning("%s: unreadable image, skipped", f)
                continue
            t = grid_tiles(img, tile)
            tiles.append(t)
            labels += [label] * len(t)
            source += [src] * len(t)
    if not labels:
        raise ConfigError(f"image folder {str(root)!r}: no readable, textured images of at least "
                          f"{tile}x{tile} pixels in its in_focus/out_of_focus folders")
    return {"tiles": np.concatenate(tiles), "labels": np.array(labels, np.uint8),
            "source": np.array(source), "split": np.array(["val"] * len(labels))}


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------

def compare(p_cnn, lapvar, labels, source, cnn_threshold: float, lap_threshold: float,
            real_mask=None) -> dict:
    """Side-by-side metrics, overall, on real tiles, and per source."""
    labels = np.asarray(labels).astype(bool)
    source = np.asarray(source)
    loglap = np.log10(np.asarray(lapvar, np.float64) + 1e-3)
    lt = float(np.log10(lap_threshold + 1e-3))
    groups = {"all": np.ones(len(labels), bool)}
    if real_mask is not None and real_mask.any() and not real_mask.all():
        groups["real"] = np.asarray(real_mask, bool)
    for s in sorted(set(source.tolist())):
        groups[s] = source == s
    out = {}
    for name, m in groups.items():
        out[name] = {"cnn": metrics(p_cnn[m], labels[m], cnn_threshold),
                     "laplacian": metrics(loglap[m], labels[m], lt)}
        out[name]["laplacian"]["threshold"] = float(lap_threshold)
    return out


def format_table(result: dict) -> str:
    rows = [f"{'group':18s} {'tiles':>7s} {'%in':>5s} | {'CNN AUC':>8s} {'CNN acc':>8s} | "
            f"{'Lap AUC':>8s} {'Lap acc':>8s} | {'acc gain':>8s}"]
    for name, r in result.items():
        c, l = r["cnn"], r["laplacian"]
        pin = 100.0 * c["n_in_focus"] / max(c["n"], 1)
        rows.append(f"{name:18s} {c['n']:7d} {pin:5.1f} | {c['auc']:8.4f} {100 * c['accuracy']:7.2f}% | "
                    f"{l['auc']:8.4f} {100 * l['accuracy']:7.2f}% | "
                    f"{100 * (c['accuracy'] - l['accuracy']):+7.2f}")
    return "\n".join(rows)


def plot_roc(path, curves: dict, title: str = "Focus tile classifier: ROC") -> None:
    """Write a ROC plot PNG; ``curves`` maps a label to ``(scores, labels)``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 6), dpi=110)
    groups = []
    for name, (s, y) in curves.items():
        fpr, tpr, _ = roc_curve(s, y)
        group = name.split(",", 1)[-1]  # same colour for one tile group, CNN solid, baseline dashed
        if group not in groups:
            groups.append(group)
        ls = "--" if "Laplacian" in name else "-"
        ax.plot(fpr, tpr, ls, lw=1.6, color=f"C{groups.index(group) % 10}",
                label=f"{name} (AUC {roc_auc(s, y):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    ax.set_xlabel("false positive rate (out-of-focus tiles called sharp)")
    ax.set_ylabel("true positive rate (in-focus tiles called sharp)")
    ax.set_title(title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.005)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def evaluate(model_path=None, tiles_path=None, images=None, split: str = "val",
             lap_threshold: Optional[float] = None, plot=None, num_threads: int = 1,
             predict=None, info=None) -> dict:
    """Run the evaluation; returns a JSON-ready dict (see :func:`compare`).

    ``predict``/``info`` let a caller (training) pass an in-memory model instead of a file.
    With a model that has heads, the result also holds ``"blur"`` (see
    :func:`~pifocus.classify.blur_metrics.blur_report`; ``None`` when the tiles carry no
    radius/motion labels).
    """
    from . import ModelInfo, default_model_path, metadata_path_for
    if (tiles_path is None) == (images is None):
        raise ConfigError("evaluate: give exactly one of --tiles FILE.npz or --images DIR")
    if plot:
        require_matplotlib("--plot")  # now, not after minutes of inference
    data = load_tileset(tiles_path) if tiles_path is not None else None  # bad input first, then the model
    predict_all = None
    if predict is None:
        from .litert import LiteRTClassifier
        path = Path(model_path) if model_path else default_model_path()
        clf = LiteRTClassifier(path, num_threads=num_threads)
        info, predict = clf.info, clf.predict
        predict_all = clf.predict_all if clf.has_blur else None
    elif info is None:
        info = ModelInfo()
    if tiles_path is not None:
        if data["tiles"].shape[1] != info.tile_px:
            raise ConfigError(f"tile set {str(tiles_path)!r} has {data['tiles'].shape[1]} px tiles "
                              f"but the model takes {info.tile_px} px; rebuild it with "
                              f"tools/dataset.py --tile {info.tile_px}")
        split_arr = data["split"].astype(str)
        train = (split_arr == "train") & (data["labels"] <= 1)  # 255 = no in-focus label
        if lap_threshold is None:
            if not train.any():
                raise ConfigError(f"tile set {str(tiles_path)!r} has no train split to tune the "
                                  "Laplacian threshold on; pass --lap-threshold")
            lv_train = laplacian_variance(data["tiles"][train])
            lap_threshold = float(10 ** best_threshold(np.log10(lv_train + 1e-3), data["labels"][train]))
        sel = split_arr == split if split != "all" else np.ones(len(split_arr), bool)
        if not sel.any():
            raise ConfigError(f"tile set {str(tiles_path)!r} has no {split!r} tiles; use --split all")
        tiles, labels, source = data["tiles"][sel], data["labels"][sel], data["source"][sel].astype(str)
        blur_labels = {k: data[k][sel] for k in ("radius_px", "motion_px", "texture_snr") if k in data}
    else:
        blur_labels = {}
        data = load_image_folders(images, info.tile_px)
        if lap_threshold is None:
            lap_threshold = info.extra.get("laplacian_baseline_threshold")
            if lap_threshold is None:
                raise ConfigError(f"{str(metadata_path_for(model_path or default_model_path()))!r} "
                                  "has no laplacian_baseline_threshold; pass --lap-threshold")
        tiles, labels, source = data["tiles"], data["labels"], data["source"].astype(str)
    pred = predict_all(tiles) if predict_all is not None else None
    p_all = np.asarray(pred.p_in_focus if pred is not None else predict(tiles), np.float64)
    blur = None
    if pred is not None and ("radius_px" in blur_labels or "motion_px" in blur_labels):
        from .blur_metrics import blur_report
        n = len(tiles)
        snr = blur_labels.get("texture_snr")
        blur = blur_report(pred.blur_px, pred.p_motion, blur_labels.get("radius_px", np.full(n, np.nan)),
                           blur_labels.get("motion_px", np.full(n, np.nan)), source, info.layout.max_blur_px,
                           motion_threshold=info.layout.motion_threshold,
                           textured=None if snr is None else snr >= TEXTURED_SNR,
                           contrast_dn=tiles.reshape(n, -1).std(axis=1))
    has = np.asarray(labels) <= 1
    flag_rate = None
    if pred is not None:  # how often the motion head fires, per source (for still tile sets: false flags)
        flagged = pred.p_motion >= info.layout.motion_threshold
        flag_rate = {"all": float(flagged.mean()) if len(flagged) else float("nan")}
        flag_rate.update({s: float(flagged[source == s].mean()) for s in sorted(set(source.tolist()))})
    tiles, labels, source, p = tiles[has], labels[has], source[has], p_all[has]
    lv = laplacian_variance(tiles)
    real = ~(np.char.startswith(source.astype(str), "synthetic") | np.char.startswith(source.astype(str), "chart"))
    result = compare(p, lv, labels, source, info.threshold, float(lap_threshold), real) if has.any() else {}
    if plot:
        y = labels.astype(bool)
        curves = {}
        for name, m in (("real", real), ("synthetic", ~real)):
            if m.any() and len(set(y[m].tolist())) == 2:
                curves[f"CNN, {name} tiles"] = (p[m], y[m])
                curves[f"Laplacian var, {name} tiles"] = (lv[m], y[m])
        plot_roc(plot, curves, title=f"Focus tiles ({split} split): CNN vs Laplacian variance")
    out = {"split": split, "cnn_threshold": info.threshold, "laplacian_threshold": float(lap_threshold),
           "groups": result}
    if info.has_blur and predict_all is not None:
        out["blur"] = blur
        out["motion_flag_rate"] = flag_rate
    return out


def add_arguments(p) -> None:
    """The evaluation's options (shared by ``tools/evaluate.py`` and ``pifocus evaluate``)."""
    p.add_argument("--model", help="the .tflite model (default: the shipped one)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--tiles", help="a tile set .npz from tools/dataset.py")
    g.add_argument("--images", help="a folder with in_focus/ and out_of_focus/ image subfolders")
    p.add_argument("--split", default="val", choices=("train", "val", "all"),
                   help="which split of a tile set to evaluate (default val)")
    p.add_argument("--lap-threshold", type=bounded_float(0.0, 1e12), default=None,
                   help="Laplacian-variance threshold for the baseline, 0..1e+12 (default: tuned on the "
                   "train split of --tiles, or the model metadata's for --images)")
    p.add_argument("--plot", help="write the ROC plot to this PNG")
    p.add_argument("--threads", type=bounded_int(1, 64), default=1, help="LiteRT threads (1..64) [1]")


def run_args(a) -> dict:
    """Evaluate with parsed arguments (raises PiFocusError)."""
    return evaluate(a.model, a.tiles, a.images, a.split, a.lap_threshold, a.plot, a.threads)


def report_text(res: dict, plot=None) -> str:
    """Human-readable table of an evaluation result."""
    lines = [f"split={res['split']}  CNN threshold={res['cnn_threshold']:.3f}  "
             f"Laplacian threshold={res['laplacian_threshold']:.1f} (tuned on train)",
             format_table(res["groups"])]
    if res.get("motion_flag_rate"):
        lines.append("motion flag rate (p_motion >= threshold) per source: " + ", ".join(
            f"{k} {100 * v:.1f} %" for k, v in res["motion_flag_rate"].items()))
    if "blur" in res:
        from .blur_metrics import format_blur_report
        lines.append(format_blur_report(res["blur"]) if res["blur"] else
                     "(this tile set has no radius_px/motion_px labels: blur and motion heads not evaluated; "
                     "build one with tools/blur_dataset.py)")
    if plot:
        lines.append(f"ROC plot -> {plot}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """``tools/evaluate.py``: the ``pifocus evaluate`` command; returns the exit status."""
    from ..cli import main as cli_main
    return cli_main(["evaluate", *(sys.argv[1:] if argv is None else argv)])


__all__ = ["roc_auc", "roc_curve", "accuracy", "best_threshold", "laplacian_variance",
           "evaluate", "main", "ModelError"]
