#!/usr/bin/env python3
"""Build the labelled tile set for the focus CNN.

Three sources, one ``.npz`` (see ``--out``):

* ``mfifb`` -- MFIFB multi-focus pairs (X. Zhang, "Multi-focus Image Fusion: A Benchmark",
  arXiv 2005.01116).  Each scene ``SET_NN`` is shot twice, ``_A`` near focus and ``_B`` far
  focus, registered.  Per tile position we compare the local high-frequency energy (variance
  of the Laplacian) of A and B: where one is at least ``--margin`` times the other, that
  tile is *in focus* in the sharper image and *out of focus* in the other.  Ambiguous tiles
  (ratio within the margin) and flat tiles (both below ``--flat``) are dropped, and so is
  every pair the blur fit does not confirm: the sharper tile, blurred by the best-matching
  disk PSF, must turn into the blurrier one (correlation >= ``--fit-corr``) at a radius of at
  least ``--fit-radius`` px (clearly defocused, not just slightly softer).  Sweeps get the
  same check for out-of-focus tiles against the cell's peak frame.
* ``sweep`` -- real focus-bracketed sequences (``focus-sweeps/NAME/``, frames in natural
  order).  Per grid cell we find the frame of peak energy; frames within one step of the
  peak and with at least ``PEAK_KEEP`` of the peak energy are in focus, frames below
  ``SWEEP_OUT`` of the peak are out of focus, the middle is dropped.  Cells whose energy
  barely changes through the sweep (never in focus, or flat) are dropped.
* ``synthetic-chart`` -- the simulated source's procedural focus chart (Siemens star, bars,
  text, texture) through the same disk-PSF defocus and sensor model (bar patterns show the
  disk PSF's spurious resolution -- low-contrast inverted stripes -- which must not pass for
  sharp).
* ``synthetic`` -- in-focus tiles (with context) from the two real sources, blurred by a
  disk (pillbox) PSF of known radius, passed through a signal-dependent sensor noise model
  at several ISO levels, with exposure shifts and JPEG compression; labelled in focus when
  the blur radius is at most ``COC_IN`` px, out of focus when it is at least ``COC_OUT`` px.
  Also flat and smooth-gradient tiles with sensor noise, all out of focus, so the model
  never calls noise "sharp".

The split is by scene (an MFIFB scene, a sweep -- both PCB sweeps count as one scene);
synthetic tiles inherit the scene of the tile they were made from.

Output arrays: ``tiles`` (N, t, t) uint8, ``labels`` (N,) uint8, ``source`` (N,) str,
``scene`` (N,) str, ``split`` (N,) str ``"train"``/``"val"``, ``blur_px`` (N,) float32
(-1 where unknown), plus ``tile_px`` and ``meta`` (JSON string).

Usage::

    python tools/dataset.py --data ../shared/data --out build/tiles.npz --sheet build/contact_sheet.png
"""

import argparse
import hashlib
import json
import logging
import math
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pifocus.exc import ConfigError  # noqa: E402

log = logging.getLogger("dataset")

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif"}

#: A sharper/blurrier energy ratio of at least this labels an MFIFB tile pair.
MARGIN = 5.0
#: Laplacian-variance (8-bit DN^2) below which a tile is flat in both images: dropped.
FLAT = 60.0
#: Tiles with more than this fraction of clipped pixels (<= 3 or >= 252 DN) are dropped.
MAX_CLIPPED = 0.15
#: A/B tiles whose low-passed content correlates less than this show different things: dropped.
MIN_CORR = 0.8
#: A/B blur fit: the disk radius (px) that best maps the sharper tile onto the blurrier one must
#: be at least this for a label (the blurrier tile must be *clearly* out of focus, the same
#: criterion as the synthetic tiles' ``COC_OUT``; a 5x energy ratio alone is reached by a
#: ~1 px blur of fine texture) ...
FIT_MIN_RADIUS = 2.0
#: ... and the blurred sharper tile must then correlate with the blurrier one at least this
#: well (locally misregistered, moving or noise-drowned pairs fail: their label is unverified).
FIT_MIN_CORR = 0.9
#: Disk radii (px) tried by the A/B blur fit.
FIT_RADII = (0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0)
#: Sweep: in focus = within one frame of the cell's peak and >= PEAK_KEEP of its energy.
PEAK_KEEP = 0.7
#: Sweep: out of focus = energy <= SWEEP_OUT x peak.
SWEEP_OUT = 0.2
#: Sweep: a cell must vary by at least this peak/min energy ratio over the sweep.
SWEEP_MIN_RANGE = 6.0
#: Synthetic: blur radius (px) at or below which a tile is in focus ("acceptable CoC") ...
COC_IN = 0.75
#: ... and at or above which it is out of focus; radii in between are not generated.
COC_OUT = 2.0
#: Synthetic in-focus tiles need clean-texture energy >= this x the noise's energy.
SYNTH_MIN_SNR = 3.0
#: Sweeps and their scene ids and splits (both PCB sweeps show the same board: one scene).
SWEEP_SCENES = {
    "pcb-7": ("sweep:pcb", "val"),
    "pcb-depthmap-10": ("sweep:pcb", "val"),
    "canon-36": ("sweep:canon-36", "val"),
    "cmc-6": ("sweep:cmc-6", "train"),
    "microscope-wbc-10": ("sweep:microscope-wbc-10", "train"),
}
#: Fraction of MFIFB scenes (per set) held out for validation.
VAL_FRACTION = 0.25


# ---------------------------------------------------------------------------------------
# Pure labelling functions (tested on synthetic arrays)
# ---------------------------------------------------------------------------------------

def natural_key(s: str):
    """Sort key that puts ``img2`` before ``img10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def tile_energy(gray: np.ndarray, tile: int, stride: int) -> np.ndarray:
    """Variance of the Laplacian of ``gray`` over every ``tile x tile`` window on a
    ``stride`` grid; returns ``(rows, cols)`` float64, window (i, j) at ``(i*stride, j*stride)``.
    """
    import cv2
    g = np.asarray(gray, np.float32)
    lap = cv2.Laplacian(g, cv2.CV_32F)
    # integral images give every window's sum and sum of squares
    s1 = cv2.integral(lap, sdepth=cv2.CV_64F)
    s2 = cv2.integral(lap.astype(np.float64) ** 2, sdepth=cv2.CV_64F)
    h, w = g.shape
    ys = np.arange(0, h - tile + 1, stride)
    xs = np.arange(0, w - tile + 1, stride)
    y0, x0 = ys[:, None], xs[None, :]
    y1, x1 = y0 + tile, x0 + tile

    def box(s):
        return s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0]
    n = float(tile * tile)
    m1 = box(s1) / n
    return np.maximum(box(s2) / n - m1 * m1, 0.0)


def immerkaer_sigma(gray: np.ndarray) -> float:
    """Immerkaer's (1996) estimate of the white-noise sigma of an image (DN)."""
    import cv2
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    r = cv2.filter2D(np.asarray(gray, np.float32), -1, k)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2.0) / 6.0 * np.abs(r).mean())


#: Variance of the 4-neighbour Laplacian of white noise of unit sigma (1+1+1+1+16).
LAP_NOISE_GAIN = 20.0


def tile_fraction(mask: np.ndarray, tile: int, stride: int) -> np.ndarray:
    """Fraction of true pixels of ``mask`` in every window of :func:`tile_energy`'s grid."""
    import cv2
    s = cv2.integral(mask.astype(np.uint8), sdepth=cv2.CV_64F)
    h, w = mask.shape
    y0 = np.arange(0, h - tile + 1, stride)[:, None]
    x0 = np.arange(0, w - tile + 1, stride)[None, :]
    y1, x1 = y0 + tile, x0 + tile
    return (s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0]) / float(tile * tile)


def clipped_fraction(gray: np.ndarray, tile: int, stride: int) -> np.ndarray:
    """Fraction of clipped (<= 3 or >= 252 DN) pixels per tile window."""
    g = np.asarray(gray)
    return tile_fraction((g <= 3) | (g >= 252), tile, stride)


def window_correlation(x: np.ndarray, y: np.ndarray, tile: int, stride: int):
    """Pearson correlation of ``x`` and ``y`` (float64 images) over every ``tile x tile``
    window on a ``stride`` grid (gain/offset invariant).  Returns ``(corr, min_std)``."""
    import cv2
    h, w = x.shape
    y0 = np.arange(0, h - tile + 1, stride)[:, None]
    x0 = np.arange(0, w - tile + 1, stride)[None, :]
    y1, x1 = y0 + tile, x0 + tile
    n = float(tile * tile)

    def mean(img):
        s = cv2.integral(img, sdepth=cv2.CV_64F)
        return (s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0]) / n
    mx, my = mean(x), mean(y)
    vx = np.maximum(mean(x * x) - mx * mx, 0)
    vy = np.maximum(mean(y * y) - my * my, 0)
    cov = mean(x * y) - mx * my
    corr = cov / np.sqrt(np.maximum(vx * vy, 1e-12))
    return corr, np.sqrt(np.minimum(vx, vy))


def lowpass_correlation(a: np.ndarray, b: np.ndarray, tile: int, stride: int, sigma: float = 3.0):
    """Per-window correlation of A and B after a Gaussian blur of ``sigma`` px (which removes
    most of their focus difference): low where the two shots do not show the same content
    (misregistration, motion).  Returns ``(corr, min_std)``."""
    import cv2
    la = cv2.GaussianBlur(np.asarray(a, np.float32), (0, 0), sigma).astype(np.float64)
    lb = cv2.GaussianBlur(np.asarray(b, np.float32), (0, 0), sigma).astype(np.float64)
    return window_correlation(la, lb, tile, stride)


def blur_fit(sharp: np.ndarray, blurry: np.ndarray, tile: int, stride: int, radii=FIT_RADII):
    """Per window, the disk-PSF radius that best turns ``sharp`` into ``blurry`` and how well.

    ``sharp`` is blurred by each radius (:func:`pifocus.sources.simulated.defocus`) and
    correlated with ``blurry`` window by window.  Returns ``(radius, corr)`` arrays on
    :func:`tile_energy`'s grid: the best radius and its correlation.  A clearly defocused
    copy of the same content gives a large radius and a correlation near 1; a misregistered
    pair, a moving subject or a tile drowned in noise gives a low correlation; a tile only
    slightly softer than its sharp twin gives a small radius.
    """
    from pifocus.sources.simulated import defocus
    s = np.asarray(sharp, np.float32)
    b = np.asarray(blurry, np.float64)
    corrs = np.stack([window_correlation(defocus(s, float(r)).astype(np.float64), b, tile, stride)[0]
                      for r in radii])
    k = np.argmax(corrs, axis=0)
    return np.asarray(radii, np.float64)[k], np.take_along_axis(corrs, k[None], 0)[0]


def fit_ok(radius, corr, min_radius: float = FIT_MIN_RADIUS, min_corr: float = FIT_MIN_CORR) -> np.ndarray:
    """Whether a :func:`blur_fit` confirms a label: the blurrier tile is a clearly defocused
    (radius >= ``min_radius``) and well-matching (correlation >= ``min_corr``) copy of the
    sharper one.  (A noise allowance for nearly featureless blurry tiles was tried and
    dropped: Immerkaer's noise estimate is inflated by texture, so it let misregistered
    pairs such as MFIFB ``newspaper`` back in.)"""
    return (np.asarray(radius) >= min_radius) & (np.asarray(corr) >= min_corr)


def label_pair(energy_a: np.ndarray, energy_b: np.ndarray, margin: float = MARGIN,
               flat: float = FLAT, noise_a: float = 0.0, noise_b: float = 0.0,
               usable=None) -> np.ndarray:
    """Label tile positions of an A/B multi-focus pair from their energies.

    ``noise_a``/``noise_b`` are the Laplacian variances white sensor noise alone gives in
    each image (``LAP_NOISE_GAIN * sigma**2``): they are subtracted before the ratio, and the
    sharper tile must stand at least ``flat`` plus four times that noise energy above zero
    (the pipeline's texture gate would drop it otherwise).  ``usable`` (bool array) masks out
    tiles known to be bad (clipped, misregistered).

    Returns int8 array of the same shape: ``1`` = sharper in A (A in focus, B out),
    ``-1`` = sharper in B, ``0`` = ambiguous, flat or unusable (dropped).
    """
    a = np.asarray(energy_a, np.float64)
    b = np.asarray(energy_b, np.float64)
    sa = np.maximum(a - noise_a, 1e-6)
    sb = np.maximum(b - noise_b, 1e-6)
    out = np.zeros(a.shape, np.int8)
    a_ok = a >= flat + 4.0 * noise_a
    b_ok = b >= flat + 4.0 * noise_b
    out[a_ok & (sa >= margin * sb)] = 1
    out[b_ok & (sb >= margin * sa)] = -1
    if usable is not None:
        out[~np.asarray(usable, bool)] = 0
    return out


def label_sweep(energies: np.ndarray, keep: float = PEAK_KEEP, out_frac: float = SWEEP_OUT,
                min_range: float = SWEEP_MIN_RANGE, flat: float = FLAT) -> np.ndarray:
    """Label each (frame, cell) of a focus sweep from its energy curve.

    Args:
        energies: ``(frames, cells)`` tile energies.

    Returns:
        int8 ``(frames, cells)``: ``1`` in focus (within one frame of the cell's peak and at
        least ``keep`` x peak energy), ``0`` out of focus (at most ``out_frac`` x peak),
        ``-1`` dropped (middle, or the whole cell when flat or when its energy varies by less
        than ``min_range`` over the sweep).
    """
    e = np.asarray(energies, np.float64)
    n = e.shape[0]
    peak_idx = np.argmax(e, axis=0)
    peak = e[peak_idx, np.arange(e.shape[1])]
    lab = np.full(e.shape, -1, np.int8)
    frames = np.arange(n)[:, None]
    near = np.abs(frames - peak_idx[None, :]) <= 1
    rel = e / np.maximum(peak[None, :], 1e-12)
    lab[near & (rel >= keep)] = 1
    lab[rel <= out_frac] = 0
    valid = (peak >= 1.5 * flat) & (peak >= min_range * np.maximum(e.min(axis=0), 1e-12))
    lab[:, ~valid] = -1
    return lab


def label_blur(radius_px, coc_in: float = COC_IN, coc_out: float = COC_OUT) -> np.ndarray:
    """Synthetic label from the disk-PSF radius: 1 if ``<= coc_in``, 0 if ``>= coc_out``,
    -1 (drop) in between."""
    r = np.asarray(radius_px, np.float64)
    return np.where(r <= coc_in, 1, np.where(r >= coc_out, 0, -1)).astype(np.int8)


def scene_split(scene: str, val_fraction: float = VAL_FRACTION) -> str:
    """Deterministic split of an MFIFB scene: hash of its name, stable across runs."""
    h = int(hashlib.sha1(scene.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_fraction else "train"


def jpeg(img_u8: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of a uint8 luma image."""
    import cv2
    ok, buf = cv2.imencode(".jpg", img_u8, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def synth_tile(patch_u8: np.ndarray, radius: float, rng: np.random.Generator, tile: int, *,
               gain: float = 1.0, exposure: float = 1.0, jpeg_quality=None, return_snr: bool = False):
    """Defocus a context patch by a disk PSF, add sensor noise, optionally JPEG it, and
    return the central ``tile x tile`` crop (uint8).

    With ``return_snr`` also return the ratio of the clean tile's Laplacian variance to the
    Laplacian variance the noise added (how clearly texture stands above noise).
    """
    from pifocus.sources.simulated import defocus, sensor
    lum = patch_u8.astype(np.float32) / 255.0
    blurred = defocus(lum, float(radius))
    out = sensor(blurred, rng, exposure=exposure, analogue_gain=gain)
    if jpeg_quality:
        out = jpeg(out, jpeg_quality)
    h, w = out.shape
    y0, x0 = (h - tile) // 2, (w - tile) // 2
    t = out[y0:y0 + tile, x0:x0 + tile]
    if not return_snr:
        return t
    clean = np.clip(blurred * exposure * 255.0, 0, 255)[y0:y0 + tile, x0:x0 + tile]
    e_clean = float(tile_energy(clean, tile, tile)[0, 0])
    e_noise = max(float(tile_energy(t, tile, tile)[0, 0]) - e_clean, 1e-6)
    return t, e_clean / e_noise


def flat_tile(rng: np.random.Generator, tile: int, faint=None) -> np.ndarray:
    """A flat, smoothly shaded or faintly textured tile through the sensor model (always out
    of focus: nothing in it stands clearly above the noise).

    ``faint``: optional uint8 patch whose texture is added at 0.5..2.5 DN amplitude.
    """
    from pifocus.sources.simulated import sensor
    level = rng.uniform(0.02, 0.97)
    yy, xx = np.mgrid[0:tile, 0:tile].astype(np.float32) / tile - 0.5
    slope = rng.uniform(-0.15, 0.15, 2) * (rng.random() < 0.5)
    lum = level + slope[0] * yy + slope[1] * xx
    if faint is not None:
        f = faint[:tile, :tile].astype(np.float32)
        f = (f - f.mean()) / max(float(f.std()), 1e-3)
        lum = lum + f * rng.uniform(0.5, 2.5) / 255.0
    lum = np.clip(lum, 0, 1).astype(np.float32)
    if rng.random() < 0.1:  # noiseless (synthetic or heavily denoised)
        return np.clip(np.round(lum * 255), 0, 255).astype(np.uint8)
    gain = float(rng.choice([1, 2, 4, 8, 16, 32, 64]))
    out = sensor(lum, rng, exposure=float(rng.uniform(0.5, 1.5)), analogue_gain=gain)
    if rng.random() < 0.4:
        out = jpeg(out, int(rng.integers(50, 96)))
    return out


# ---------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------

def read_gray(path: Path) -> np.ndarray:
    """8-bit luma of an image file (Rec. 601, as the camera's Y plane)."""
    import cv2
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ConfigError(f"image {str(path)!r} cannot be read; remove it or replace it with a "
                          "readable JPEG/PNG/BMP")
    return img


def mfifb_scenes(root: Path):
    """``[(scene, pathA, pathB)]`` of an MFIFB folder (``SET_NN/SET_NN_{A,B}.*``)."""
    if not root.is_dir():
        raise ConfigError(f"MFIFB folder {str(root)!r} not found; pass --data DIR holding "
                          "multifocus-pairs/mfifb/SET_NN/SET_NN_A.* and _B.*")
    out = []
    for d in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
        files = {f.stem[-2:]: f for f in d.iterdir() if f.suffix.lower() in IMAGE_EXTS}
        if "_A" in files and "_B" in files:
            out.append((d.name, files["_A"], files["_B"]))
    if not out:
        raise ConfigError(f"MFIFB folder {str(root)!r} holds no SET_NN/SET_NN_A.*, _B.* pairs; "
                          "check the --data path layout (see tools/dataset.py docstring)")
    return out


def sweep_frames(folder: Path):
    """Frame files of a sweep folder in natural order (``expected*`` fused results skipped)."""
    files = [f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTS
             and not f.stem.lower().startswith("expected")]
    return sorted(files, key=lambda p: natural_key(p.name))


# ---------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------

class Collector:
    """Accumulates tiles with their labels and provenance."""

    def __init__(self):
        self.tiles, self.labels, self.source, self.scene, self.split, self.blur = [], [], [], [], [], []
        self.context = []  # (patch, scene, split) of in-focus real tiles for synthetic defocus

    def add(self, tiles, labels, source, scene, split, blur=-1.0):
        n = len(tiles)
        if n == 0:
            return
        self.tiles.append(np.asarray(tiles, np.uint8))
        self.labels.append(np.asarray(labels, np.uint8).reshape(n))
        self.source += [source] * n
        self.scene += [scene] * n
        self.split += [split] * n
        self.blur.append(np.broadcast_to(np.asarray(blur, np.float32), (n,)).copy())


def crops(gray, ys, xs, size):
    return np.stack([gray[y:y + size, x:x + size] for y, x in zip(ys, xs)]) if len(ys) else \
        np.zeros((0, size, size), np.uint8)


def build_mfifb(col: Collector, root: Path, tile: int, rng, max_per_scene: int, margin: float,
                flat: float, ctx: int, fit_radius: float = FIT_MIN_RADIUS, fit_corr: float = FIT_MIN_CORR):
    from tqdm import tqdm
    stride = tile // 2
    for scene, pa, pb in tqdm(mfifb_scenes(root), desc="mfifb pairs", unit="scene"):
        a, b = read_gray(pa), read_gray(pb)
        if a.shape != b.shape:
            log.warning("%s: A %s and B %s differ in size; skipped", scene, a.shape, b.shape)
            continue
        split = scene_split(scene)
        na = LAP_NOISE_GAIN * immerkaer_sigma(a) ** 2
        nb = LAP_NOISE_GAIN * immerkaer_sigma(b) ** 2
        corr, lp_std = lowpass_correlation(a, b, tile, stride)
        usable = ((clipped_fraction(a, tile, stride) <= MAX_CLIPPED)
                  & (clipped_fraction(b, tile, stride) <= MAX_CLIPPED)
                  & ((corr >= MIN_CORR) | (lp_std < 4.0)))
        lab = label_pair(tile_energy(a, tile, stride), tile_energy(b, tile, stride), margin, flat,
                         na, nb, usable)
        if fit_radius > 0 or fit_corr > 0:
            # the blurrier tile must be a clearly defocused copy of the sharper one
            ra, ca = blur_fit(a, b, tile, stride)  # A sharper -> B
            rb, cb = blur_fit(b, a, tile, stride)  # B sharper -> A
            lab[(lab > 0) & ~fit_ok(ra, ca, fit_radius, fit_corr)] = 0
            lab[(lab < 0) & ~fit_ok(rb, cb, fit_radius, fit_corr)] = 0
        iy, ix = np.nonzero(lab)
        if len(iy) > max_per_scene:
            keep = rng.choice(len(iy), max_per_scene, replace=False)
            iy, ix = iy[keep], ix[keep]
        ys, xs, lv = iy * stride, ix * stride, lab[iy, ix]
        ta, tb = crops(a, ys, xs, tile), crops(b, ys, xs, tile)
        col.add(ta, lv > 0, "mfifb", "mfifb:" + scene, split)
        col.add(tb, lv < 0, "mfifb", "mfifb:" + scene, split)
        # context patches around in-focus tiles, for synthetic defocus
        pad = (ctx - tile) // 2
        for y, x, l in zip(ys, xs, lv):
            img = a if l > 0 else b
            y0, x0 = y - pad, x - pad
            if y0 >= 0 and x0 >= 0 and y0 + ctx <= img.shape[0] and x0 + ctx <= img.shape[1]:
                col.context.append((img[y0:y0 + ctx, x0:x0 + ctx], "mfifb:" + scene, split))


def build_sweeps(col: Collector, root: Path, tile: int, rng, max_per_frame: int, ctx: int,
                 fit_radius: float = FIT_MIN_RADIUS, fit_corr: float = FIT_MIN_CORR):
    from tqdm import tqdm
    if not root.is_dir():
        raise ConfigError(f"focus-sweeps folder {str(root)!r} not found; pass --data DIR holding "
                          "focus-sweeps/NAME/frames")
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        scene, split = SWEEP_SCENES.get(folder.name, ("sweep:" + folder.name, scene_split(folder.name)))
        files = sweep_frames(folder)
        if len(files) < 3:
            log.warning("%s: fewer than 3 frames; skipped", folder)
            continue
        frames = [read_gray(f) for f in tqdm(files, desc=f"sweep {folder.name}", unit="frame", leave=False)]
        h = min(f.shape[0] for f in frames)
        w = min(f.shape[1] for f in frames)
        frames = [f[:h, :w] for f in frames]
        stride = tile if min(h, w) > 600 else tile // 2
        # Sensor noise is the same in every frame of a sweep, but texture inflates Immerkaer's
        # estimate: the blurriest frame gives the closest (lowest) estimate.
        noise = min(LAP_NOISE_GAIN * immerkaer_sigma(f) ** 2 for f in frames)
        energies = np.stack([np.maximum(tile_energy(f, tile, stride) - noise, 0.0)
                             for f in frames])  # (F, rows, cols), noise removed
        nf, rows, cols = energies.shape
        lab = label_sweep(energies.reshape(nf, -1), flat=FLAT + 4.0 * noise)
        lab = lab.reshape(nf, rows, cols)
        for fi, f in enumerate(frames):
            lab[fi][clipped_fraction(f, tile, stride) > MAX_CLIPPED] = -1
        if fit_radius > 0 or fit_corr > 0:
            # an out-of-focus tile must be a clearly defocused copy of the cell's peak frame
            peak = np.argmax(energies, axis=0)  # (rows, cols)
            for p in np.unique(peak):
                for fi in range(nf):
                    m = (lab[fi] == 0) & (peak == p)
                    if fi == p or not m.any():
                        continue
                    r, c = blur_fit(frames[p], frames[fi], tile, stride)
                    lab[fi][m & ~fit_ok(r, c, fit_radius, fit_corr)] = -1
        pad = (ctx - tile) // 2
        n_in = n_out = 0
        for fi, img in enumerate(frames):
            for want in (1, 0):
                iy, ix = np.nonzero(lab[fi] == want)
                cap = max_per_frame if want == 1 else max(1, max_per_frame // 2)
                if len(iy) > cap:
                    keep = rng.choice(len(iy), cap, replace=False)
                    iy, ix = iy[keep], ix[keep]
                ys, xs = iy * stride, ix * stride
                col.add(crops(img, ys, xs, tile), np.full(len(ys), want), "sweep", scene, split)
                if want == 1:
                    n_in += len(ys)
                    for y, x in zip(ys, xs):
                        y0, x0 = y - pad, x - pad
                        if y0 >= 0 and x0 >= 0 and y0 + ctx <= h and x0 + ctx <= w:
                            col.context.append((img[y0:y0 + ctx, x0:x0 + ctx], scene, split))
                else:
                    n_out += len(ys)
        log.info("sweep %s: %d frames %dx%d, %d in / %d out tiles", folder.name, nf, w, h, n_in, n_out)


def build_synthetic(col: Collector, tile: int, rng, n_variants: int, n_flat: int):
    """Defocus the collected in-focus context patches; add flat tiles."""
    from tqdm import tqdm
    radii_in = np.array([0.0, 0.0, 0.35, 0.5, 0.75])
    radii_out = np.array([2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0])
    gains = np.array([1, 1, 2, 4, 8, 16])
    for patch, scene, split in tqdm(col.context, desc="synthetic defocus", unit="patch"):
        for _ in range(n_variants):
            if rng.random() < 0.45:
                r = float(rng.choice(radii_in))
            else:
                r = float(rng.choice(radii_out) * rng.uniform(1.0, 1.2))
            q = int(rng.integers(50, 96)) if rng.random() < 0.5 else None
            t, snr = synth_tile(patch, r, rng, tile, gain=float(rng.choice(gains)),
                                exposure=float(np.exp(rng.uniform(np.log(0.5), np.log(1.6)))),
                                jpeg_quality=q, return_snr=True)
            lab = int(label_blur(r))
            if lab == 1 and snr < SYNTH_MIN_SNR:
                continue  # texture drowned in noise: not a clear in-focus example
            if lab >= 0:
                col.add(t[None], [lab], "synthetic", scene, split, blur=r)
    for i in tqdm(range(n_flat), desc="synthetic flat", unit="tile"):
        split = "val" if i % 4 == 0 else "train"
        faint = None
        if col.context and rng.random() < 0.3:
            faint = col.context[int(rng.integers(len(col.context)))][0]
        col.add(flat_tile(rng, tile, faint)[None], [0], "synthetic-flat", f"flat:{i % 40}", split, blur=-1.0)


def build_chart(col: Collector, tile: int, rng, n: int):
    """The procedural focus chart (the simulated source's scene: star, bars, text, texture)
    through disk-PSF defocus and the sensor model; charts of seeds 100-102 train, 103 val."""
    from tqdm import tqdm
    from pifocus.sources.simulated import defocus, focus_chart, sensor
    radii = [0.0, 0.3, 0.5, 0.75, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0]
    seeds = (100, 101, 102, 103)
    per = max(1, n // (len(seeds) * len(radii)))
    with tqdm(total=per * len(seeds) * len(radii), desc="synthetic chart", unit="tile") as bar:
        for seed in seeds:
            split = "val" if seed == 103 else "train"
            w = int(rng.integers(640, 1400))
            chart = focus_chart(w, w * 3 // 4, seed=seed)
            sharp = np.clip(chart * 255, 0, 255)
            h = chart.shape[0]
            # textured positions in the sharp chart
            cand = []
            while len(cand) < per * 3:
                y, x = int(rng.integers(0, h - tile)), int(rng.integers(0, w - tile))
                if sharp[y:y + tile, x:x + tile].std() >= 12:
                    cand.append((y, x))
            for r in radii:
                img = sensor(defocus(chart, r), rng, exposure=float(rng.uniform(0.6, 1.3)),
                             analogue_gain=float(rng.choice([1, 2, 4, 8])))
                if rng.random() < 0.3:
                    img = jpeg(img, int(rng.integers(60, 96)))
                for k in rng.choice(len(cand), per, replace=False):
                    y, x = cand[k]
                    col.add(img[y:y + tile, x:x + tile][None], [int(label_blur(r))], "synthetic-chart",
                            f"chart:{seed}", split, blur=r)
                    bar.update(1)


def summary(tiles_src, labels, split) -> str:
    """Per-source, per-split class balance as a text table."""
    rows = ["source            split   tiles   in-focus  out-focus  %in"]
    c = Counter(zip(tiles_src, split, labels))
    for src in sorted(set(tiles_src)):
        for sp in ("train", "val"):
            pos, neg = c[(src, sp, 1)], c[(src, sp, 0)]
            if pos + neg:
                rows.append(f"{src:17s} {sp:5s} {pos + neg:7d} {pos:9d} {neg:10d}  {100 * pos / (pos + neg):4.1f}")
    return "\n".join(rows)


def contact_sheet(path: Path, tiles, labels, source, rng, per_group: int = 24, zoom: int = 3):
    """PNG grid of random tiles: one row block per (source, label); green border = in focus."""
    import cv2
    t = tiles.shape[1]
    cell = t * zoom + 6
    groups = [(s, l) for s in sorted(set(source.tolist())) for l in (1, 0)]
    cols = 12
    blocks = []
    for s, l in groups:
        idx = np.nonzero((source == s) & (labels == l))[0]
        if len(idx) == 0:
            continue
        idx = rng.choice(idx, min(per_group, len(idx)), replace=False)
        nrows = math.ceil(len(idx) / cols)
        block = np.full((nrows * cell + 22, cols * cell, 3), 40, np.uint8)
        cv2.putText(block, f"{s}  label={'IN focus' if l else 'OUT of focus'}", (4, 16),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        color = (0, 200, 0) if l else (0, 0, 220)
        for k, i in enumerate(idx):
            r, c = divmod(k, cols)
            y, x = 22 + r * cell, c * cell
            block[y:y + cell, x:x + cell] = color
            big = cv2.resize(tiles[i], (t * zoom, t * zoom), interpolation=cv2.INTER_NEAREST)
            block[y + 3:y + 3 + t * zoom, x + 3:x + 3 + t * zoom] = big[..., None]
        blocks.append(block)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(blocks, axis=0))


def build(data: Path, out: Path, tile: int = 32, seed: int = 0, sheet=None, max_per_scene: int = 400,
          max_per_frame: int = 60, n_variants: int = 1, n_flat: int = 8000, margin: float = MARGIN,
          flat: float = FLAT, sources=("mfifb", "sweep", "synthetic", "chart"), n_chart: int = 4800,
          fit_radius: float = FIT_MIN_RADIUS, fit_corr: float = FIT_MIN_CORR) -> dict:
    """Build the tile set; returns its metadata dict."""
    rng = np.random.default_rng(seed)
    col = Collector()
    ctx = tile + 2 * 24  # context so a blur of radius <= 12 px sees real neighbours
    t0 = time.time()
    if "mfifb" in sources:
        build_mfifb(col, data / "multifocus-pairs" / "mfifb", tile, rng, max_per_scene, margin, flat, ctx,
                    fit_radius, fit_corr)
    if "sweep" in sources:
        build_sweeps(col, data / "focus-sweeps", tile, rng, max_per_frame, ctx, fit_radius, fit_corr)
    if "synthetic" in sources:
        build_synthetic(col, tile, rng, n_variants, n_flat)
    if "chart" in sources:
        build_chart(col, tile, rng, n_chart)
    if not col.tiles:
        raise ConfigError(f"no tiles were produced from {str(data)!r}; check --data and --sources")
    tiles = np.concatenate(col.tiles)
    labels = np.concatenate(col.labels)
    blur = np.concatenate(col.blur)
    source = np.array(col.source)
    scene = np.array(col.scene)
    split = np.array(col.split)
    overlap = set(scene[split == "train"]) & set(scene[split == "val"])
    assert not overlap, f"scenes in both splits: {sorted(overlap)[:5]}"
    meta = dict(tile_px=tile, seed=seed, margin=margin, flat=flat, fit_radius=fit_radius, fit_corr=fit_corr, peak_keep=PEAK_KEEP,
                sweep_out=SWEEP_OUT, sweep_min_range=SWEEP_MIN_RANGE, coc_in=COC_IN, coc_out=COC_OUT,
                data=str(data), n=int(len(labels)), seconds=round(time.time() - t0, 1),
                val_scenes=sorted(set(scene[split == "val"])),
                balance=summary(source.tolist(), labels.tolist(), split.tolist()))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, tiles=tiles, labels=labels, source=source, scene=scene, split=split,
                        blur_px=blur, tile_px=np.int32(tile), meta=np.array(json.dumps(meta)))
    if sheet:
        contact_sheet(Path(sheet), tiles, labels, source, np.random.default_rng(seed + 1))
    return meta


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                   help="folder holding multifocus-pairs/mfifb and focus-sweeps")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "tiles.npz")
    p.add_argument("--sheet", type=Path, default=None, help="write a contact sheet PNG of labelled tiles")
    p.add_argument("--tile", type=int, default=32, help="tile side in pixels (default 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sources", default="mfifb,sweep,synthetic,chart")
    p.add_argument("--margin", type=float, default=MARGIN, help="A/B energy ratio for a label")
    p.add_argument("--flat", type=float, default=FLAT, help="Laplacian variance below which tiles are flat")
    p.add_argument("--fit-radius", type=float, default=FIT_MIN_RADIUS,
                   help="MFIFB/sweeps: min. disk radius (px) mapping the sharper tile onto the blurrier "
                        "(0 = off)")
    p.add_argument("--fit-corr", type=float, default=FIT_MIN_CORR,
                   help="MFIFB/sweeps: min. correlation of that fit; lower = misregistered/noisy, dropped (0 = off)")
    p.add_argument("--max-per-scene", type=int, default=400)
    p.add_argument("--max-per-frame", type=int, default=60)
    p.add_argument("--variants", type=int, default=1, help="synthetic variants per in-focus tile")
    p.add_argument("--flat-tiles", type=int, default=8000)
    p.add_argument("--chart-tiles", type=int, default=4800, help="tiles of the procedural focus chart")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, format="%(message)s")
    try:
        meta = build(a.data, a.out, a.tile, a.seed, a.sheet, a.max_per_scene, a.max_per_frame,
                     a.variants, a.flat_tiles, a.margin, a.flat, tuple(a.sources.split(",")), a.chart_tiles,
                     a.fit_radius, a.fit_corr)
    except ConfigError as e:
        print(f"dataset: error: {e}", file=sys.stderr)
        return 2
    print(meta["balance"])
    print(f"{meta['n']} tiles -> {a.out} ({meta['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
