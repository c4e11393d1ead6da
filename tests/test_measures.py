"""The numeric core on literal and synthetic arrays."""

import numpy as np
import pytest

from pifocus.focus import measures as m
from pifocus.sources.simulated import defocus, disk_kernel, focus_chart, sensor


def grid_for(img, rows=4, cols=4, roi=(0, 0, 1, 1)):
    return m.grid_geometry(m.roi_pixels(roi, img.shape[1], img.shape[0]), rows, cols, 8)


def test_roi_pixels_clamps_to_frame():
    assert m.roi_pixels((0.25, 0.5, 0.5, 0.25), 200, 100) == (50, 50, 100, 25)
    assert m.roi_pixels((0.9, 0.9, 0.5, 0.5), 100, 100) == (90, 90, 10, 10)


def test_grid_geometry_multiples_of_block_and_centred():
    g = m.grid_geometry((10, 20, 100, 70), rows=2, cols=3, block=8)
    assert (g.rows, g.cols) == (2, 3)
    assert g.cell_w % 8 == 0 and g.cell_h % 8 == 0
    assert g.cell_w == 32 and g.cell_h == 32
    assert g.x == 10 + (100 - 96) // 2 and g.y == 20 + (70 - 64) // 2
    # A region too small for the requested grid shrinks the grid rather than failing.
    g = m.grid_geometry((0, 0, 20, 20), rows=6, cols=8, block=8)
    assert g.rows == 2 and g.cols == 2


def test_laplacian_variance_of_literal_checkerboard():
    # A 1-pixel checkerboard of 0/100: the 4-neighbour Laplacian is +-400 everywhere.
    img = (np.indices((80, 80)).sum(axis=0) % 2 * 100).astype(np.uint8)
    # Grid inside the frame, so every tile pixel has real neighbours.
    st = m.tile_stats(img, m.grid_geometry((8, 8, 64, 64), 2, 2, 8))
    np.testing.assert_allclose(st.lap_var, 400.0 ** 2, rtol=1e-5)
    np.testing.assert_allclose(st.mean, 50.0, atol=0.5)


def test_flat_image_has_zero_laplacian_variance():
    img = np.full((64, 64), 77, np.uint8)
    st = m.tile_stats(img, grid_for(img))
    assert np.all(st.lap_var == 0)
    assert np.all(st.noise_var == 0)


def test_sharper_image_scores_higher():
    chart = focus_chart(256, 192, seed=1)
    rng = np.random.default_rng(0)
    scores = []
    for r in (0.0, 1.0, 2.0, 4.0, 8.0):
        img = sensor(defocus(chart, r), rng)
        g = grid_for(img)
        st = m.tile_stats(img, g)
        k = m.noise_model(st.noise_var, st.mean)
        scores.append(m.sharpness(st.lap_var, m.noise_floor(k, st.mean), np.ones_like(st.lap_var)))
    assert all(a > b for a, b in zip(scores, scores[1:])), scores


@pytest.mark.parametrize("gain", [1.0, 4.0, 16.0, 32.0])
@pytest.mark.parametrize("level", [0.1, 0.5, 0.9])
def test_flat_plus_noise_is_uninformative_at_any_iso(gain, level):
    rng = np.random.default_rng(int(gain * 10 + level * 100))
    scene = np.full((240, 320), level, np.float32)
    img = sensor(scene, rng, analogue_gain=gain)
    g = grid_for(img, 6, 8)
    st = m.tile_stats(img, g)
    k = m.noise_model(st.noise_var, st.mean)
    gate = m.texture_gate(st.lap_var, m.noise_floor(k, st.mean))
    assert not gate.any()


def test_noise_model_follows_signal_dependent_noise():
    # A smooth ramp from dark to bright: shot noise grows across it, yet there is no texture
    # (the Laplacian of a linear ramp is zero).
    rng = np.random.default_rng(5)
    scene = np.tile(np.linspace(0.1, 0.9, 256, dtype=np.float32), (256, 1))
    img = sensor(scene, rng, analogue_gain=8.0)
    g = grid_for(img, 4, 4)
    st = m.tile_stats(img, g)
    k = m.noise_model(st.noise_var, st.mean)
    floor = m.noise_floor(k, st.mean)
    assert floor[:, 3].mean() > 3 * floor[:, 0].mean()  # brighter tiles expect more noise
    assert not m.texture_gate(st.lap_var, floor).any()


def test_noise_sigma_estimate_matches_injected_noise():
    rng = np.random.default_rng(1)
    img = np.clip(128 + rng.normal(0, 4.0, (256, 256)), 0, 255).astype(np.uint8)
    st = m.tile_stats(img, grid_for(img, 4, 4))
    np.testing.assert_allclose(np.sqrt(np.median(st.noise_var)), 4.0, rtol=0.1)
    # And the Laplacian of white noise has variance 20 sigma^2.
    np.testing.assert_allclose(np.median(st.lap_var), 20 * 16.0, rtol=0.1)


def test_textured_tiles_pass_the_gate_and_flat_ones_do_not():
    rng = np.random.default_rng(2)
    scene = np.full((128, 256), 0.5, np.float32)
    scene[:, 128:] = 0.5 + 0.3 * (rng.random((128, 128)) > 0.5)
    img = sensor(scene, rng, analogue_gain=4.0)
    g = grid_for(img, 2, 4)
    st = m.tile_stats(img, g)
    k = m.noise_model(st.noise_var, st.mean)
    gate = m.texture_gate(st.lap_var, m.noise_floor(k, st.mean))
    assert gate[:, 2:].all() and not gate[:, :2].any()


def test_centre_weights_peak_in_the_middle():
    w = m.centre_weights(5, 5)
    assert w[2, 2] == pytest.approx(1.0)
    assert w[0, 0] < w[1, 1] < w[2, 2]


def test_crop_origins_pick_detail_and_stay_inside():
    img = np.full((64, 128), 100, np.uint8)
    img[40:48, 96:104] = 255  # one bright square in the lower right of the right tile
    g = m.grid_geometry((0, 0, 128, 64), 1, 2, 8)
    st = m.tile_stats(img, g)
    org = m.crop_origins(st.block_energy, g, 16, 128, 64)
    y, x = org[0, 1]
    assert 64 <= x <= 128 - 16 and 0 <= y <= 64 - 16
    assert x <= 96 < x + 16 and y <= 40 < y + 16  # the crop covers the detail
    tiles = m.extract_tiles(img, org.reshape(-1, 2), 16)
    assert tiles.shape == (2, 16, 16) and tiles.dtype == np.uint8
    assert tiles[1].max() == 255


def test_extract_tiles_pads_frames_smaller_than_a_tile():
    img = np.arange(100, dtype=np.uint8).reshape(10, 10)
    tiles = m.extract_tiles(img, np.array([[0, 0]]), 16)
    assert tiles.shape == (1, 16, 16)


def test_disk_kernel_is_normalized_and_round():
    k = disk_kernel(3.0)
    assert k.shape == (7, 7)
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    assert k[3, 3] > 0 and k[0, 0] == 0
    np.testing.assert_allclose(k, k.T, atol=1e-7)


def test_percentile_of_is_numpys_linear_percentile():
    """The noise model's fast percentile: numpy's default (linear) method on literal arrays,
    NaN in, NaN out."""
    a = np.array([4.0, 1.0, 3.0, 2.0])       # sorted 1 2 3 4: position q/100 * 3
    assert m.percentile_of(a, 0) == 1.0 and m.percentile_of(a, 100) == 4.0
    assert m.percentile_of(a, 50) == pytest.approx(2.5)
    assert m.percentile_of(a, 10) == pytest.approx(1.3)
    assert m.percentile_of(np.array([[7.0]]), 10) == 7.0
    rng = np.random.default_rng(0)
    for n in (2, 5, 48, 113):
        v = rng.random((n,)) * 100
        for q in (0, 10, 33.3, 90, 100):
            assert m.percentile_of(v, q) == pytest.approx(float(np.percentile(v, q)), rel=1e-12)
    assert np.isnan(m.percentile_of(np.array([1.0, np.nan, 2.0]), 10))
