"""Exposure readouts (pifocus.focus.exposure) on literal and synthetic arrays."""

import math

import numpy as np
import pytest

from pifocus.focus.exposure import (MID_GREY_DN, exposure_stats, histogram, iso_equivalent,
                                    noise_sigma_dn)


@pytest.mark.parametrize("sigma", [0.0, 1.0, 3.0, 8.0])
def test_noise_sigma_of_flat_noise(sigma):
    rng = np.random.default_rng(1)
    img = np.clip(100 + rng.normal(0, sigma, (400, 400)), 0, 255)
    est = noise_sigma_dn(img)
    assert est == pytest.approx(sigma, abs=0.15 + 0.12 * sigma)


def test_noise_sigma_ignores_edges():
    """A frame of strong bars with sigma 2 noise reads about 2, not the bars' contrast."""
    rng = np.random.default_rng(2)
    x = np.arange(512)
    bars = np.where((x // 16) % 2 == 0, 60.0, 190.0)[None, :].repeat(512, 0)
    est = noise_sigma_dn(bars + rng.normal(0, 2.0, bars.shape))
    assert 1.6 < est < 2.6


def test_exposure_stats_literal():
    img = np.full((10, 10), 118, np.uint8)
    img[:, :2] = 255   # 20 % clipped highlights
    img[:1, 2:] = 0    # 8 % crushed shadows
    s = exposure_stats(img, roi_px=(4, 4, 4, 4), noise_sigma=1.0)
    assert s.clip_high_pct == pytest.approx(20.0)
    assert s.clip_low_pct == pytest.approx(8.0)
    assert s.mean_dn_roi == 118 and s.ev_offset_roi == pytest.approx(0.0)
    assert s.clip_high_pct_roi == 0.0 and s.clip_low_pct_roi == 0.0
    assert s.snr_db == pytest.approx(20 * math.log10(118))
    d = s.to_dict()
    assert set(d) >= {"mean_dn", "ev_offset", "noise_sigma_dn", "snr_db", "clip_high_pct_roi"}


def test_ev_offset_one_stop_and_black():
    assert exposure_stats(np.full((8, 8), 59, np.uint8), noise_sigma=0).ev_offset == pytest.approx(-1.0, abs=0.01)
    s = exposure_stats(np.zeros((8, 8), np.uint8), noise_sigma=0)
    assert s.ev_offset == -8.0 and s.snr_db is None and s.clip_low_pct == 100.0


def test_exposure_stats_errors():
    with pytest.raises(ValueError, match="roi_px"):
        exposure_stats(np.zeros((8, 8), np.uint8), roi_px=(20, 20, 4, 4))
    with pytest.raises(ValueError, match="clip_low_dn"):
        exposure_stats(np.zeros((8, 8), np.uint8), clip_low_dn=200, clip_high_dn=100)
    with pytest.raises(ValueError, match="2-D"):
        exposure_stats(np.zeros((8, 8, 3), np.uint8))


def test_histogram_sums_to_one_and_bins():
    img = np.array([[0, 255], [128, 128]], np.uint8)
    h = histogram(img, bins=4)
    assert h.tolist() == [0.25, 0.0, 0.5, 0.25]
    assert histogram(img, bins=10).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="bins"):
        histogram(img, bins=0)


def test_iso_equivalent():
    assert iso_equivalent(1.0) == 100 and iso_equivalent(8.0) == 800 and iso_equivalent(None) is None
    with pytest.raises(ValueError, match="analogue_gain"):
        iso_equivalent(-1)
    assert MID_GREY_DN == 118.0
