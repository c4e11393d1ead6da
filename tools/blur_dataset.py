#!/usr/bin/env python3
"""Build the blur-radius / motion-blur tile set for the multi-head focus CNN.

Every label here is exact by construction or a fitted disk radius -- never a focus measure:

* **Sharp sources.**  MFIFB pairs and focus sweeps are downsampled ``--downsample`` x (2,
  ``cv2.INTER_AREA``) so that their own optical blur drops well below 0.5 px, then labelled
  with ``tools/dataset.py``'s rules at that scale (MFIFB: 5x Laplacian-energy ratio between
  A and B *and* a confirmed disk-PSF blur fit of the other twin; sweeps: the cell's peak
  frame only).  Context patches (``tile + 2 x margin``) around those sharp tiles are the
  sources of the synthetic tiles.  Each patch's :func:`sharpness_retention` is recorded (``source_q``); with
  ``--source-max-q`` below 1 a patch that keeps more of its Laplacian energy under a 1 px
  disk blur is treated as already soft (the sweep cell's best frame can still be out of
  focus, benchmark JPEGs are soft) and gives motion tiles but no radius labels.
* ``synthetic-defocus`` -- a sharp patch blurred by a disk (pillbox) PSF of radius ``r``
  (:func:`pifocus.sources.simulated.defocus`), through the sensor noise model (shot + read
  noise at analogue gain 1-16, exposure x0.5-1.6), JPEG (quality 50-95) on part of them.
  ``radius_px = r``, ``motion_px = 0``; in-focus label 1 for ``r <= 0.75``, 0 for ``r >= 2``.
* ``synthetic-motion`` -- the same with a motion PSF instead: a straight line of length
  3-15 px at a random angle (:func:`motion_kernel`) or a curved hand-shake path of that
  length (:func:`shake_kernel`), sometimes on top of a slight defocus (<= 1 px).
  ``motion_px`` = path length; ``radius_px`` unknown (NaN); no in-focus label.
* ``chart-defocus`` / ``chart-motion`` -- the simulated source's procedural focus chart
  (exactly sharp: rendered at pixel scale) through the same PSFs and sensor model.
* ``real-mfifb`` / ``real-sweep`` -- real defocused tiles at the downsampled scale: the
  blurrier twin of an MFIFB pair, and out-of-focus sweep frames against the cell's peak
  frame, labelled with the disk radius that best maps the sharp tile onto them
  (:func:`fit_radius`, a finer grid than ``dataset.blur_fit`` plus parabolic refinement),
  kept when that fit correlates >= ``fit_min_corr``.
* ``real-mfifb-full`` -- the same fit at full resolution (validation report only: there the
  sharp twin's own blur is not negligible, so the fitted radius is a lower bound).

The split is by scene with ``dataset.scene_split`` / ``dataset.SWEEP_SCENES`` (the same
scenes as the in-focus tile set); synthetic tiles inherit their source's scene; chart seed
203 is validation.  Validation tiles use grids of radii and motion lengths (clean per-radius
tables); training tiles continuous values.

Output ``.npz`` arrays: ``tiles`` (N, t, t) uint8; ``labels`` (N,) uint8 in-focus label
(1 / 0, ``255`` = none); ``radius_px`` (N,) float32 disk radius (NaN = unknown);
``motion_px`` (N,) float32 motion path length (0 = none, NaN = unknown); ``source``,
``scene``, ``split``, ``motion_kind`` (``""``, ``"linear"``, ``"shake"``) str; ``gain``
float32; ``jpeg_quality`` int16 (0 = none); ``snr`` float32 (Laplacian energy of the clean
blurred tile / that of the added noise, NaN for real tiles); ``texture_snr`` float32 (the
same for the clean *sharp* source tile: how textured the scene is at this noise level --
"textured" in the reports means ``texture_snr >= 3``); ``motion_visibility`` float32 (clean sharp / clean blurred
Laplacian energy of a motion tile, NaN otherwise); ``fit_corr`` float32; ``source_q``
float32 (:func:`sharpness_retention` of the synthetic tile's sharp source, NaN for real
tiles); ``tile_px``;
``meta`` (JSON).

Usage::

    python tools/blur_dataset.py --data ../shared/data --out build/blur_tiles.npz --sheet build/blur_sheet.png
"""

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "tools"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import dataset as ds  # noqa: E402  (tools/dataset.py)
from pifocus.exc import ConfigError  # noqa: E402

log = logging.getLogger("blur_dataset")

#: Disk radii (px) tried by :func:`fit_radius` (0 and 0.5 px give nearly the same image: a
#: disk of radius 0.5 px lies almost inside one pixel).
FIT_RADII = (0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.5, 4.0, 4.5,
             5.0, 5.5, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0)
#: Validation grids (clean per-value tables).
VAL_RADII = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0)
VAL_MOTION = (3.0, 4.0, 5.0, 7.0, 10.0, 15.0)
#: Chart seeds: the last one is validation.
CHART_SEEDS = (200, 201, 202, 203)
#: In-focus label "none".
NO_LABEL = 255


@dataclass(frozen=True)
class BlurSetParams:
    """Everything that shapes the blur / motion tile set (validated).

    Attributes:
        tile_px: tile side (px).
        margin_px: context around a tile (px each side) so PSFs see real neighbours.
        downsample: sharp sources are reduced by this factor (INTER_AREA) first.
        min_side_px: sources whose shorter side (before downsampling) is smaller are skipped.
        max_sharp_per_scene: cap on sharp context patches per MFIFB scene / sweep frame.
        defocus_variants: synthetic defocus tiles per sharp patch.
        motion_variants: synthetic motion tiles per sharp patch.
        max_radius_px: largest training disk radius (px).
        motion_px: (min, max) motion path length (px); motion >= min is "motion-blurred".
        shake_fraction: fraction of motion tiles with a curved shake path.
        jpeg_fraction: fraction of synthetic tiles JPEG-compressed (quality 50-95).
        gains: analogue gains of the sensor model, drawn uniformly from this list.
        fit_min_corr: real tiles: minimum correlation of the disk-radius fit.
        max_real_per_scene: cap on real fitted tiles per MFIFB scene / sweep frame.
        chart_tiles: tiles of the procedural chart (defocus + motion, all seeds).
        dead_leaves_images: procedural dead-leaves images (exactly sharp; a quarter are
            validation).
        dead_leaves_patches: sharp patches taken from each of them.
        sweep_short_side_px: sweeps are downsampled by ``max(downsample, short side // this)``
            (up to 4x): the big DSLR frames are softer per pixel than the benchmark pairs.
        screen_max_px: with a screening model, a real scene's sharp patches (and its fitted
            real tiles) are used only if the model's median radius on them is at most this.
        source_max_q: a real sharp patch keeps its radius labels only when its
            :func:`sharpness_retention` is at most this (an exactly sharp dead-leaves tile:
            ~0.19; one pre-blurred by a 0.6 px disk: ~0.25); softer patches are used for the
            motion head only.  1 = no screen (the default: with 0.24 the screen dropped 30 %
            of the real sharp patches' radius labels and the real-source validation error
            rose, see models/MODEL_CARD.md).
        seed: random seed.
    """

    tile_px: int = 32
    margin_px: int = 24
    downsample: int = 2
    min_side_px: int = 256
    max_sharp_per_scene: int = 120
    defocus_variants: int = 6
    motion_variants: int = 4
    max_radius_px: float = 10.0
    motion_px: Tuple[float, float] = (3.0, 15.0)
    shake_fraction: float = 0.3
    jpeg_fraction: float = 0.4
    gains: Tuple[float, ...] = (1.0, 1.0, 2.0, 4.0, 8.0, 16.0)
    fit_min_corr: float = 0.9
    max_real_per_scene: int = 120
    chart_tiles: int = 6000
    dead_leaves_images: int = 80
    dead_leaves_patches: int = 50
    sweep_short_side_px: int = 300
    screen_max_px: float = 0.5
    source_max_q: float = 1.0
    seed: int = 0

    def __post_init__(self):
        def check(name, ok, allowed):
            if not ok:
                raise ConfigError(f"blur dataset: {name} = {getattr(self, name)!r} is invalid; allowed: {allowed}")
        check("tile_px", 8 <= self.tile_px <= 128, "8..128 px")
        check("margin_px", 8 <= self.margin_px <= 64, "8..64 px (must hold the largest PSF)")
        check("downsample", self.downsample in (1, 2, 3, 4), "1, 2, 3 or 4")
        check("min_side_px", self.min_side_px >= self.downsample * (self.tile_px + 2 * self.margin_px) // 2,
              "at least the context patch at the downsampled scale")
        check("max_sharp_per_scene", self.max_sharp_per_scene >= 1, ">= 1")
        check("defocus_variants", self.defocus_variants >= 0, ">= 0")
        check("motion_variants", self.motion_variants >= 0, ">= 0")
        check("max_radius_px", 1.0 <= self.max_radius_px <= self.margin_px, f"1..margin_px ({self.margin_px})")
        lo, hi = self.motion_px
        check("motion_px", 1.0 <= lo <= hi <= 2 * self.margin_px, f"1 <= min <= max <= 2 x margin_px")
        check("shake_fraction", 0.0 <= self.shake_fraction <= 1.0, "0..1")
        check("jpeg_fraction", 0.0 <= self.jpeg_fraction <= 1.0, "0..1")
        check("gains", len(self.gains) > 0 and all(1.0 <= g <= 64.0 for g in self.gains), "values in 1..64")
        check("fit_min_corr", 0.0 <= self.fit_min_corr < 1.0, "0..1")
        check("max_real_per_scene", self.max_real_per_scene >= 0, ">= 0")
        check("chart_tiles", self.chart_tiles >= 0, ">= 0")
        check("dead_leaves_images", self.dead_leaves_images >= 0, ">= 0")
        check("dead_leaves_patches", self.dead_leaves_patches >= 1, ">= 1")
        check("sweep_short_side_px", self.sweep_short_side_px >= 128, ">= 128")
        check("screen_max_px", 0.0 < self.screen_max_px <= 3.0, "0..3 px")
        check("source_max_q", 0.0 < self.source_max_q <= 1.0, "0 < q <= 1 (1 = no screen)")

    @property
    def context_px(self) -> int:
        """Side of a context patch (px)."""
        return self.tile_px + 2 * self.margin_px


# ---------------------------------------------------------------------------------------
# PSFs (pure functions, tested on literal arrays)
# ---------------------------------------------------------------------------------------

def path_kernel(points_px: np.ndarray) -> np.ndarray:
    """A normalized PSF that spreads light evenly along a polyline.

    Args:
        points_px: ``(K, 2)`` vertices ``(x, y)`` in pixels (any origin; the path is centred
            on its centre of mass so the PSF does not shift the image).

    Returns:
        float32 odd-sized square kernel summing to 1 (bilinear splats of points spaced
        1/16 px along the path: anti-aliased).
    """
    p = np.asarray(points_px, np.float64).reshape(-1, 2)
    if len(p) == 1:
        p = np.vstack([p, p])
    seg = np.diff(p, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    total = float(seg_len.sum())
    n = max(2, int(math.ceil(total * 16)) + 1)
    s = np.linspace(0.0, total, n)
    cum = np.r_[0.0, np.cumsum(seg_len)]
    if total <= 0:
        pts = np.repeat(p[:1], n, axis=0)
    else:
        pts = np.stack([np.interp(s, cum, p[:, 0]), np.interp(s, cum, p[:, 1])], axis=1)
    pts -= pts.mean(axis=0)
    half = int(math.ceil(np.abs(pts).max() + 1.0))
    size = 2 * half + 1
    k = np.zeros((size, size), np.float64)
    x, y = pts[:, 0] + half, pts[:, 1] + half
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            np.add.at(k, (np.clip(y0 + dy, 0, size - 1), np.clip(x0 + dx, 0, size - 1)), wx * wy)
    return (k / k.sum()).astype(np.float32)


def motion_kernel(length_px: float, angle_rad: float) -> np.ndarray:
    """Linear motion PSF: light spread evenly along a straight segment of ``length_px``
    pixels at ``angle_rad`` (0 = horizontal).  ``length_px`` <= 1 is nearly the identity."""
    d = 0.5 * float(length_px) * np.array([math.cos(angle_rad), math.sin(angle_rad)])
    return path_kernel(np.stack([-d, d]))


def shake_kernel(length_px: float, rng: np.random.Generator, n_vertices: int = 24) -> np.ndarray:
    """Curved hand-shake PSF: a smooth random path (heading changes smoothly, total turn up
    to about 1.5 rad either way, sometimes doubling back a little) scaled to ``length_px``."""
    turn = rng.normal(0.0, 1.0) * rng.uniform(0.3, 1.5)
    wiggle = rng.uniform(0.0, 0.6)
    t = np.linspace(0.0, 1.0, n_vertices)
    heading = rng.uniform(0, 2 * np.pi) + turn * t + wiggle * np.sin(2 * np.pi * (t * rng.uniform(0.5, 1.5)
                                                                               + rng.uniform()))
    steps = np.stack([np.cos(heading), np.sin(heading)], axis=1)
    steps *= float(length_px) / (n_vertices - 1)
    pts = np.vstack([[0.0, 0.0], np.cumsum(steps[:-1], axis=0)])
    return path_kernel(pts)


def apply_psf(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve a float32 image with a PSF (reflected borders)."""
    import cv2
    return cv2.filter2D(np.asarray(image, np.float32), -1, kernel[::-1, ::-1].copy(),
                        borderType=cv2.BORDER_REFLECT)


def downsample(gray: np.ndarray, factor: int) -> np.ndarray:
    """Reduce a uint8 image by an integer factor with ``cv2.INTER_AREA`` (box average: the
    source's own blur shrinks by the factor)."""
    import cv2
    if factor == 1:
        return gray
    h, w = gray.shape
    return cv2.resize(gray, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


#: Radius (px) of the test blur of :func:`sharpness_retention`.
RETENTION_RADIUS_PX = 1.0


def sharpness_retention(patch: np.ndarray, margin_px: int, tile_px: int, noise_sigma_dn: float = 0.0) -> float:
    """How much of a patch's central tile's detail survives a 1 px disk blur: ``q = E(blurred)
    / E(patch)``, E the Laplacian variance of the central ``tile_px`` square, with the energy
    white noise of ``noise_sigma_dn`` contributes removed from both (what noise adds is not
    detail, and blurring removes most of it).

    An exactly sharp source loses most of its Laplacian energy (dead leaves: q ~0.19); a
    source that is already soft loses less (pre-blurred by a 0.6 px disk: ~0.25, 1 px:
    ~0.48).  A pure function of the pixels (float result, dimensionless); NaN when the tile
    has no detail above the noise.
    """
    import cv2
    from pifocus.sources.simulated import defocus
    f = np.asarray(patch, np.float32)
    m, t = int(margin_px), int(tile_px)
    c = (slice(m, m + t), slice(m, m + t))
    e0 = float(cv2.Laplacian(f[c], cv2.CV_32F).var())
    e1 = float(cv2.Laplacian(defocus(f, RETENTION_RADIUS_PX)[c], cv2.CV_32F).var())
    n0 = ds.LAP_NOISE_GAIN * float(noise_sigma_dn) ** 2
    n1 = n0 * _noise_retention()
    if e0 - n0 <= 0:
        return float("nan")
    return max(e1 - n1, 0.0) / (e0 - n0)


_NOISE_RET = []


def _noise_retention() -> float:
    """Share of white noise's Laplacian energy that survives the retention blur (measured once)."""
    if not _NOISE_RET:
        import cv2
        from pifocus.sources.simulated import defocus
        w = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
        _NOISE_RET.append(float(cv2.Laplacian(defocus(w, RETENTION_RADIUS_PX), cv2.CV_32F)[8:-8, 8:-8].var()
                                / cv2.Laplacian(w, cv2.CV_32F)[8:-8, 8:-8].var()))
    return _NOISE_RET[0]


def screen_sources(sharp: List["Patch"], p: "BlurSetParams") -> dict:
    """Per-patch source screen: compute every patch's :func:`sharpness_retention`; real
    patches (not dead leaves or the chart, which are exactly sharp) above ``p.source_max_q``
    keep only their motion labels.  Returns counts ``{"real", "soft", "q_median"}``."""
    qs, soft, real = [], 0, 0
    for q in sharp:
        q.source_q = sharpness_retention(q.pixels, p.margin_px, p.tile_px, q.noise_sigma_dn)
        if q.scene.startswith(("leaves:", "chart:")):
            continue
        real += 1
        qs.append(q.source_q)
        if not (q.source_q <= p.source_max_q):  # NaN (no detail above noise) counts as soft
            q.blur_ok = False
            soft += 1
    out = {"real": real, "soft": soft, "q_median": float(np.nanmedian(qs)) if qs else float("nan")}
    log.info("source screen: %d of %d real sharp patches too soft for radius labels (q > %.2f; median q %.3f)",
             soft, real, p.source_max_q, out["q_median"])
    return out


def fit_radius(sharp: np.ndarray, blurry: np.ndarray, tile: int, stride: int, radii=FIT_RADII):
    """Per window, the disk radius (px) that best maps ``sharp`` onto ``blurry``, refined by a
    parabola through the best grid radius and its neighbours, and that fit's correlation.

    Like :func:`dataset.blur_fit` (gain/offset-invariant window correlation), on a finer
    grid.  Returns ``(radius, corr)`` on :func:`dataset.tile_energy`'s grid.
    """
    from pifocus.sources.simulated import defocus
    s = np.asarray(sharp, np.float32)
    b = np.asarray(blurry, np.float64)
    r = np.asarray(radii, np.float64)
    c = np.stack([ds.window_correlation(defocus(s, float(x)).astype(np.float64), b, tile, stride)[0]
                  for x in r])
    k = np.argmax(c, axis=0)
    best = np.take_along_axis(c, k[None], 0)[0]
    km, kp = np.clip(k - 1, 0, len(r) - 1), np.clip(k + 1, 0, len(r) - 1)
    cm = np.take_along_axis(c, km[None], 0)[0]
    cp = np.take_along_axis(c, kp[None], 0)[0]
    rk, rm, rp = r[k], r[km], r[kp]
    inner = (k > 0) & (k < len(r) - 1)
    # vertex of the parabola through (rm, cm), (rk, best), (rp, cp) (uneven spacing)
    with np.errstate(divide="ignore", invalid="ignore"):
        num = (rk - rm) ** 2 * (best - cp) - (rk - rp) ** 2 * (best - cm)
        den = (rk - rm) * (best - cp) - (rk - rp) * (best - cm)
        vertex = rk - 0.5 * num / den
    ok = inner & np.isfinite(vertex) & (den != 0)
    out = np.where(ok, np.clip(vertex, rm, rp), rk)
    out = np.where(rk <= 0.5, rk, out)  # 0 and 0.5 px are indistinguishable: no refinement
    return out, best


# ---------------------------------------------------------------------------------------
# Collection
# ---------------------------------------------------------------------------------------

@dataclass
class Rows:
    """Accumulates tiles and their per-tile columns."""

    tiles: List[np.ndarray] = field(default_factory=list)
    cols: dict = field(default_factory=lambda: {k: [] for k in (
        "labels", "radius_px", "motion_px", "source", "scene", "split", "motion_kind", "gain",
        "jpeg_quality", "snr", "texture_snr", "motion_visibility", "fit_corr", "source_q")})

    def add(self, tile: np.ndarray, **values) -> None:
        defaults = dict(labels=NO_LABEL, radius_px=np.nan, motion_px=np.nan, motion_kind="", gain=np.nan,
                        jpeg_quality=0, snr=np.nan, texture_snr=np.nan, motion_visibility=np.nan, fit_corr=np.nan,
                        source_q=np.nan)
        defaults.update(values)
        self.tiles.append(np.asarray(tile, np.uint8))
        for k, v in self.cols.items():
            v.append(defaults[k])

    def __len__(self):
        return len(self.tiles)


@dataclass
class Patch:
    """A sharp context patch (uint8) and where it came from."""

    pixels: np.ndarray
    scene: str
    split: str
    blur_ok: bool = True  # False: the source is too soft for exact radius labels (motion only)
    noise_sigma_dn: float = 0.0  # white-noise sigma of the image it came from (Immerkaer)
    source_q: float = float("nan")  # :func:`sharpness_retention` of its central tile


def _context(img, y, x, tile, margin) -> Optional[np.ndarray]:
    y0, x0, size = y - margin, x - margin, tile + 2 * margin
    if y0 < 0 or x0 < 0 or y0 + size > img.shape[0] or x0 + size > img.shape[1]:
        return None
    return img[y0:y0 + size, x0:x0 + size]


def _pick(rng, n, cap):
    idx = np.arange(n)
    return np.sort(rng.choice(idx, cap, replace=False)) if n > cap else idx


def _pair_labels(a, b, tile, stride, downsampled: bool):
    """dataset.py's MFIFB labelling (energy ratio, clipping, registration, blur-fit check)."""
    na = ds.LAP_NOISE_GAIN * ds.immerkaer_sigma(a) ** 2
    nb = ds.LAP_NOISE_GAIN * ds.immerkaer_sigma(b) ** 2
    corr, lp_std = ds.lowpass_correlation(a, b, tile, stride)
    usable = ((ds.clipped_fraction(a, tile, stride) <= ds.MAX_CLIPPED)
              & (ds.clipped_fraction(b, tile, stride) <= ds.MAX_CLIPPED)
              & ((corr >= ds.MIN_CORR) | (lp_std < 4.0)))
    return ds.label_pair(ds.tile_energy(a, tile, stride), ds.tile_energy(b, tile, stride), ds.MARGIN,
                         ds.FLAT, na, nb, usable)


def collect_mfifb(root: Path, p: BlurSetParams, rng, rows: Rows, sharp: List[Patch]) -> None:
    """Sharp patches and fitted real tiles from MFIFB pairs (see the module docstring)."""
    from tqdm import tqdm
    t = p.tile_px
    stride = t // 2
    min_fit = ds.FIT_MIN_RADIUS / p.downsample  # the twin must be clearly defocused at this scale
    for scene, pa, pb in tqdm(ds.mfifb_scenes(root), desc="mfifb", unit="scene"):
        a_full, b_full = ds.read_gray(pa), ds.read_gray(pb)
        if a_full.shape != b_full.shape:
            continue
        split = ds.scene_split(scene)
        sid = "mfifb:" + scene
        # full resolution: fitted radius of the blurrier twin (validation report only)
        lab = _pair_labels(a_full, b_full, t, stride, False)
        if split == "val":
            for sign, s_img, b_img in ((1, a_full, b_full), (-1, b_full, a_full)):
                r, c = fit_radius(s_img, b_img, t, stride)
                iy, ix = np.nonzero((lab == sign) & (c >= p.fit_min_corr))
                for k in _pick(rng, len(iy), p.max_real_per_scene // 2):
                    y, x = iy[k] * stride, ix[k] * stride
                    rows.add(b_img[y:y + t, x:x + t], radius_px=float(r[iy[k], ix[k]]), motion_px=0.0,
                             source="real-mfifb-full", scene=sid, split=split, fit_corr=float(c[iy[k], ix[k]]))
        if min(a_full.shape) < p.min_side_px:
            continue
        a, b = downsample(a_full, p.downsample), downsample(b_full, p.downsample)
        lab = _pair_labels(a, b, t, stride, True)
        sig = {1: ds.immerkaer_sigma(a), -1: ds.immerkaer_sigma(b)}
        for sign, s_img, b_img in ((1, a, b), (-1, b, a)):
            r, c = fit_radius(s_img, b_img, t, stride)
            confirmed = (lab == sign) & (r >= min_fit) & (c >= ds.FIT_MIN_CORR)
            iy, ix = np.nonzero(confirmed)
            for k in _pick(rng, len(iy), p.max_sharp_per_scene // 2):
                y, x = iy[k] * stride, ix[k] * stride
                patch = _context(s_img, y, x, t, p.margin_px)
                if patch is not None:
                    sharp.append(Patch(patch.copy(), sid, split, noise_sigma_dn=sig[sign]))
            # real defocused tiles: the blurrier twin, labelled by the fitted radius
            iy, ix = np.nonzero((lab == sign) & (c >= p.fit_min_corr))
            for k in _pick(rng, len(iy), p.max_real_per_scene // 2):
                y, x = iy[k] * stride, ix[k] * stride
                rr = float(r[iy[k], ix[k]])
                rows.add(b_img[y:y + t, x:x + t], radius_px=rr, motion_px=0.0,
                         labels=int(ds.label_blur(rr)) if rr >= ds.COC_OUT else NO_LABEL,
                         source="real-mfifb", scene=sid, split=split, fit_corr=float(c[iy[k], ix[k]]))


def collect_sweeps(root: Path, p: BlurSetParams, rng, rows: Rows, sharp: List[Patch]) -> None:
    """Sharp patches (each cell's peak frame) and fitted out-of-focus tiles from sweeps."""
    from tqdm import tqdm
    t = p.tile_px
    if not root.is_dir():
        raise ConfigError(f"focus-sweeps folder {str(root)!r} not found; pass --data DIR")
    for folder in tqdm(sorted(q for q in root.iterdir() if q.is_dir()), desc="sweeps", unit="sweep"):
        scene, split = ds.SWEEP_SCENES.get(folder.name, ("sweep:" + folder.name, ds.scene_split(folder.name)))
        files = ds.sweep_frames(folder)
        if len(files) < 3:
            continue
        frames = [ds.read_gray(f) for f in files]
        h = min(f.shape[0] for f in frames)
        w = min(f.shape[1] for f in frames)
        if min(h, w) < p.min_side_px:
            continue
        factor = int(min(4, max(p.downsample, min(h, w) // p.sweep_short_side_px)))
        frames = [downsample(f[:h, :w], factor) for f in frames]
        h, w = frames[0].shape
        stride = t if min(h, w) > 600 else t // 2
        sigmas = [ds.immerkaer_sigma(f) for f in frames]
        noise = min(ds.LAP_NOISE_GAIN * s ** 2 for s in sigmas)
        energies = np.stack([np.maximum(ds.tile_energy(f, t, stride) - noise, 0.0) for f in frames])
        nf, nr, nc = energies.shape
        lab = ds.label_sweep(energies.reshape(nf, -1), flat=ds.FLAT + 4.0 * noise).reshape(nf, nr, nc)
        for fi, f in enumerate(frames):
            lab[fi][ds.clipped_fraction(f, t, stride) > ds.MAX_CLIPPED] = -1
        peak = np.argmax(energies, axis=0)
        cap = max(1, p.max_sharp_per_scene // 2)
        for pk in np.unique(peak):
            m = (peak == pk) & (lab[pk] == 1)
            iy, ix = np.nonzero(m)
            for k in _pick(rng, len(iy), cap):
                patch = _context(frames[pk], iy[k] * stride, ix[k] * stride, t, p.margin_px)
                if patch is not None:
                    sharp.append(Patch(patch.copy(), scene, split, noise_sigma_dn=sigmas[pk]))
            # out-of-focus frames of these cells, labelled by the radius fit against the peak
            for fi in range(nf):
                cand = (peak == pk) & (lab[fi] == 0)
                if fi == pk or not cand.any():
                    continue
                r, c = fit_radius(frames[pk], frames[fi], t, stride)
                iy, ix = np.nonzero(cand & (c >= p.fit_min_corr))
                for k in _pick(rng, len(iy), max(1, p.max_real_per_scene // 8)):
                    y, x = iy[k] * stride, ix[k] * stride
                    rr = float(r[iy[k], ix[k]])
                    rows.add(frames[fi][y:y + t, x:x + t], radius_px=rr, motion_px=0.0,
                             labels=0 if rr >= ds.COC_OUT else NO_LABEL,
                             source="real-sweep", scene=scene, split=split, fit_corr=float(c[iy[k], ix[k]]))


def _train_radius(rng, p: BlurSetParams) -> float:
    u = rng.random()
    if u < 0.15:
        return 0.0
    if u < 0.65:
        return float(rng.uniform(0.0, 3.0))
    return float(rng.uniform(3.0, p.max_radius_px))


def _motion_psf(rng, p: BlurSetParams, length: float, kind: str) -> np.ndarray:
    if kind == "shake":
        return shake_kernel(length, rng)
    return motion_kernel(length, float(rng.uniform(0, np.pi)))


def render_variant(lum: np.ndarray, rng, p: BlurSetParams, *, radius_px: float = 0.0,
                   motion: Optional[np.ndarray] = None):
    """One synthetic tile from a float32 luminance patch (0..1): disk PSF, optional motion
    PSF, sensor noise, optional JPEG, central crop.

    Returns ``(tile uint8, info dict)`` with gain, jpeg_quality, snr and (motion)
    motion_visibility.
    """
    from pifocus.sources.simulated import defocus, sensor
    t = p.tile_px
    img = defocus(lum, float(radius_px)) if radius_px > 0 else lum
    clean_sharp = img
    if motion is not None:
        img = apply_psf(img, motion)
    gain = float(rng.choice(p.gains))
    exposure = float(np.exp(rng.uniform(np.log(0.5), np.log(1.6))))
    noisy = sensor(img, rng, exposure=exposure, analogue_gain=gain)
    q = int(rng.integers(50, 96)) if rng.random() < p.jpeg_fraction else 0
    if q:
        noisy = ds.jpeg(noisy, q)
    h, w = noisy.shape
    y0, x0 = (h - t) // 2, (w - t) // 2
    tile = noisy[y0:y0 + t, x0:x0 + t]
    clean = np.clip(img * exposure * 255.0, 0, 255)[y0:y0 + t, x0:x0 + t]
    e_clean = float(ds.tile_energy(clean, t, t)[0, 0])
    # the noise the sensor (and JPEG) added, measured directly: noisy minus clean
    e_noise = max(float(ds.tile_energy(tile.astype(np.float32) - clean.astype(np.float32), t, t)[0, 0]), 1e-3)
    sharp0 = np.clip(lum * exposure * 255.0, 0, 255)[y0:y0 + t, x0:x0 + t]
    info = {"gain": gain, "jpeg_quality": q, "snr": e_clean / e_noise,
            "texture_snr": float(ds.tile_energy(sharp0, t, t)[0, 0]) / e_noise}
    if motion is not None:
        cs = np.clip(clean_sharp * exposure * 255.0, 0, 255)[y0:y0 + t, x0:x0 + t]
        info["motion_visibility"] = float(ds.tile_energy(cs, t, t)[0, 0]) / max(e_clean, 1e-6)
    return tile, info


def synthesize(sharp: List[Patch], p: BlurSetParams, rng, rows: Rows, source_prefix: str = "synthetic") -> None:
    """Defocus and motion variants of every sharp patch."""
    from tqdm import tqdm
    lo, hi = p.motion_px
    counters = {"val": 0, "motion": 0}
    for patch in tqdm(sharp, desc=f"{source_prefix} variants", unit="patch"):
        lum = patch.pixels.astype(np.float32) / 255.0
        val = patch.split == "val"
        for _ in range(p.defocus_variants):
            if val:
                r = VAL_RADII[counters["val"] % len(VAL_RADII)]
                counters["val"] += 1
            else:
                r = _train_radius(rng, p)
            tile, info = render_variant(lum, rng, p, radius_px=r)
            lab = int(ds.label_blur(r)) if patch.blur_ok else -1
            rows.add(tile, labels=lab if lab >= 0 else NO_LABEL, radius_px=r if patch.blur_ok else np.nan,
                     motion_px=0.0, source_q=patch.source_q,
                     source=f"{source_prefix}-defocus", scene=patch.scene, split=patch.split, **info)
        for _ in range(p.motion_variants):
            if val:
                length = VAL_MOTION[counters["motion"] % len(VAL_MOTION)]
                counters["motion"] += 1
            else:  # half of them short (the hard cases near the 3 px boundary)
                length = float(rng.uniform(lo, min(hi, 2 * lo)) if rng.random() < 0.5 else rng.uniform(lo, hi))
            kind = "shake" if rng.random() < p.shake_fraction else "linear"
            r = float(rng.uniform(0.0, 1.0)) if rng.random() < 0.3 else 0.0
            tile, info = render_variant(lum, rng, p, radius_px=r, motion=_motion_psf(rng, p, length, kind))
            rows.add(tile, motion_px=length, motion_kind=kind, source=f"{source_prefix}-motion", source_q=patch.source_q,
                     scene=patch.scene, split=patch.split, **info)


def chart_patches(p: BlurSetParams, rng) -> List[Patch]:
    """Sharp context patches of the procedural focus chart (textured positions)."""
    from pifocus.sources.simulated import focus_chart
    per_seed = max(1, p.chart_tiles // (len(CHART_SEEDS) * max(1, p.defocus_variants + p.motion_variants)))
    out = []
    size = p.context_px
    for seed in CHART_SEEDS:
        split = "val" if seed == CHART_SEEDS[-1] else "train"
        w = int(rng.integers(640, 1400))
        chart = focus_chart(w, w * 3 // 4, seed=seed)
        sharp = np.clip(chart * 255.0, 0, 255)
        got, tries = 0, 0
        while got < per_seed and tries < per_seed * 50:
            tries += 1
            y = int(rng.integers(0, chart.shape[0] - size))
            x = int(rng.integers(0, chart.shape[1] - size))
            m = p.margin_px
            if sharp[y + m:y + m + p.tile_px, x + m:x + m + p.tile_px].std() >= 12:
                out.append(Patch(np.round(sharp[y:y + size, x:x + size]).astype(np.uint8), f"chart:{seed}", split))
                got += 1
    return out


def dead_leaves(height: int, width: int, rng: np.random.Generator, supersample: int = 4) -> np.ndarray:
    """An exactly sharp procedural "dead leaves" image (float32 luminance 0..1).

    Opaque random shapes (disks, rotated rectangles, triangles) with power-law sizes
    (density ~ size^-3, 1.5-60 px), flat, shaded or finely textured grey levels, painted
    front to back until the canvas is covered: the scale-invariant, edge-rich statistics of
    natural scenes (the ISO 19567-2 texture-sharpness chart).  Rendered at ``supersample``
    x and area-averaged, so the only blur is the pixel aperture.
    """
    import cv2
    ss = supersample
    H, W = height * ss, width * ss
    img = np.zeros((H, W), np.float32)
    covered = np.zeros((H, W), bool)
    rmin, rmax = 1.5, 60.0
    tex = None
    for it in range(6000):
        if it % 50 == 0 and covered.mean() > 0.995:
            break
        u = rng.random()
        size = 1.0 / math.sqrt(u * (rmin ** -2 - rmax ** -2) + rmax ** -2) * ss  # pdf ~ r^-3
        cx, cy = rng.uniform(-size, W + size), rng.uniform(-size, H + size)
        x0, y0 = max(0, int(cx - size - 2)), max(0, int(cy - size - 2))
        x1, y1 = min(W, int(cx + size + 3)), min(H, int(cy + size + 3))
        if x1 <= x0 or y1 <= y0:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        kind = rng.random()
        if kind < 0.6:
            cv2.circle(mask, (int(cx) - x0, int(cy) - y0), max(1, int(size)), 1, -1)
        else:
            n = 4 if kind < 0.85 else 3
            ang = rng.uniform(0, 2 * np.pi) + np.arange(n) * 2 * np.pi / n + rng.uniform(-0.3, 0.3, n)
            pts = np.stack([cx - x0 + size * np.cos(ang), cy - y0 + size * np.sin(ang)], axis=1).astype(np.int32)
            cv2.fillPoly(mask, [pts], 1)
        cov = covered[y0:y1, x0:x1]
        new = mask.astype(bool) & ~cov
        if not new.any():
            continue
        level = rng.uniform(0.05, 0.95)
        region = img[y0:y1, x0:x1]
        t = rng.random()
        if t < 0.55:
            region[new] = level
        elif t < 0.8:  # shaded
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            g = rng.normal(0, 0.25, 2) / max(size, 1.0)
            region[new] = np.clip(level + g[0] * (yy[new] - cy) + g[1] * (xx[new] - cx), 0.02, 0.98)
        else:  # finely textured (band-limited noise at the final pixel scale)
            if tex is None:
                tex = cv2.resize(rng.standard_normal((height, width)).astype(np.float32), (W, H),
                                 interpolation=cv2.INTER_CUBIC)
            region[new] = np.clip(level + rng.uniform(0.03, 0.15) * tex[y0:y1, x0:x1][new], 0.02, 0.98)
        cov |= new
    img[~covered] = 0.5
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)


def dead_leaves_patches(p: BlurSetParams, rng) -> List[Patch]:
    """Sharp context patches of :func:`dead_leaves` images (every 4th image: validation)."""
    from tqdm import tqdm
    size, m = p.context_px, p.margin_px
    out = []
    for i in tqdm(range(p.dead_leaves_images), desc="dead leaves", unit="image"):
        split = "val" if i % 4 == 3 else "train"
        img = np.clip(dead_leaves(384, 512, rng) * 255.0, 0, 255)
        got = 0
        for _ in range(p.dead_leaves_patches * 20):
            if got >= p.dead_leaves_patches:
                break
            y, x = int(rng.integers(0, img.shape[0] - size)), int(rng.integers(0, img.shape[1] - size))
            if img[y + m:y + m + p.tile_px, x + m:x + m + p.tile_px].std() >= 10:
                out.append(Patch(np.round(img[y:y + size, x:x + size]).astype(np.uint8), f"leaves:{i}", split))
                got += 1
    return out


def screen_scenes(sharp: List[Patch], rows: Rows, model_path, p: BlurSetParams) -> dict:
    """Mark the real scenes whose sharp patches are not sharp: a blur model trained on exactly
    sharp procedural sources (dead leaves + chart) estimates the radius of every sharp
    patch's central tile; a scene whose median exceeds ``p.screen_max_px`` keeps its sharp
    patches for the motion head only (its defocus variants get no radius label: the source's
    own blur would bias it) and loses its fitted real tiles (their labels assume a sharp
    reference).

    Returns ``{scene: median radius px}`` for every real scene screened.
    """
    import keras
    from pifocus.classify import ModelInfo, normalize_tiles
    from pifocus.classify.heads import OutputLayout
    info = json.loads(Path(model_path).with_suffix(".train.json").read_text())
    layout = OutputLayout.from_dict(info["heads"])
    model = keras.models.load_model(str(model_path), compile=False)
    m, t = p.margin_px, p.tile_px
    real = [k for k, q in enumerate(sharp) if not q.scene.startswith(("leaves:", "chart:"))]
    tiles = np.stack([sharp[k].pixels[m:m + t, m:m + t] for k in real])
    x = normalize_tiles(tiles, info.get("std_floor", ModelInfo.std_floor), info.get("clip", ModelInfo.clip))
    est = layout.decode(model.predict(x, batch_size=1024, verbose=0)).blur_px
    by_scene = {}
    for k, e in zip(real, est):
        by_scene.setdefault(sharp[k].scene, []).append(float(e))
    med = {s: round(float(np.median(v)), 3) for s, v in sorted(by_scene.items())}
    bad = {s for s, v in med.items() if v > p.screen_max_px}
    for q in sharp:
        q.blur_ok = q.scene not in bad
    keep = [i for i, s in enumerate(rows.cols["scene"]) if s not in bad or rows.cols["source"][i] == "real-mfifb-full"]
    rows.tiles = [rows.tiles[i] for i in keep]
    for k in rows.cols:
        rows.cols[k] = [rows.cols[k][i] for i in keep]
    log.info("screening: %d of %d real scenes sharp enough for radius labels (median <= %.2f px)",
             len(med) - len(bad), len(med), p.screen_max_px)
    return med


def build(data: Path, out: Path, p: BlurSetParams = BlurSetParams(), sheet=None,
          sources=("mfifb", "sweep", "chart", "leaves"), screen_model=None) -> dict:
    """Build the set and write ``out``; returns its metadata dict.

    Raises:
        ConfigError: the data folders are missing or nothing was produced.
    """
    rng = np.random.default_rng(p.seed)
    rows, sharp = Rows(), []
    t0 = time.time()
    if "mfifb" in sources:
        collect_mfifb(data / "multifocus-pairs" / "mfifb", p, rng, rows, sharp)
    if "sweep" in sources:
        collect_sweeps(data / "focus-sweeps", p, rng, rows, sharp)
    screened = screen_scenes(sharp, rows, screen_model, p) if screen_model and sharp else {}
    source_screen = screen_sources(sharp, p)
    n_sharp = len(sharp)
    synthesize(sharp, p, rng, rows, "synthetic")
    if "leaves" in sources:
        leaves = dead_leaves_patches(p, rng)
        screen_sources(leaves, p)  # q for the reports only: never screened
        synthesize(leaves, p, rng, rows, "leaves")
    if "chart" in sources:
        synthesize(chart_patches(p, rng), p, rng, rows, "chart")
    if not len(rows):
        raise ConfigError(f"no tiles were produced from {str(data)!r}; check --data and --sources")
    c = rows.cols
    arrays = dict(tiles=np.stack(rows.tiles), labels=np.array(c["labels"], np.uint8),
                  radius_px=np.array(c["radius_px"], np.float32), motion_px=np.array(c["motion_px"], np.float32),
                  source=np.array(c["source"]), scene=np.array(c["scene"]), split=np.array(c["split"]),
                  motion_kind=np.array(c["motion_kind"]), gain=np.array(c["gain"], np.float32),
                  jpeg_quality=np.array(c["jpeg_quality"], np.int16), snr=np.array(c["snr"], np.float32),
                  texture_snr=np.array(c["texture_snr"], np.float32),
                  motion_visibility=np.array(c["motion_visibility"], np.float32),
                  fit_corr=np.array(c["fit_corr"], np.float32), source_q=np.array(c["source_q"], np.float32))
    overlap = set(arrays["scene"][arrays["split"] == "train"]) & set(arrays["scene"][arrays["split"] == "val"])
    if overlap:
        raise ConfigError(f"scenes in both splits: {sorted(overlap)[:5]}")
    counts = {}
    for s, sp in zip(arrays["source"].tolist(), arrays["split"].tolist()):
        counts[f"{s}/{sp}"] = counts.get(f"{s}/{sp}", 0) + 1
    params = asdict(p)
    meta = dict(params=params, data=str(data), n=int(len(rows)), sharp_patches=n_sharp, counts=counts,
                source_screen=source_screen,
                screen_model=str(screen_model) if screen_model else None, screened_median_px=screened,
                screened_out=sorted(s for s, v in screened.items() if v > p.screen_max_px),
                seconds=round(time.time() - t0, 1), val_scenes=sorted(set(arrays["scene"][arrays["split"] == "val"])))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, tile_px=np.int32(p.tile_px), meta=np.array(json.dumps(meta)), **arrays)
    if sheet:
        contact_sheet(Path(sheet), arrays, np.random.default_rng(p.seed + 1))
    return meta


def contact_sheet(path: Path, a: dict, rng, per_row: int = 12, zoom: int = 3) -> None:
    """PNG: one row per (source, radius or motion bucket) of random tiles, for inspection."""
    import cv2
    t = a["tiles"].shape[1]
    cell = t * zoom + 4
    blocks = []
    groups = []
    for src in sorted(set(a["source"].tolist())):
        m = a["source"] == src
        if "motion" in src:
            for lo, hi in ((3, 6), (6, 10), (10, 16)):
                groups.append((f"{src} motion {lo}-{hi} px", m & (a["motion_px"] >= lo) & (a["motion_px"] < hi)))
        else:
            for lo, hi in ((0, 0.25), (0.25, 1), (1, 2), (2, 3), (3, 5), (5, 8), (8, 13)):
                groups.append((f"{src} r {lo}-{hi} px", m & (a["radius_px"] >= lo) & (a["radius_px"] < hi)))
    for name, m in groups:
        idx = np.nonzero(m)[0]
        if not len(idx):
            continue
        idx = rng.choice(idx, min(per_row, len(idx)), replace=False)
        block = np.full((cell + 18, per_row * cell, 3), 40, np.uint8)
        cv2.putText(block, name, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        for k, i in enumerate(idx):
            big = cv2.resize(a["tiles"][i], (t * zoom, t * zoom), interpolation=cv2.INTER_NEAREST)
            block[20:20 + t * zoom, k * cell + 2:k * cell + 2 + t * zoom] = big[..., None]
        blocks.append(block)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(blocks, axis=0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "blur_tiles.npz")
    ap.add_argument("--sheet", type=Path, default=None, help="write a contact sheet PNG")
    ap.add_argument("--sources", default="mfifb,sweep,chart,leaves")
    ap.add_argument("--screen-model", default=None, metavar="MODEL.keras",
                    help="drop real scenes whose sharp patches this blur model (trained on --sources "
                         "chart,leaves only) does not find sharp (median radius > --screen-max-px)")
    ap.add_argument("--screen-max-px", type=float, default=BlurSetParams.screen_max_px)
    ap.add_argument("--source-max-q", type=float, default=BlurSetParams.source_max_q,
                    help="per-patch source screen: real sharp patches whose detail retention under a 1 px "
                         "disk exceeds this are already soft and keep motion labels only (1 = off)")
    ap.add_argument("--dead-leaves-images", type=int, default=BlurSetParams.dead_leaves_images)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--downsample", type=int, default=BlurSetParams.downsample)
    ap.add_argument("--sweep-short-side", type=int, default=BlurSetParams.sweep_short_side_px,
                    help="sweeps are reduced by max(--downsample, short side // this), up to 4x")
    ap.add_argument("--defocus-variants", type=int, default=BlurSetParams.defocus_variants)
    ap.add_argument("--motion-variants", type=int, default=BlurSetParams.motion_variants)
    ap.add_argument("--max-sharp-per-scene", type=int, default=BlurSetParams.max_sharp_per_scene)
    ap.add_argument("--chart-tiles", type=int, default=BlurSetParams.chart_tiles)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, format="%(message)s")
    try:
        p = BlurSetParams(seed=a.seed, downsample=a.downsample, defocus_variants=a.defocus_variants,
                          motion_variants=a.motion_variants, max_sharp_per_scene=a.max_sharp_per_scene,
                          chart_tiles=a.chart_tiles, screen_max_px=a.screen_max_px, source_max_q=a.source_max_q, sweep_short_side_px=a.sweep_short_side,
                          dead_leaves_images=a.dead_leaves_images)
        meta = build(a.data, a.out, p, a.sheet, tuple(a.sources.split(",")), a.screen_model)
    except ConfigError as e:
        print(f"blur_dataset: error: {e}", file=sys.stderr)
        return 2
    for k in sorted(meta["counts"]):
        print(f"{k:28s} {meta['counts'][k]:7d}")
    if meta["screened_out"]:
        print("screened out (not sharp enough as sources): " + ", ".join(meta["screened_out"]))
    print(f"{meta['n']} tiles from {meta['sharp_patches']} sharp patches -> {a.out} ({meta['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
