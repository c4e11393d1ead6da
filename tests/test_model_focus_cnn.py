"""The shipped focus CNN (models/focus_cnn_int8.tflite): contract, invariances, flat tiles,
and the real focus sweeps (judged by eye, tests/data/sweep_judgements.json)."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from pifocus.classify import ModelInfo, default_model_path, metadata_path_for

ROOT = Path(__file__).resolve().parents[1]
JUDGEMENTS = ROOT / "tests" / "data" / "sweep_judgements.json"

#: Test another candidate model with PIFOCUS_MODEL_UNDER_TEST=path/to/model.tflite.
def model_path() -> Path:
    return Path(os.environ.get("PIFOCUS_MODEL_UNDER_TEST") or default_model_path())


#: "High confidence": a flat tile must never reach this probability.
HIGH_CONFIDENCE = 0.8


@pytest.fixture(scope="module")
def clf():
    from pifocus.classify.litert import LiteRTClassifier
    path = model_path()
    if not path.is_file():
        pytest.fail(f"the shipped model {path} is missing")
    c = LiteRTClassifier(path, num_threads=1)
    yield c
    c.close()


@pytest.fixture(scope="module")
def chart_tiles(clf):
    """Textured tiles of the procedural focus chart through the simulated lens and sensor:
    sharp (lens blur 0.3 px) and defocused (disk PSF of 5 px), base ISO."""
    from pifocus.sources.simulated import defocus, focus_chart, sensor
    t = clf.tile_px
    chart = focus_chart(640, 480, seed=3)
    rng = np.random.default_rng(0)
    out = {}
    for name, radius in (("sharp", 0.3), ("blurred", 5.0)):
        img = sensor(defocus(chart, radius), rng)
        rows, cols = img.shape[0] // t, img.shape[1] // t
        tiles = img[:rows * t, :cols * t].reshape(rows, t, cols, t).swapaxes(1, 2).reshape(-1, t, t)
        out[name] = tiles
    # keep positions textured in the sharp render (std >= 25 DN)
    keep = out["sharp"].reshape(len(out["sharp"]), -1).std(axis=1) >= 25
    return out["sharp"][keep], out["blurred"][keep]


def test_shipped_model_contract(clf):
    path = model_path()
    assert path.stat().st_size <= 1_000_000
    info = ModelInfo.load(metadata_path_for(path))
    assert info == clf.info
    assert info.tile_px in (32, 48, 64) and 0 < info.threshold < 1
    assert clf.input_dtype == np.int8
    conv = info.extra["conversion"]
    assert conv["agreement"] >= 0.99
    assert info.extra["training"]["macs_per_tile"] <= 10_000_000


def test_chart_sharp_vs_blurred(clf, chart_tiles):
    sharp, blurred = chart_tiles
    assert len(sharp) >= 20
    ps, pb = clf.predict(sharp), clf.predict(blurred)
    assert np.mean(ps >= clf.threshold) >= 0.8
    assert np.mean(pb < clf.threshold) >= 0.9  # disk-PSF spurious resolution on bar patterns
    assert np.median(ps) > np.median(pb) + 0.5


def _clear(clf, tiles, margin=0.25):
    p = clf.predict(tiles)
    clear = (p >= min(clf.threshold + margin, 0.95)) | (p <= max(clf.threshold - margin, 0.05))
    return tiles[clear], p[clear] >= clf.threshold


def _scaled(tiles, gain, offset):
    t = tiles.astype(np.float32)
    m = t.mean(axis=(1, 2), keepdims=True)
    return np.clip(np.round((t - m) * gain + m + offset), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("gain, offset", [(1.0, 25.0), (1.0, -25.0), (0.7, 0.0), (1.3, 0.0), (0.8, 15.0)])
def test_brightness_and_contrast_do_not_flip_clear_cases(clf, chart_tiles, gain, offset):
    tiles = np.concatenate(chart_tiles)
    clear, verdict = _clear(clf, tiles)
    assert len(clear) >= 40
    # tiles that would clip under the change are not "the same tile" any more
    t = clear.astype(np.float32)
    m = t.mean(axis=(1, 2), keepdims=True)
    ok = ((t - m) * gain + m + offset).min(axis=(1, 2)) >= 0
    ok &= ((t - m) * gain + m + offset).max(axis=(1, 2)) <= 255
    assert ok.sum() >= 20
    after = clf.predict(_scaled(clear[ok], gain, offset)) >= clf.threshold
    assert (after == verdict[ok]).all(), f"{(after != verdict[ok]).sum()} clear tiles flipped"


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_low_amplitude_noise_does_not_flip_clear_cases(clf, chart_tiles, sigma):
    tiles = np.concatenate(chart_tiles)
    clear, verdict = _clear(clf, tiles)
    rng = np.random.default_rng(int(sigma * 10))
    noisy = np.clip(clear + rng.normal(0, sigma, clear.shape), 0, 255).round().astype(np.uint8)
    after = clf.predict(noisy) >= clf.threshold
    assert (after == verdict).all(), f"{(after != verdict).sum()} of {len(verdict)} clear tiles flipped"


def test_flat_tiles_are_never_in_focus_with_high_confidence(clf):
    from pifocus.sources.simulated import sensor
    t = clf.tile_px
    rng = np.random.default_rng(5)
    tiles = []
    for level in (0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98):
        tiles.append(np.full((1, t, t), round(level * 255), np.uint8))  # noiseless
        for gain in (1, 4, 16, 64):  # base ISO up to extreme gain: shot + read noise
            lum = np.full((t, t), level, np.float32)
            tiles.append(sensor(lum, rng, analogue_gain=float(gain))[None])
        yy, xx = np.mgrid[0:t, 0:t] / t
        ramp = np.clip(level + 0.1 * (xx - 0.5) + 0.05 * yy, 0, 1).astype(np.float32)
        tiles.append(sensor(ramp, rng, analogue_gain=8.0)[None])  # smooth shading + noise
    for sigma in (1, 3, 6, 10):  # plain white noise around mid grey
        tiles.append(np.clip(128 + rng.normal(0, sigma, (1, t, t)), 0, 255).astype(np.uint8))
    tiles = np.concatenate(tiles)
    p = clf.predict(tiles)
    assert p.max() < HIGH_CONFIDENCE, f"flat tile scored {p.max():.3f} (tile {int(p.argmax())})"


def test_batching_gives_the_same_answers(clf, chart_tiles):
    tiles = np.concatenate(chart_tiles)[:70]
    whole = clf.predict(tiles)
    one_by_one = np.array([clf.predict(t[None])[0] for t in tiles[:10]])
    np.testing.assert_allclose(whole[:10], one_by_one, atol=1e-6)


# ---------------------------------------------------------------------------------------
# Real focus sweeps (../shared/data; skipped when absent)
# ---------------------------------------------------------------------------------------

def _judgements():
    return json.loads(JUDGEMENTS.read_text())


def _sweep_tool():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import dataset
    finally:
        sys.path.pop(0)
    return dataset


@pytest.mark.parametrize("name", sorted(_judgements()["sweeps"]))
def test_sweep_peak_matches_the_judged_frame(clf, shared_data, name):
    folder = shared_data / "focus-sweeps" / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is not present")
    ds = _sweep_tool()
    j = _judgements()
    x, y, w, h = j["region"]
    judged = j["sweeps"][name]["frame"]
    files = ds.sweep_frames(folder)
    assert files[judged].name == j["sweeps"][name]["file"]
    t = clf.tile_px
    scores = []
    for f in files:
        img = ds.read_gray(f)
        H, W = img.shape
        y0, y1, x0, x1 = int(round(y * H)), int(round((y + h) * H)), int(round(x * W)), int(round((x + w) * W))
        reg = img[y0:y1, x0:x1]
        rows, cols = reg.shape[0] // t, reg.shape[1] // t
        tiles = reg[:rows * t, :cols * t].reshape(rows, t, cols, t).swapaxes(1, 2).reshape(-1, t, t)
        scores.append(float(clf.predict(tiles).mean()))
    best = int(np.argmax(scores))
    assert abs(best - judged) <= 1, (f"{name}: model peak at frame {best} ({files[best].name}), judged "
                                     f"{judged}; mean p per frame {np.round(scores, 3).tolist()}")
