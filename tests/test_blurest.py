"""pifocus.focus.blurest: the model-free defocus / motion estimate, on synthetic arrays with
known blur (disk PSF = a defocused lens; straight streak = motion)."""

import math

import numpy as np
import pytest

from pifocus.exc import ConfigError
from pifocus.focus import blurest as be
from pifocus.sources.simulated import defocus

cv2 = pytest.importorskip("cv2")


def _u8(img, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(img * 255 + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)


def _streak(img, length, angle_deg):
    n = int(math.ceil(length)) + 3
    n += 1 - n % 2
    ss = 8
    big = np.zeros((n * ss, n * ss), np.float32)
    c = (n * ss - 1) / 2
    dx, dy = math.cos(math.radians(angle_deg)), -math.sin(math.radians(angle_deg))
    h = length * ss / 2
    cv2.line(big, (int(c - dx * h), int(c - dy * h)), (int(c + dx * h), int(c + dy * h)), 1.0, ss)
    k = cv2.resize(big, (n, n), interpolation=cv2.INTER_AREA)
    return cv2.filter2D(img, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def scene():
    return be.dead_leaves(512, seed=11)


@pytest.mark.parametrize("radius", [0.0, 1.5, 3.0, 5.0, 8.0])
def test_disk_blur_radius_is_recovered(scene, radius):
    img = defocus(scene, radius) if radius else scene
    est = be.estimate_blur(_u8(img))
    assert not est.motion
    # Calibrated in disk radius: within 0.6 px or 25 %, whichever is larger.
    assert abs(est.blur_px - radius) <= max(0.6, 0.25 * radius), est


def test_estimate_is_monotonic_in_blur(scene):
    vals = [be.estimate_blur(_u8(defocus(scene, r) if r else scene)).blur_px for r in (0, 1, 2, 3, 4, 6, 8, 12)]
    assert all(b > a for a, b in zip(vals[1:], vals[2:])), vals
    assert vals[0] <= vals[1]


def test_noise_does_not_make_a_sharp_image_soft_or_a_soft_one_sharp(scene):
    sharp = be.estimate_blur(_u8(scene, noise=6.0, seed=3))
    soft = be.estimate_blur(_u8(defocus(scene, 5.0), noise=6.0, seed=3))
    assert sharp.blur_px < 1.0
    assert soft.blur_px > 3.5


@pytest.mark.parametrize("angle", [0.0, 45.0, 90.0, 135.0])
def test_motion_streak_is_flagged_with_length_and_direction(scene, angle):
    est = be.estimate_blur(_u8(_streak(scene, 12.0, angle)))
    assert est.motion, est
    assert 8.0 <= est.motion_px <= 17.0, est
    diff = abs((est.motion_angle_deg - angle + 90) % 180 - 90)
    assert diff <= 23.0, est


def test_defocus_is_not_motion(scene):
    for r in (2.0, 4.0, 7.0):
        assert not be.estimate_blur(_u8(defocus(scene, r))).motion


def test_flat_region_has_no_estimate():
    flat = np.full((64, 64), 120, np.uint8)
    est = be.estimate_blur(flat)
    assert math.isnan(est.blur_px) and not est.motion and est.edges == 0
    assert est.to_dict()["blur_px"] is None


def test_single_step_edge_literal():
    # A vertical step edge, 40 -> 200 DN, sharp: a blur radius near 0.
    a = np.full((64, 64), 40, np.uint8)
    a[:, 32:] = 200
    est = be.estimate_blur(a, be.BlurEstParams(min_edges=10), noise_sigma_dn=0.5)
    assert est.edges >= 40 and est.blur_px < 0.8


def test_sigma_to_disk_table_and_bad_input():
    assert be.sigma_to_disk_px(0.5) == 0.0
    assert be.sigma_to_disk_px(be.LEVEL_SIGMA_PX[1][2]) == pytest.approx(2.0)
    assert be.sigma_to_disk_px(5.0, 8) > 32.0  # extrapolated beyond the table
    assert math.isnan(be.sigma_to_disk_px(math.nan))
    with pytest.raises(ValueError, match="reduction"):
        be.sigma_to_disk_px(1.0, 3)
    with pytest.raises(ValueError, match="2-D"):
        be.estimate_blur(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="noise_sigma_dn"):
        be.edge_sigmas(np.zeros((16, 16)), noise_sigma_dn=-1)
    with pytest.raises(ConfigError, match="reblur_sigma_px"):
        be.BlurEstParams(reblur_sigma_px=10)


def test_large_region_uses_its_most_detailed_windows(scene):
    big = np.tile(defocus(scene, 3.0), (4, 4))  # 2048 x 2048 = 4.2 MP > max_pixels
    p = be.BlurEstParams(max_pixels=500_000)
    wins = be._windows(big.astype(np.float32), p)
    assert len(wins) == 500_000 // (256 * 256)
    est = be.estimate_blur(_u8(big), p)
    assert abs(est.blur_px - 3.0) <= 0.9


def test_dead_leaves_is_deterministic_and_validated():
    a, b = be.dead_leaves(64, seed=2), be.dead_leaves(64, seed=2)
    assert a.dtype == np.float32 and a.shape == (64, 64) and np.array_equal(a, b)
    assert 0.09 <= a.min() and a.max() <= 0.91
    with pytest.raises(ValueError):
        be.dead_leaves(8)
