"""The shipped model's blur-radius and motion heads on literal synthetic tiles: the
procedural chart (exactly sharp, pixel-scale) through disk and motion PSFs and the sensor
model at base ISO.  Runs on LiteRT only (no TensorFlow, no shared data)."""

import cv2
import numpy as np
import pytest

from pifocus.classify import ModelInfo, metadata_path_for
from pifocus.sources.simulated import defocus, focus_chart, sensor

from test_model_focus_cnn import model_path


@pytest.fixture(scope="module")
def clf():
    from pifocus.classify.litert import LiteRTClassifier
    c = LiteRTClassifier(model_path(), num_threads=1)
    if not c.has_blur:
        c.close()
        pytest.skip(f"{model_path().name} has no blur/motion heads; "
                    "set PIFOCUS_MODEL_UNDER_TEST to a model with heads to run these")
    yield c
    c.close()


@pytest.fixture(scope="module")
def chart():
    return focus_chart(640, 480, seed=3)


def _tiles(img, t, keep=None):
    rows, cols = img.shape[0] // t, img.shape[1] // t
    tiles = img[:rows * t, :cols * t].reshape(rows, t, cols, t).swapaxes(1, 2).reshape(-1, t, t)
    return tiles if keep is None else tiles[keep]


@pytest.fixture(scope="module")
def textured(chart, clf):
    """Tile positions that are clearly textured in the sharp chart (std >= 25 DN)."""
    t = clf.tile_px
    sharp = _tiles(np.clip(chart * 255, 0, 255), t)
    keep = sharp.reshape(len(sharp), -1).std(axis=1) >= 25
    assert keep.sum() >= 40
    return keep


def _render(chart, psf=None, radius=0.0, seed=0):
    img = defocus(chart, radius) if radius > 0 else chart
    if psf is not None:
        img = cv2.filter2D(img, -1, psf, borderType=cv2.BORDER_REFLECT)
    return sensor(img, np.random.default_rng(seed))


def test_shipped_model_has_the_heads(clf):
    info = ModelInfo.load(metadata_path_for(model_path()))
    assert info.has_blur and clf.has_blur
    lay = info.heads
    assert lay.n_outputs == 1 + len(lay.blur_thresholds_px) + 1
    assert lay.blur_thresholds_px[-1] >= 8.0
    assert info.extra["training"]["macs_per_tile"] <= 10_000_000
    assert model_path().stat().st_size <= 1_000_000


def test_predict_all_returns_three_per_tile_arrays(clf, chart):
    tiles = _tiles(_render(chart), clf.tile_px)[:37]
    out = clf.predict_all(tiles)
    for name in ("p_in_focus", "blur_px", "p_motion"):
        a = getattr(out, name)
        assert a.shape == (37,) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_allclose(out.p_in_focus, clf.predict(tiles), atol=1e-6)
    assert ((out.p_motion >= 0) & (out.p_motion <= 1)).all()
    assert ((out.blur_px >= 0) & (out.blur_px <= clf.info.heads.max_blur_px + 1e-4)).all()


def test_blur_px_rises_with_the_disk_radius_and_is_roughly_right(clf, chart, textured):
    medians = []
    for r in (0.0, 1.0, 2.0, 4.0):
        tiles = _tiles(_render(chart, radius=r, seed=int(r * 10)), clf.tile_px, textured)
        medians.append(float(np.median(clf.predict_all(tiles).blur_px)))
    assert all(b > a + 0.3 for a, b in zip(medians, medians[1:])), medians
    for r, m in zip((0.0, 1.0, 2.0, 4.0), medians):
        assert abs(m - r) <= (0.5 if r <= 2 else 1.0), (r, medians)


def test_motion_blur_is_flagged_and_defocus_is_not(clf, chart, textured):
    horizontal = np.full((1, 9), 1 / 9, np.float32)
    diagonal = (np.eye(7, dtype=np.float32) / 7)
    t = clf.tile_px
    # A tile is flagged at the model's own threshold (its metadata, tuned to a false-flag rate
    # on still tiles): what the analyzer counts, so what the false flags are measured at.
    thr = clf.info.layout.motion_threshold
    assert 0.5 <= thr < 0.95
    for psf in (horizontal, diagonal):
        p = clf.predict_all(_tiles(_render(chart, psf=psf, seed=1), t, textured)).p_motion
        assert np.median(p) > 0.8 and np.mean(p >= 0.5) >= 0.8, np.percentile(p, [10, 50, 90])
        assert np.mean(p >= thr) >= 0.7, np.percentile(p, [10, 50, 90])   # the frame reads motion_blur
    for r in (0.0, 2.0, 4.0):
        p = clf.predict_all(_tiles(_render(chart, radius=r, seed=2), t, textured)).p_motion
        assert np.median(p) < 0.2 and np.mean(p >= thr) <= 0.1, (r, np.percentile(p, [10, 50, 90]))
