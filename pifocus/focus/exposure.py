"""Exposure and noise readouts of one frame: pure functions on 8-bit luma, no state.

What a photographer reads off a camera's exposure aids, made from the pixels (and, on the
Pi, the frame's metadata): the mean level and its EV offset from mid-grey, clipped
highlight and shadow percentages, the measured noise sigma and SNR, a histogram, and the
ISO equivalent of the sensor's analogue gain.

* :func:`noise_sigma_dn` -- the frame's noise sigma (DN), Immerkær's estimator on the
  pixels that are not edges.
* :func:`exposure_stats` -- :class:`ExposureStats` of the frame and of an ROI.
* :func:`histogram` -- normalized luma histogram.
* :func:`iso_equivalent` -- ISO from analogue gain.
* :func:`frame_exposure` -- all of it for one :class:`~pifocus.frames.Frame` at a bounded cost
  (:class:`ExposureParams`: decimation, bins, thresholds), as a :class:`FrameExposure`.

Units: pixel values are 8-bit digital numbers (DN); EV are stops (log2).
"""

import math
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import numpy as np

from ..validate import require
from .measures import IMMERKAER_SCALE

#: Mid-grey: 18 % reflectance through the sRGB curve is about 118 DN of 255.
MID_GREY_DN = 118.0
#: A pixel at or above this is counted as a clipped highlight (DN).
CLIP_HIGH_DN = 250
#: A pixel at or below this is counted as a crushed shadow (DN).
CLIP_LOW_DN = 5
#: ISO of analogue gain 1.0 on the Pi's sensors (libcamera/rpicam-apps convention: ISO = 100 x gain).
BASE_ISO = 100.0
#: Fraction of the strongest-gradient pixels left out of the noise estimate (they are edges, not noise).
EDGE_FRACTION = 0.2


@dataclass(frozen=True)
class ExposureStats:
    """Exposure readouts of a frame (``*_roi`` the same for the subject region).

    Attributes:
        mean_dn, mean_dn_roi: mean level (DN).
        ev_offset, ev_offset_roi: ``log2(mean / MID_GREY_DN)`` in stops; negative is darker
            than mid-grey (``-inf`` never: a black frame reads -8 at most).
        clip_high_pct, clip_high_pct_roi: % of pixels at or above ``CLIP_HIGH_DN``.
        clip_low_pct, clip_low_pct_roi: % of pixels at or below ``CLIP_LOW_DN``.
        noise_sigma_dn: measured noise sigma (DN), :func:`noise_sigma_dn`.
        snr_db: ``20 log10(mean / sigma)`` of the ROI (dB); ``None`` when sigma is 0.
    """

    mean_dn: float
    ev_offset: float
    clip_high_pct: float
    clip_low_pct: float
    mean_dn_roi: float
    ev_offset_roi: float
    clip_high_pct_roi: float
    clip_low_pct_roi: float
    noise_sigma_dn: float
    snr_db: Optional[float]

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict (floats rounded to 3 decimals)."""
        return {k: (None if v is None else round(float(v), 3)) for k, v in asdict(self).items()}


def _gray(luma) -> np.ndarray:
    a = np.asarray(luma)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"luma must be a non-empty 2-D array, got shape {a.shape}")
    return a


def noise_sigma_dn(luma, edge_fraction: float = EDGE_FRACTION, max_side_px: int = 1024) -> float:
    """Noise sigma of a frame in DN (Immerkær 1996), robust to scene detail.

    Immerkær's mask responds to noise but hardly to smooth structure; the pixels where the
    gradient is strongest (``edge_fraction`` of them) are left out because edges leak into
    it.  Frames larger than ``max_side_px`` are estimated on a centred crop of that size
    (noise is stationary; the cost stays bounded).

    Raises:
        ValueError: ``luma`` is not a non-empty 2-D array, or ``edge_fraction`` not in [0, 1).
    """
    a = _gray(luma)
    if not 0.0 <= edge_fraction < 1.0:
        raise ValueError(f"edge_fraction = {edge_fraction!r} must be in [0, 1)")
    h, w = a.shape
    if h < 3 or w < 3:
        return 0.0
    y0 = max(0, (h - max_side_px) // 2)
    x0 = max(0, (w - max_side_px) // 2)
    f = a[y0:y0 + max_side_px, x0:x0 + max_side_px].astype(np.float32)
    c = f[1:-1, 1:-1]
    # The 3x3 mask [[1,-2,1],[-2,4,-2],[1,-2,1]] written as shifted sums (no OpenCV needed here).
    resp = (f[:-2, :-2] + f[:-2, 2:] + f[2:, :-2] + f[2:, 2:]
            - 2 * (f[:-2, 1:-1] + f[2:, 1:-1] + f[1:-1, :-2] + f[1:-1, 2:]) + 4 * c)
    gx = f[1:-1, 2:] - f[1:-1, :-2]
    gy = f[2:, 1:-1] - f[:-2, 1:-1]
    grad = np.abs(gx) + np.abs(gy)
    r = np.abs(resp).ravel()
    if edge_fraction > 0:
        keep = grad.ravel() <= np.quantile(grad, 1.0 - edge_fraction)
        r = r[keep] if keep.any() else r
    return float(IMMERKAER_SCALE * r.mean())


def _ev(mean_dn: float) -> float:
    return math.log2(max(mean_dn, MID_GREY_DN / 256.0) / MID_GREY_DN)


def _levels(a: np.ndarray, clip_high_dn: int, clip_low_dn: int) -> Tuple[float, float, float]:
    n = a.size
    return (float(a.mean()), 100.0 * float(np.count_nonzero(a >= clip_high_dn)) / n,
            100.0 * float(np.count_nonzero(a <= clip_low_dn)) / n)


def exposure_stats(luma, roi_px: Optional[Tuple[int, int, int, int]] = None,
                   clip_high_dn: int = CLIP_HIGH_DN, clip_low_dn: int = CLIP_LOW_DN,
                   noise_sigma: Optional[float] = None) -> ExposureStats:
    """Exposure readouts of a frame and of its subject region.

    Args:
        luma: 2-D 8-bit luma (DN).
        roi_px: ``(x, y, w, h)`` in pixels (see :func:`pifocus.focus.measures.roi_pixels`);
            ``None`` is the whole frame.
        clip_high_dn, clip_low_dn: thresholds of clipped highlights and crushed shadows (DN).
        noise_sigma: a noise sigma already measured (DN), e.g. from the analyzer's noise
            model; ``None`` measures it with :func:`noise_sigma_dn` on the frame.

    Raises:
        ValueError: bad ``luma``, an empty ``roi_px``, or thresholds outside 0..255 / inverted.
    """
    a = _gray(luma)
    if not 0 <= clip_low_dn < clip_high_dn <= 255:
        raise ValueError(f"clip_low_dn = {clip_low_dn!r}, clip_high_dn = {clip_high_dn!r}: need "
                         "0 <= clip_low_dn < clip_high_dn <= 255")
    if roi_px is None:
        r = a
    else:
        x, y, w, h = (int(v) for v in roi_px)
        r = a[max(y, 0):y + h, max(x, 0):x + w]
        if r.size == 0:
            raise ValueError(f"roi_px = {roi_px!r} selects no pixels of a {a.shape[1]}x{a.shape[0]} frame")
    mean, hi, lo = _levels(a, clip_high_dn, clip_low_dn)
    mean_r, hi_r, lo_r = (mean, hi, lo) if r is a else _levels(r, clip_high_dn, clip_low_dn)
    sigma = noise_sigma_dn(a) if noise_sigma is None else float(noise_sigma)
    snr = 20.0 * math.log10(max(mean_r, 1e-6) / sigma) if sigma > 0 else None
    return ExposureStats(mean_dn=mean, ev_offset=_ev(mean), clip_high_pct=hi, clip_low_pct=lo,
                         mean_dn_roi=mean_r, ev_offset_roi=_ev(mean_r), clip_high_pct_roi=hi_r,
                         clip_low_pct_roi=lo_r, noise_sigma_dn=sigma, snr_db=snr)


def histogram(luma, bins: int = 64) -> np.ndarray:
    """Luma histogram over 0..255 in ``bins`` bins, normalized to sum 1 (float32).

    Raises:
        ValueError: bad ``luma`` or ``bins`` not in 1..256.
    """
    a = _gray(luma)
    if not 1 <= int(bins) <= 256:
        raise ValueError(f"bins = {bins!r} must be in 1..256")
    counts = np.bincount(np.clip(a, 0, 255).astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    h = counts.reshape(int(bins), -1).sum(axis=1) if 256 % int(bins) == 0 else \
        np.histogram(np.arange(256), bins=int(bins), range=(0, 256), weights=counts)[0]
    return (h / max(h.sum(), 1.0)).astype(np.float32)


def iso_equivalent(analogue_gain: Optional[float], base_iso: float = BASE_ISO) -> Optional[int]:
    """ISO equivalent of an analogue gain (``base_iso x gain``, rounded); ``None`` passes through.

    Raises:
        ValueError: a gain that is not a positive number.
    """
    if analogue_gain is None:
        return None
    g = float(analogue_gain)
    if not math.isfinite(g) or g <= 0:
        raise ValueError(f"analogue_gain = {analogue_gain!r} must be a positive number")
    return int(round(base_iso * g))


@dataclass(frozen=True)
class ExposureParams:
    """Validated parameters of the per-frame exposure readouts.

    Attributes:
        decimate_px: the levels, clipping and histogram are measured on every
            ``decimate_px``-th pixel of every ``decimate_px``-th row (a strided view, no copy):
            the cost stays a small fraction of the analysis (4: 1/16 of the pixels).
        max_samples: larger frames are sampled more sparsely, so that at most about this many
            pixels are read (the cost is bounded whatever the sensor mode).
        histogram_bins: bins of the histogram kept in the report (64 for the page, up to 256).
        clip_high_dn, clip_low_dn: clipped-highlight and crushed-shadow thresholds (DN).
    """

    decimate_px: int = 4
    max_samples: int = 1 << 15
    histogram_bins: int = 64
    clip_high_dn: int = CLIP_HIGH_DN
    clip_low_dn: int = CLIP_LOW_DN

    def __post_init__(self):
        s = "exposure"
        require(1 <= int(self.decimate_px) <= 16, s, "decimate_px", self.decimate_px, "1..16 px")
        require(1024 <= int(self.max_samples) <= 1 << 24, s, "max_samples", self.max_samples, "1024..16777216")
        require(1 <= int(self.histogram_bins) <= 256 and 256 % int(self.histogram_bins) == 0, s,
                "histogram_bins", self.histogram_bins, "a divisor of 256: 16, 32, 64, 128 or 256")
        require(0 <= int(self.clip_low_dn) < int(self.clip_high_dn) <= 255, s, "clip_high_dn",
                self.clip_high_dn, f"above clip_low_dn ({self.clip_low_dn}) and at most 255 DN")


@dataclass(frozen=True)
class FrameExposure:
    """Exposure readouts of one frame: pixel statistics plus what the camera said.

    Attributes:
        stats: :class:`ExposureStats` of the frame and of the ROI.
        histogram: normalized luma histogram of the frame (``ExposureParams.histogram_bins``).
        exposure_us: exposure time from the frame metadata (microseconds), None if unknown.
        analogue_gain: analogue gain from the frame metadata (1.0 = base ISO), None if unknown.
        iso: ISO equivalent of ``analogue_gain`` (:func:`iso_equivalent`), None if unknown.
    """

    stats: ExposureStats
    histogram: np.ndarray
    exposure_us: Optional[int] = None
    analogue_gain: Optional[float] = None
    iso: Optional[int] = None

    def to_dict(self, histogram: bool = True) -> dict:
        """JSON-ready: the :class:`ExposureStats` fields, ``exposure_us``, ``analogue_gain``,
        ``iso`` and (with ``histogram``) ``histogram`` as a list of fractions."""
        d = self.stats.to_dict()
        d.update(exposure_us=self.exposure_us,
                 analogue_gain=None if self.analogue_gain is None else round(float(self.analogue_gain), 3),
                 iso=self.iso)
        if histogram:
            d["histogram"] = [round(float(v), 5) for v in self.histogram]
        return d


def frame_exposure(frame, roi: Tuple[float, float, float, float], noise_sigma: Optional[float] = None,
                   params: ExposureParams = ExposureParams()) -> FrameExposure:
    """The exposure readouts of a :class:`~pifocus.frames.Frame` at a bounded cost.

    Args:
        frame: the frame (its ``luma``, ``exposure_us``, ``analogue_gain``).
        roi: the subject region, normalized ``(x, y, w, h)``.
        noise_sigma: a noise sigma already measured (DN), e.g. the analyzer's; ``None``
            measures it (:func:`noise_sigma_dn`, on at most a 1024 px crop).
        params: :class:`ExposureParams` (decimation, histogram bins, clip thresholds).

    Raises:
        ValueError: bad luma or ROI; a non-positive analogue gain in the metadata.
    """
    luma = _gray(frame.luma)
    d = max(int(params.decimate_px), math.ceil(math.sqrt(luma.size / int(params.max_samples))))
    small = np.ascontiguousarray(luma[::d, ::d])  # one small copy: faster to scan than a strided view
    h, w = small.shape
    x, y, rw, rh = (float(v) for v in roi)
    roi_px = (int(x * w), int(y * h), max(1, int(round(rw * w))), max(1, int(round(rh * h))))
    if noise_sigma is None or not math.isfinite(float(noise_sigma)):
        noise_sigma = noise_sigma_dn(luma)
    st = exposure_stats(small, roi_px, params.clip_high_dn, params.clip_low_dn, noise_sigma=noise_sigma)
    gain = getattr(frame, "analogue_gain", None)
    return FrameExposure(stats=st, histogram=histogram(small, params.histogram_bins),
                         exposure_us=getattr(frame, "exposure_us", None), analogue_gain=gain,
                         iso=iso_equivalent(gain))
