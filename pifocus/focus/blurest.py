"""Model-free defocus and motion-blur estimate of an image region: pure functions, no state.

Used where the focus model has no blur heads (a binary model such as v1): the cull still needs
a subject blur radius in pixels; and beside the heads for the motion streak (its length and
angle, and streaks on one-orientation content a motion head misses).

**Defocus** -- the re-blur gradient ratio of S. Zhuo and T. Sim, "Defocus map estimation
from a single image", Pattern Recognition 44 (2011): an edge blurred by a Gaussian of
``sigma`` and blurred again by ``sigma0`` keeps the ratio of gradient magnitudes
``R = |grad I| / |grad I_reblurred| = sqrt(sigma^2 + sigma0^2) / sigma`` at the edge, so
``sigma = sigma0 / sqrt(R^2 - 1)``.  It is evaluated at Canny edge pixels that stand clearly
above the noise, and the region's figure is a robust low quantile over them
(:data:`SIGMA_QUANTILE`: the sharper part of the region, so a subject box that also holds
blurred background reads the subject's blur).  The Gaussian
``sigma`` is converted to the radius of a disk (pillbox) PSF -- what a defocused lens
gives -- with the table :data:`LEVEL_SIGMA_PX`, calibrated on synthetic disk blur of a dead-leaves
scene (:func:`dead_leaves`; ``tests/test_blurest.py`` checks the calibration).

**Motion** -- motion blur widens only the edges whose normal lies along the motion, so the
same estimate is taken per gradient orientation (:data:`N_ORIENTATIONS` bins over 0..180 deg).
Defocus is isotropic (every orientation reads alike); a motion streak reads much wider in
one orientation than in the perpendicular one.  The motion length (px) is
``MOTION_PX_PER_SIGMA * sqrt(sigma_max^2 - sigma_min^2)`` (a box of length L has a sigma of
L / sqrt(12); calibrated like the defocus table), the defocus radius then comes from the
least-blurred orientation.

Units: pixels of the array given (the caller's analysis scale); DN for intensities.
"""

import math
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import numpy as np

from ..validate import require

#: Calibration: the :data:`SIGMA_QUANTILE` edge sigma (px of the level) that a disk PSF of radius ``DISK_RADII_PX``
#: (px of the full-resolution region) gives at each pyramid level (reduction 1, 2, 4, 8),
#: measured on dead-leaves scenes (:func:`dead_leaves`, two seeds, noise 1 DN); beyond the
#: last point the last segment is extrapolated.  ``tests/test_blurest.py`` checks it.
DISK_RADII_PX = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0)
LEVEL_SIGMA_PX = {
    1: (0.736, 0.919, 1.236, 1.604, 1.804),
    2: (0.624, 0.646, 0.686, 0.757, 0.862, 1.206, 1.532, 2.329),
    4: (0.482, 0.485, 0.49, 0.499, 0.515, 0.589, 0.721, 1.137, 1.521, 2.339, 2.895),
    8: (0.415, 0.416, 0.419, 0.422, 0.426, 0.444, 0.468, 0.56, 0.706, 1.093, 1.478),
}
#: The region's edge sigma is this quantile of its edge pixels' sigmas: the sharper part of
#: the region, so a subject box that also holds some blurred background (or foreground)
#: reads the subject's blur, not the mixture's; still robust to single stray edges.
SIGMA_QUANTILE = 0.3
#: Motion length (px) per Gaussian sigma (px) of the widening.  A box of length L has
#: sigma = L / sqrt(12) = L / 3.46; the re-blur ratio reads a box edge about 1.3x narrower than
#: a Gaussian one of that sigma, so the factor calibrated on dead-leaves scenes (streaks of
#: 6, 9, 15 px at 0, 30, 90 deg) is 4.5.
MOTION_PX_PER_SIGMA = 4.5
#: Edge pixels narrower than this fraction of an in-focus edge (the level's first calibration
#: point) are not step edges (spikes, JPEG block seams, ringing) and are dropped.
STEP_FLOOR = 0.6
#: Edges wider than this (:data:`SIGMA_QUANTILE` sigma, px of the level) are measured again on
#: a 2x reduced copy, where the ratio is precise again and the noise lower.
PYRAMID_SIGMA_PX = 1.3
#: Largest reduction of that pyramid, and the smallest side (px) a level may have.
MAX_REDUCTION = 8
MIN_LEVEL_PX = 48
#: Fewest cells that must show the widening before motion is reported.
MIN_MOTION_CELLS = 3
#: Gradient orientation bins for the motion test (over 0..180 degrees).
N_ORIENTATIONS = 8
#: Sobel 3x3 gain: its output is 8 x the derivative of a ramp.
_SOBEL_GAIN = 8.0
#: Standard deviation of one Sobel 3x3 response per unit of white noise: sqrt(1+4+1+1+4+1).
_SOBEL_NOISE_GAIN = math.sqrt(12.0)


@dataclass(frozen=True)
class BlurEstParams:
    """Validated parameters of :func:`estimate_blur`.

    Attributes:
        reblur_sigma_px: Gaussian sigma of the re-blur (px); 1..3 trades precision on small
            blur (small sigma) against range on large blur.
        edge_snr: an edge pixel counts when its gradient exceeds this many times the
            gradient that the noise alone gives.
        min_edge_dn: ... and at least this gradient (DN per px), whatever the noise.
        min_edges: fewest edge pixels needed for an estimate (else NaN).
        min_edges_orientation: fewest edge pixels an orientation bin needs to vote on motion.
        motion_ratio: motion when the most blurred orientation's sigma is at least this
            multiple of the least blurred one's ...
        motion_min_px: ... and the motion length is at least this (px) ...
        motion_cells: ... and at least this share of the region's cells (thirds, or its
            windows) shows the widening too (:func:`motion_consistency`) ...
        motion_spread: ... by about the same factor: the log width ratios of the cells
            spread by at most this (standard deviation).
        max_pixels: a larger region is estimated on its most detailed windows (px count cap).
        window_px: side of those windows (px).
    """

    reblur_sigma_px: float = 1.5
    edge_snr: float = 6.0
    min_edge_dn: float = 4.0
    min_edges: int = 30
    min_edges_orientation: int = 12
    motion_ratio: float = 1.9
    motion_min_px: float = 5.0
    motion_cells: float = 0.7
    motion_spread: float = 0.35
    max_pixels: int = 1_000_000
    window_px: int = 256

    def __post_init__(self):
        s = "blurest"
        require(0.5 <= self.reblur_sigma_px <= 4, s, "reblur_sigma_px", self.reblur_sigma_px, "0.5..4 px")
        require(1 <= self.edge_snr <= 100, s, "edge_snr", self.edge_snr, "1..100")
        require(0 <= self.min_edge_dn <= 255, s, "min_edge_dn", self.min_edge_dn, "0..255 DN/px")
        require(1 <= int(self.min_edges) <= 10**7, s, "min_edges", self.min_edges, "1..1e7")
        require(1 <= int(self.min_edges_orientation) <= 10**7, s, "min_edges_orientation",
                self.min_edges_orientation, "1..1e7")
        require(1 < self.motion_ratio <= 20, s, "motion_ratio", self.motion_ratio, "1 < x <= 20")
        require(0 <= self.motion_min_px <= 1000, s, "motion_min_px", self.motion_min_px, "0..1000 px")
        require(0 <= self.motion_cells <= 1, s, "motion_cells", self.motion_cells, "0..1")
        require(0 < self.motion_spread <= 10, s, "motion_spread", self.motion_spread, "0 < x <= 10")
        require(10_000 <= int(self.max_pixels) <= 10**9, s, "max_pixels", self.max_pixels, "1e4..1e9")
        require(32 <= int(self.window_px) <= 4096, s, "window_px", self.window_px, "32..4096 px")


@dataclass(frozen=True)
class BlurEstimate:
    """What :func:`estimate_blur` found.

    Attributes:
        blur_px: defocus blur as the radius of a disk PSF (px); NaN when too few edges.
        sigma_px: the Gaussian sigma of the edges (px), the :data:`SIGMA_QUANTILE` quantile
            (over the least-blurred orientations with motion); NaN when too few edges.
        median_sigma_px: the median sigma of all the region's edges (px): the whole
            region's sharpness, which ranks frames of one scene (a burst, a focus sweep)
            better than the quantile; NaN when too few edges.
        motion_px: motion-blur length (px), 0 when none is seen; NaN when too few edges.
        motion_angle_deg: direction of the motion (degrees, 0 = horizontal, counter-
            clockwise, 0..180); NaN without motion.
        motion: motion blur detected (``motion_ratio`` and ``motion_min_px`` both met).
        edges: edge pixels the estimate is based on.
        orientation_sigma_px: median sigma per orientation bin (NaN where too few edges).
    """

    blur_px: float
    sigma_px: float
    median_sigma_px: float
    motion_px: float
    motion_angle_deg: float
    motion: bool
    edges: int
    orientation_sigma_px: Tuple[float, ...]

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN becomes None, floats rounded to 3 decimals)."""
        def num(v):
            v = float(v)
            return None if not math.isfinite(v) else round(v, 3)
        d = asdict(self)
        return {k: ([num(x) for x in v] if isinstance(v, tuple) else
                    num(v) if isinstance(v, float) else v) for k, v in d.items()}


def _gray32(luma) -> np.ndarray:
    a = np.asarray(luma)
    if a.ndim != 2 or min(a.shape) < 8:
        raise ValueError(f"luma must be a 2-D array of at least 8x8 pixels, got shape {a.shape}")
    return a.astype(np.float32, copy=False)


def edge_sigmas(luma, params: BlurEstParams = BlurEstParams(),
                noise_sigma_dn: float = 1.0, min_sigma_px: float = 0.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-edge-pixel Gaussian blur sigma (px), gradient orientation (radians, 0..pi) and
    cell (0..8: which third of the rows and of the columns it lies in).

    Edge pixels are Canny edges (non-maximum suppressed) whose Sobel gradient exceeds
    ``edge_snr`` times the noise's and ``min_edge_dn``; sigma is from the re-blur ratio
    (module docstring).  Pixels whose ratio is not above 1 (no measurable difference) are
    given a very large sigma (they are as blurred as can be told); pixels narrower than
    ``min_sigma_px`` are dropped: no step edge is narrower than an in-focus one, so they are
    spikes, hot pixels, JPEG block seams or ringing, not edges.

    Raises:
        ValueError: ``luma`` is not a 2-D array of at least 8x8 pixels, or the noise is negative.
    """
    import cv2

    f = _gray32(luma)
    if not (noise_sigma_dn >= 0 and math.isfinite(noise_sigma_dn)):
        raise ValueError(f"noise_sigma_dn = {noise_sigma_dn!r} must be a finite number >= 0")
    gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.magnitude(gx, gy)
    high = max(params.min_edge_dn * _SOBEL_GAIN, params.edge_snr * _SOBEL_NOISE_GAIN * noise_sigma_dn)
    edges = cv2.Canny(np.clip(gx, -32767, 32767).astype(np.int16),
                      np.clip(gy, -32767, 32767).astype(np.int16), high * 0.5, high, L2gradient=True)
    m = (edges > 0) & (mag >= high)
    # Stay off the border, where the re-blur sees the reflected padding.
    b = int(math.ceil(3 * params.reblur_sigma_px)) + 2
    m[:b, :] = m[-b:, :] = False
    m[:, :b] = m[:, -b:] = False
    if not m.any():
        return np.empty(0, np.float32), np.empty(0, np.float32), np.empty(0, np.int64)
    r = cv2.GaussianBlur(f, (0, 0), params.reblur_sigma_px)
    rx = cv2.Sobel(r, cv2.CV_32F, 1, 0, ksize=3)
    ry = cv2.Sobel(r, cv2.CV_32F, 0, 1, ksize=3)
    rmag = cv2.magnitude(rx[m], ry[m]).ravel()
    ratio = mag[m] / np.maximum(rmag, 1e-6)
    denom = np.maximum(ratio * ratio - 1.0, 1e-4)
    sigma = (params.reblur_sigma_px / np.sqrt(denom)).astype(np.float32)
    theta = np.mod(np.arctan2(gy[m], gx[m]), np.pi).astype(np.float32)
    ys, xs = np.nonzero(m)
    cell = (ys * 3 // m.shape[0]) * 3 + xs * 3 // m.shape[1]
    step = sigma >= min_sigma_px
    return sigma[step], theta[step], cell[step].astype(np.int64)


def _windows(f: np.ndarray, params: BlurEstParams):
    """The region itself, or (when above ``max_pixels``) its most detailed windows."""
    h, w = f.shape
    if h * w <= params.max_pixels:
        return [f]
    s = int(params.window_px)
    ny, nx = h // s, w // s
    if ny == 0 or nx == 0:
        return [f]
    # Detail per window from a cheap gradient on the window grid (no loop over pixels).
    crop = f[:ny * s, :nx * s]
    dx = np.abs(np.diff(crop[::4, ::4], axis=1))
    energy = dx[:, :nx * (s // 4) - 1].reshape(ny, s // 4, -1)
    energy = np.add.reduceat(energy.sum(axis=1), np.arange(0, energy.shape[2], s // 4), axis=1)[:, :nx]
    keep = max(1, int(params.max_pixels // (s * s)))
    order = np.argsort(energy.ravel())[::-1][:keep]
    return [f[(i // nx) * s:(i // nx + 1) * s, (i % nx) * s:(i % nx + 1) * s] for i in sorted(order)]


def sigma_to_disk_px(sigma_px: float, reduction: int = 1) -> float:
    """The disk-PSF radius (px of the full-resolution region) of an edge sigma (the
    :data:`SIGMA_QUANTILE` quantile) measured at pyramid level ``reduction`` (1, 2, 4 or 8),
    from the calibration :data:`LEVEL_SIGMA_PX`.
    0 for an edge no wider than an in-focus one; NaN passes through.

    Raises:
        ValueError: ``reduction`` is not 1, 2, 4 or 8.
    """
    if reduction not in LEVEL_SIGMA_PX:
        raise ValueError(f"reduction = {reduction!r} must be one of {sorted(LEVEL_SIGMA_PX)}")
    s = float(sigma_px)
    if not math.isfinite(s):
        return s
    xs = np.asarray(LEVEL_SIGMA_PX[reduction])
    ys = np.asarray(DISK_RADII_PX[:len(xs)])
    if s <= xs[-1]:
        return float(np.interp(s, xs, ys))
    slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return float(ys[-1] + slope * (s - xs[-1]))


def _reduce2(f: np.ndarray) -> np.ndarray:
    """``f`` reduced 2x by area averaging."""
    import cv2
    h, w = f.shape
    return cv2.resize(f, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def _orientation_medians(sigma: np.ndarray, theta: np.ndarray, params: BlurEstParams):
    """``(bin index per edge, median sigma per orientation bin)`` (NaN: too few edges)."""
    n_bins = N_ORIENTATIONS
    k = np.floor(theta / (np.pi / n_bins) + 0.5).astype(np.int64) % n_bins
    counts = np.bincount(k, minlength=n_bins)
    med = np.full(n_bins, np.nan)
    for i in np.flatnonzero(counts >= params.min_edges_orientation):  # at most n_bins
        med[i] = float(np.median(sigma[k == i]))
    return k, med


def _level(f: np.ndarray, params: BlurEstParams, noise_sigma_dn: float, factor: int = 1):
    """``(sigma, theta, bins, medians)`` of one pyramid level; ``None`` when too few edges."""
    wins = _windows(f, params)
    floor = STEP_FLOOR * LEVEL_SIGMA_PX[factor][0]
    parts = [edge_sigmas(win, params, noise_sigma_dn, floor) for win in wins]
    sigma = np.concatenate([p[0] for p in parts])
    theta = np.concatenate([p[1] for p in parts])
    # Cells for the consistency test: thirds of the region, or the windows themselves.
    cell = (parts[0][2] if len(parts) == 1 else
            np.concatenate([np.full(p[0].size, i, np.int64) for i, p in enumerate(parts)]))
    if sigma.size < params.min_edges:
        return None
    k, med = _orientation_medians(sigma, theta, params)
    return sigma, cell, k, med


def motion_consistency(sigma: np.ndarray, cell: np.ndarray, k: np.ndarray, lo_i: int, hi_i: int,
                       ratio: float, min_edges: int) -> Tuple[float, float]:
    """``(share, spread)`` over the cells with ``min_edges`` edges in both bins: the share
    whose edges in bin ``hi_i`` are at least ``ratio`` x wider than in bin ``lo_i``, and the
    standard deviation of the log of that width ratio across them.  Camera shake and subject
    motion widen the same orientation by the same factor everywhere (share 1, spread near
    0); a scene whose orientations go with depth (a defocused plank under sharp trees, a
    fence before the subject) widens some cells and not others.  ``(NaN, NaN)`` when fewer
    than :data:`MIN_MOTION_CELLS` cells can tell (then no motion is reported)."""
    logs = []
    for c in np.unique(cell):  # at most 9 cells (or the windows)
        a, b = sigma[(cell == c) & (k == hi_i)], sigma[(cell == c) & (k == lo_i)]
        if a.size >= min_edges and b.size >= min_edges:
            logs.append(math.log(max(float(np.median(a)), 1e-6) / max(float(np.median(b)), 1e-6)))
    if len(logs) < MIN_MOTION_CELLS:
        return math.nan, math.nan
    logs = np.asarray(logs)
    return float(np.mean(logs >= math.log(ratio))), float(np.std(logs))


def _motion_length(f: np.ndarray, params: BlurEstParams, noise_sigma_dn: float, factor: int,
                   hi: float, lo: float) -> Tuple[float, float]:
    """``(streak length px of the region, largest hi/lo ratio seen)``: the widening of the
    most blurred orientation, measured on coarser levels while it is wider than
    :data:`PYRAMID_SIGMA_PX` (the ratio saturates there, as it does for defocus)."""
    widen = MOTION_PX_PER_SIGMA * math.sqrt(max(hi * hi - lo * lo, 0.0)) * factor
    ratio = hi / max(lo, 1e-6)
    while hi > PYRAMID_SIGMA_PX and factor < MAX_REDUCTION and min(f.shape) >= 2 * MIN_LEVEL_PX:
        f, noise_sigma_dn = _reduce2(f), noise_sigma_dn / 2.0
        lv = _level(f, params, noise_sigma_dn, factor * 2)
        if lv is None or np.isfinite(lv[3]).sum() < 2:
            break
        factor *= 2
        hi, lo = float(np.nanmax(lv[3])), float(np.nanmin(lv[3]))
        widen = MOTION_PX_PER_SIGMA * math.sqrt(max(hi * hi - lo * lo, 0.0)) * factor
        ratio = max(ratio, hi / max(lo, 1e-6))
    return widen, ratio


def estimate_blur(luma, params: BlurEstParams = BlurEstParams(),
                  noise_sigma_dn: Optional[float] = None) -> BlurEstimate:
    """Defocus radius and motion blur of a region (see the module docstring).

    A region whose edges are wider than :data:`PYRAMID_SIGMA_PX` is measured again reduced
    2x (up to :data:`MAX_REDUCTION`), where the re-blur ratio is precise again and the noise
    lower; the result is scaled back to the pixels given.

    Args:
        luma: 2-D luma (any numeric type, DN), at least 8x8; the subject region.
        params: :class:`BlurEstParams`.
        noise_sigma_dn: the image's noise sigma (DN); ``None`` measures it with
            :func:`pifocus.focus.exposure.noise_sigma_dn`.

    Raises:
        ValueError: ``luma`` is not a 2-D array of at least 8x8 pixels.
    """
    f = _gray32(luma)
    if noise_sigma_dn is None:
        from .exposure import noise_sigma_dn as measure
        noise_sigma_dn = measure(f)
    nan = math.nan
    factor, lv, edges = 1, _level(f, params, noise_sigma_dn), 0
    while lv is not None and float(np.quantile(lv[0], SIGMA_QUANTILE)) > PYRAMID_SIGMA_PX \
            and factor < MAX_REDUCTION \
            and min(f.shape) >= 2 * MIN_LEVEL_PX:
        f, noise_sigma_dn = _reduce2(f), noise_sigma_dn / 2.0
        nxt = _level(f, params, noise_sigma_dn, factor * 2)
        if nxt is None:
            break
        factor, lv = factor * 2, nxt
    if lv is None:
        return BlurEstimate(nan, nan, nan, nan, nan, False, edges, (nan,) * N_ORIENTATIONS)
    sigma, cell, k, med = lv
    ok = np.isfinite(med)
    motion_px, angle, motion = 0.0, nan, False
    sigma_def = float(np.quantile(sigma, SIGMA_QUANTILE))
    if ok.sum() >= 2:
        lo_i, hi_i = int(np.nanargmin(med)), int(np.nanargmax(med))
        lo, hi = med[lo_i], med[hi_i]
        # Widening beyond the least-blurred orientation, in quadrature (defocus adds to both);
        # a saturated (very wide) orientation is measured again on coarser levels.
        if hi >= math.sqrt(params.motion_ratio) * lo:
            widen, ratio = _motion_length(f, params, noise_sigma_dn, factor, hi, lo)
            if ratio >= params.motion_ratio:
                motion_px = widen
                share, spread = motion_consistency(sigma, cell, k, lo_i, hi_i, math.sqrt(params.motion_ratio),
                                                   params.min_edges_orientation)
                # Unconfirmed (too few cells with edges in both orientations) is not motion.
                motion = bool(motion_px >= params.motion_min_px and share >= params.motion_cells
                              and spread <= params.motion_spread)
        if motion:
            # The gradient of the most widened edges points along the motion (image rows run
            # down: turn it into the counter-clockwise angle a viewer sees).
            angle = (180.0 - hi_i * 180.0 / N_ORIENTATIONS) % 180.0
            # Defocus from the orientations the motion left alone.
            sigma_def = float(np.quantile(sigma[np.isin(k, np.flatnonzero(ok & (med <= 1.25 * lo)))],
                                          SIGMA_QUANTILE))
    return BlurEstimate(blur_px=sigma_to_disk_px(sigma_def, factor), sigma_px=factor * sigma_def,
                        median_sigma_px=factor * float(np.median(sigma)),
                        motion_px=float(motion_px), motion_angle_deg=float(angle), motion=motion,
                        edges=int(sigma.size), orientation_sigma_px=tuple(float(v) * factor for v in med))


def dead_leaves(size_px: int, seed: int = 0, n_discs: int = 4000,
                radius_range_px: Tuple[float, float] = (3.0, 60.0)) -> np.ndarray:
    """A dead-leaves scene (occluding discs of random grey, power-law radii): the standard
    synthetic stand-in for natural-image edge statistics.  float32 in 0.1..0.9, square.

    Raises:
        ValueError: ``size_px`` below 16 or a bad radius range.
    """
    import cv2

    if int(size_px) < 16:
        raise ValueError(f"size_px = {size_px!r} must be at least 16")
    rmin, rmax = (float(v) for v in radius_range_px)
    if not 0 < rmin < rmax:
        raise ValueError(f"radius_range_px = {radius_range_px!r} must be 0 < min < max")
    rng = np.random.default_rng(seed)
    n = int(size_px)
    ss = 4  # drawn 4x supersampled, then area-reduced: anti-aliased, in-focus edges
    img = np.full((n * ss, n * ss), 0.5, np.float32)
    # Radii ~ r^-3 (scale invariance), drawn by inverse CDF.
    u = rng.random(n_discs)
    radii = (rmin ** -2 - u * (rmin ** -2 - rmax ** -2)) ** -0.5
    centres = rng.random((n_discs, 2)) * n
    greys = rng.uniform(0.1, 0.9, n_discs)
    for (cx, cy), r, g in zip(centres, radii, greys):  # drawing only
        cv2.circle(img, (int(cx * ss), int(cy * ss)), max(1, int(r * ss)), float(g), -1, cv2.LINE_8)
    return cv2.resize(img, (n, n), interpolation=cv2.INTER_AREA)
