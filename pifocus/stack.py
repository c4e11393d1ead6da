"""Focus bracketing for stacking: plan the lens positions from the measured depth of focus,
capture full-resolution stills through the range, and fuse them (Laplacian pyramid) into one
all-in-focus image.

* :class:`StackParams` -- the range, the overlap, the depth-of-focus rule.
* :func:`tile_dof` -- depth of focus (drive units) from a probe sweep's per-tile focus curves.
* :func:`plan_positions` -- the fewest evenly spaced positions whose depth of focus (less the
  overlap) covers ``near..far``.
* :func:`fuse` -- the Laplacian-pyramid focus stack (OpenCV): per pyramid level and pixel the
  frame with the strongest detail wins.
* :func:`probe_dof` -- the probe sweep on a drive; :func:`capture_bracket` -- the whole bracket
  (probe, plan, stills + ``sweep.csv`` + JSON sidecars, optional fusion), used by ``pifocus
  stack`` and the ``serve`` daemon's ``/api/stack``.

How the depth of focus is measured: the probe sweep records every tile's noise-corrected
Laplacian variance at ``probe_frames`` positions over the range.  A tile's focus curve is
"in focus" where it is at least ``edge_share`` of its own peak; the width of that interval
(interpolated in log-sharpness between samples) is the tile's depth of focus, and the median
over the tiles whose peak lies inside the range is the stack's.  ``edge_share = 0.2``: the
Laplacian variance falls roughly with the cube of the blur radius, so a blur circle 1.6 x the
lens's best (the circle of confusion of a sharp lens at 100 % view) reads about 0.2 of the
peak -- on the sim lens the measured edge of its 1 px circle of confusion is at 0.19.
"""

import csv
import io
import json
import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from . import storage
from .exc import AutofocusError, ConfigError
from .validate import require

#: Probe tiles are about this wide (analysis px): small, so that a tile of a tilted subject
#: spans little depth and its focus curve is the lens's depth of focus, not the tilt.
PROBE_TILE_PX = 24
#: ``sweep.csv`` columns (the replay format of ``pifocus record``).
CSV_HEADER = ["file", "position", "timestamp_ns", "exposure_us", "gain"]


@dataclass(frozen=True)
class StackParams:
    """Validated parameters of a focus bracket.

    Attributes:
        near, far: the range to cover, drive units (``near < far``).
        overlap: share (0..0.9) of each frame's depth of focus shared with its neighbours.
        step: lens step between frames (drive units); ``None`` = from the measured depth of
            focus (:func:`tile_dof`).
        edge_share: a tile counts as in focus where its sharpness is at least this share of
            its peak (see the module docstring).
        probe_frames: frames of the probe sweep that measures the depth of focus.
        max_frames: most frames a stack may take (a step that would need more is an error).
    """

    near: float
    far: float
    overlap: float = 0.1
    step: Optional[float] = None
    edge_share: float = 0.2
    probe_frames: int = 25
    max_frames: int = 500

    def __post_init__(self):
        s = "stack"
        require(math.isfinite(float(self.near)) and math.isfinite(float(self.far)) and self.near < self.far, s,
                "near", self.near, f"a number below far ({self.far}); swap them if needed")
        require(0.0 <= self.overlap <= 0.9, s, "overlap", self.overlap, "0..0.9 (share of the depth of focus)")
        require(self.step is None or self.step > 0, s, "step", self.step, "> 0 drive units")
        require(0.01 <= self.edge_share <= 0.9, s, "edge_share", self.edge_share, "0.01..0.9")
        require(5 <= int(self.probe_frames) <= 400, s, "probe_frames", self.probe_frames, "5..400")
        require(2 <= int(self.max_frames) <= 10000, s, "max_frames", self.max_frames, "2..10000")


def _crossing(x0: float, y0: float, x1: float, y1: float, level: float) -> float:
    """Where the line through ``(x0, y0)``, ``(x1, y1)`` reaches ``level``."""
    return x0 if y1 == y0 else x0 + (level - y0) * (x1 - x0) / (y1 - y0)


def curve_width(positions: Sequence[float], scores: Sequence[float], edge_share: float) -> Optional[float]:
    """Width (drive units) of the interval around the peak where ``scores`` is at least
    ``edge_share`` of the peak, interpolated in log-score; None when the curve does not fall
    below that share on both sides of the peak within the samples (peak at an end, or flat).

    Pure function: ``positions`` ascending, ``scores`` > 0.
    """
    x = np.asarray(positions, float)
    y = np.log(np.maximum(np.asarray(scores, float), 1e-9))
    i = int(np.argmax(y))
    level = y[i] + math.log(edge_share)
    lo = next((k for k in range(i, 0, -1) if y[k - 1] < level), None)
    hi = next((k for k in range(i, len(y) - 1) if y[k + 1] < level), None)
    if lo is None or hi is None:
        return None
    return _crossing(x[hi], y[hi], x[hi + 1], y[hi + 1], level) - _crossing(x[lo], y[lo], x[lo - 1], y[lo - 1], level)


def peak_position(positions: Sequence[float], scores: Sequence[float]) -> float:
    """Position of a curve's peak: log-parabola through the best sample and its neighbours
    (the best sample itself at an end of the samples)."""
    x = np.asarray(positions, float)
    y = np.log(np.maximum(np.asarray(scores, float), 1e-9))
    i = int(np.argmax(y))
    if i == 0 or i == len(y) - 1:
        return float(x[i])
    d = y[i - 1] - 2 * y[i] + y[i + 1]
    if d >= 0:
        return float(x[i])
    off = 0.5 * (y[i - 1] - y[i + 1]) / d
    return float(x[i] + off * (x[i + 1] - x[i - 1]) / 2)


def tile_dof(positions: Sequence[float], tile_scores: np.ndarray, informative: np.ndarray,
             edge_share: float = 0.2, grid: Optional[Sequence[int]] = None) -> Optional[float]:
    """Depth of focus (drive units): the median over the informative tiles of their
    :func:`curve_width`, less the depth their own area spans on a tilted subject.

    A tile over a tilted subject holds parts that are sharp at different positions, which
    widens its curve by about that spread; with ``grid`` the spread is estimated from how
    far the peaks of neighbouring tiles lie apart (the local gradient of the peak position,
    in drive units per tile, along rows plus along columns) and taken off.

    Args:
        positions: the probe positions, ascending (drive units).
        tile_scores: ``(n_positions, n_tiles)`` sharpness per tile (noise-corrected Laplacian
            variance, DN²).
        informative: ``(n_tiles,)`` tiles that had texture at their best position.
        edge_share: see :class:`StackParams`.
        grid: ``(rows, cols)`` of the tiles (row-major), for the tilt correction.

    Returns:
        The depth of focus, or None when no tile's curve could be measured.
    """
    n = tile_scores.shape[1]
    spread = np.zeros(n)
    if grid is not None and int(grid[0]) * int(grid[1]) == n:
        peaks = np.array([peak_position(positions, tile_scores[:, t]) for t in range(n)]).reshape(grid)
        peaks = np.where(np.asarray(informative).reshape(grid), peaks, np.nan)
        gy, gx = (np.nan_to_num(g) for g in np.gradient(peaks)) if min(grid) > 1 else \
            (np.zeros(grid), np.nan_to_num(np.gradient(peaks.ravel())).reshape(grid))
        spread = (np.abs(gx) + np.abs(gy)).ravel()
    widths = [w - spread[t] for t in np.flatnonzero(informative)
              if (w := curve_width(positions, tile_scores[:, t], edge_share)) is not None and w > spread[t]]
    return float(np.median(widths)) if widths else None


def plan_positions(near: float, far: float, dof: float, overlap: float) -> List[float]:
    """The fewest evenly spaced lens positions covering ``near..far`` with frames whose depth
    of focus (``dof``, drive units) overlaps its neighbours' by ``overlap``: ``n = ceil((far -
    near) / (dof x (1 - overlap)))`` frames at the centres of ``n`` equal slices, so every
    point of the range is within ``dof x (1 - overlap) / 2`` of a frame.
    """
    step = dof * (1.0 - overlap)
    n = max(1, int(math.ceil((far - near) / step - 1e-9)))
    slice_ = (far - near) / n
    return [near + slice_ * (i + 0.5) for i in range(n)]


def fuse(frames: Sequence[np.ndarray], levels: int = 5) -> np.ndarray:
    """All-in-focus image from aligned stills (8-bit, grey or colour, same size): a Laplacian
    pyramid per frame; per level and pixel the coefficient with the largest local energy
    (3x3 mean of its square) wins; the coarsest level is the mean; the pyramid is collapsed.

    Raises:
        ValueError: fewer than one frame, or frames of different sizes.
    """
    import cv2

    if not frames:
        raise ValueError("fuse needs at least one frame")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames):
        raise ValueError(f"fuse: all frames must have the same size, got {sorted({f.shape for f in frames})}")
    levels = max(1, min(int(levels), int(math.log2(max(2, min(shape[:2])))) - 2))
    pyrs = []
    for f in frames:
        g = [f.astype(np.float32)]
        for _ in range(levels):
            g.append(cv2.pyrDown(g[-1]))
        lap = [g[k] - cv2.pyrUp(g[k + 1], dstsize=(g[k].shape[1], g[k].shape[0])) for k in range(levels)]
        pyrs.append(lap + [g[-1]])
    out = []
    for k in range(levels):
        stack = np.stack([p[k] for p in pyrs])
        energy = np.stack([cv2.blur(c * c if c.ndim == 2 else (c * c).sum(axis=2), (3, 3)) for c in stack])
        best = np.argmax(energy, axis=0)
        pick = np.take_along_axis(stack, best[None, ..., None] if stack.ndim == 4 else best[None], axis=0)[0]
        out.append(pick)
    img = np.mean([p[-1] for p in pyrs], axis=0)
    for k in range(levels - 1, -1, -1):
        img = cv2.pyrUp(img, dstsize=(out[k].shape[1], out[k].shape[0])) + out[k]
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _frame_at(drive, source, pos: float, approach: bool):
    """Move to ``pos`` and return the first frame taken there (settle frames skipped)."""
    drive.move_to(pos, approach=approach)
    frame = source.read()
    for _ in range(int(getattr(drive.params, "settle_frames", 0) or 0)):
        frame = source.read()
    return frame


def _probe_analyzer(analyzer, frame):
    """A Laplacian-only analyzer over the same ROI with a fine grid (tiles ~PROBE_TILE_PX)."""
    from .focus import FocusAnalyzer

    p = analyzer.params
    _, _, w, h = p.effective_roi
    # "auto" picks its level per ROI as frames come; size the probe grid for full resolution.
    s = p.analysis_scale if isinstance(p.analysis_scale, int) else 1
    cols = int(min(32, max(p.cols, w * frame.width / s // PROBE_TILE_PX)))
    rows = int(min(32, max(p.rows, h * frame.height / s // PROBE_TILE_PX)))
    # A fixed scale: the curve widths must be measured at one resolution through the sweep.
    return FocusAnalyzer(replace(p, use_cnn=False, rows=rows, cols=cols, exposure=False, analysis_scale=s))


def probe_dof(drive, source, analyzer, sp: StackParams, progress: Optional[Callable] = None,
              cancel: Optional[threading.Event] = None):
    """Probe sweep over the range (plus 15 % either side, inside the soft limits) on a fine
    tile grid: returns ``(dof, positions, per-tile scores)``; ``dof`` None when no tile's
    curve could be measured (or the sweep was cancelled).

    Args:
        progress: ``fn(iterable, total) -> iterable`` (a progress bar), optional.
    """
    lo, hi = drive.limits
    pad = 0.15 * (sp.far - sp.near)
    xs = np.linspace(max(lo, sp.near - pad), min(hi, sp.far + pad), int(sp.probe_frames))
    scores, informative, fine, rep = [], None, None, None
    for i, x in enumerate(progress(xs, len(xs)) if progress else xs):
        if cancel is not None and cancel.is_set():
            break
        frame = _frame_at(drive, source, float(x), approach=(i == 0))
        fine = fine or _probe_analyzer(analyzer, frame)
        rep = fine.analyze(frame, track=False)
        scores.append(np.maximum(rep.tile_lap_var - rep.tile_floor, 1e-3).ravel())
        inf = rep.tile_informative.ravel()
        informative = inf if informative is None else (informative | inf)
    if fine is not None:
        fine.close()
    if len(scores) < len(xs):
        return None, xs[:len(scores)], np.array(scores)
    tiles = np.array(scores)
    return tile_dof(xs, tiles, informative, sp.edge_share, grid=rep.tile_informative.shape), xs, tiles


def bracket_positions(sp: StackParams, dof: Optional[float]) -> List[float]:
    """The lens positions of the bracket: :func:`plan_positions` from ``dof``, or with
    ``sp.step`` set, ``ceil(range / step)`` frames at the centres of equal slices.

    Raises:
        ConfigError: more than ``sp.max_frames`` frames.
    """
    if sp.step is not None:
        n = max(1, int(math.ceil((sp.far - sp.near) / sp.step - 1e-9)))
        positions = [sp.near + (sp.far - sp.near) / n * (i + 0.5) for i in range(n)]
    else:
        positions = plan_positions(sp.near, sp.far, dof, sp.overlap)
    if len(positions) > sp.max_frames:
        raise ConfigError(f"the bracket needs {len(positions)} frames (> {sp.max_frames}); give a larger step "
                          "or less overlap")
    return positions


def _write_csv(out: Path, rows) -> None:
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(CSV_HEADER)
    w.writerows(rows)
    storage.atomic_write(out / "sweep.csv", text.getvalue().encode(), what="stack: ")


def _write_frame(out: Path, i: int, f, pos: float, sp: StackParams, step: float, dof, n: int, units: str,
                 rows: list) -> None:
    """Frame ``i`` of a bracket: ``frame_NNNNN.png`` (colour when the source gave colour, else
    the luma), its JSON sidecar and its ``sweep.csv`` row, each written atomically."""
    import cv2

    name = f"frame_{i:05d}.png"
    ok, buf = cv2.imencode(".png", f.luma if f.color_bgr is None else f.color_bgr)
    if not ok:
        raise ConfigError(f"stack: cannot encode frame {i} as PNG")
    storage.atomic_write(out / name, buf.tobytes(), what="stack: ")
    side = {"file": name, "index": i, "position": round(pos, 4), "units": units, "near": sp.near, "far": sp.far,
            "step": round(step, 4), "depth_of_focus": None if dof is None else round(dof, 3),
            "overlap": sp.overlap, "frames": n, "timestamp_ns": f.timestamp_ns,
            "exposure_us": f.exposure_us, "analogue_gain": f.analogue_gain, "color": f.color_bgr is not None}
    storage.atomic_write(out / f"frame_{i:05d}.json", json.dumps(side, indent=1).encode(), what="stack: ")
    rows.append([name, f"{pos:g}", f.timestamp_ns, "" if f.exposure_us is None else f.exposure_us,
                 "" if f.analogue_gain is None else f"{f.analogue_gain:g}"])
    _write_csv(out, rows)


def capture_bracket(drive, source, analyzer, sp: StackParams, out_dir, fuse_to=None,
                    progress: Optional[Callable] = None, on_state: Optional[Callable[[dict], None]] = None,
                    cancel: Optional[threading.Event] = None) -> dict:
    """The whole focus bracket: probe (unless ``sp.step``), plan, one full-resolution PNG per
    position (ascending: one approach, no backlash between frames) with ``sweep.csv`` and a
    JSON sidecar each, all written atomically, and with ``fuse_to`` the fused image.

    Args:
        out_dir: the folder (must exist).
        progress: ``fn(iterable, total, desc) -> iterable`` (progress bars), optional.
        on_state: called with ``{"phase": "probe" | "capture" | "fuse", "done", "total", ...}``.
        cancel: set it to stop between frames (what was written stays, listed in sweep.csv).

    Returns:
        ``{"out", "frames", "positions", "step", "depth_of_focus", "overlap", "cancelled"[, "fused"]}``.

    Raises:
        AutofocusError: the depth of focus could not be measured (give a step).
        ConfigError: the range is outside the drive's soft limits, or too many frames.
        StorageError: a file could not be written (disk full named).
    """
    import cv2

    out = Path(out_dir)
    lo, hi = drive.limits
    if sp.near < lo or sp.far > hi:
        raise ConfigError(f"near {sp.near:g} .. far {sp.far:g} is outside the drive's soft limits {lo:g}..{hi:g}; "
                          "narrow the range or widen [drive] min_position/max_position")
    state = {"phase": "probe", "done": 0, "total": int(sp.probe_frames)}
    tell = on_state or (lambda st: None)
    dof = None
    if sp.step is None:
        def probe_progress(it, total):
            for k, x in enumerate(progress(it, total, "depth of focus") if progress else it):
                state["done"] = k
                tell(state)
                yield x
        tell(state)
        dof, _, _ = probe_dof(drive, source, analyzer, sp, probe_progress, cancel)
        if cancel is not None and cancel.is_set():
            return {"out": str(out), "frames": 0, "positions": [], "step": None, "depth_of_focus": None,
                    "overlap": sp.overlap, "cancelled": True}
        if dof is None:
            raise AutofocusError("cannot measure the depth of focus: no tile's focus curve rises and falls within the "
                                 "probe sweep (too little texture, or the range misses focus); give a step")
    positions = bracket_positions(sp, dof)
    step = (sp.far - sp.near) / len(positions)
    state.update(phase="capture", done=0, total=len(positions), step=round(step, 3),
                 depth_of_focus=None if dof is None else round(dof, 3))
    tell(state)
    rows, kept = [], []
    units = getattr(drive, "units", "steps")
    _write_csv(out, rows)
    seq = list(enumerate(positions))
    ask = getattr(source, "request_still", None)  # colour stills where the source has colour
    if ask is not None:
        ask("color")
    try:
        for i, pos in (progress(seq, len(seq), "stack") if progress else seq):
            if cancel is not None and cancel.is_set():
                break
            f = _frame_at(drive, source, pos, approach=(i == 0))
            _write_frame(out, i, f, pos, sp, step, dof, len(positions), units, rows)
            if fuse_to is not None:
                kept.append(np.array(f.luma if f.color_bgr is None else f.color_bgr, copy=True))
            state["done"] = i + 1
            tell(state)
    finally:
        if ask is not None:
            ask(None)
    result = {"out": str(out), "frames": len(rows), "positions": [round(p, 3) for p in positions],
              "step": round(step, 4), "depth_of_focus": None if dof is None else round(dof, 3),
              "overlap": sp.overlap, "cancelled": bool(cancel is not None and cancel.is_set())}
    if fuse_to is not None and kept:
        state["phase"] = "fuse"
        tell(state)
        ok, buf = cv2.imencode(".png", fuse(kept))
        storage.atomic_write(Path(fuse_to), buf.tobytes(), what="stack: ")
        result["fused"] = str(fuse_to)
    return result
