"""``score --heatmap`` images: colour, legend, banner, bounded size (pifocus.focus.heatmap)."""

import cv2
import numpy as np
import pytest

from pifocus.cli import main
from pifocus.exc import ConfigError
from pifocus.focus import AnalysisParams, FocusAnalyzer
from pifocus.focus.heatmap import SHARP_BGR, SOFT_BGR, HeatmapParams, render_heatmap, tile_colour
from pifocus.sources.simulated import SimulatedSource


def test_tile_colour_scale_ends_and_middle():
    assert tile_colour(0) == SOFT_BGR and tile_colour(1) == SHARP_BGR
    assert tile_colour(-3) == SOFT_BGR and tile_colour(7) == SHARP_BGR
    mid = tile_colour(0.5)
    assert all(min(a, b) <= m <= max(a, b) for a, b, m in zip(SOFT_BGR, SHARP_BGR, mid))
    # never red-dominant: red is a peaking colour
    for p in np.linspace(0, 1, 11):
        b, g, r = tile_colour(p)
        assert r < max(b, g)


def _judged(pos, w=2028, h=1520):
    with SimulatedSource(width=w, height=h) as src:
        src.lens_position = pos
        frame = src.read()
    return frame, FocusAnalyzer(AnalysisParams(use_cnn=False)).analyze(frame, track=False)


def test_render_heatmap_is_colour_bounded_and_tinted_by_verdict():
    frame, rep = _judged(500)
    img = render_heatmap(frame.luma, rep, name="x.png")
    assert img.ndim == 3 and img.shape[1] == 1600 and img.shape[0] > 1600 * 1520 / 2028   # banner + legend
    b, g, r = (img[..., k].astype(int) for k in range(3))
    assert (g - r > 40).mean() > 0.05         # green tiles: in focus
    _, soft = _judged(560)
    img2 = render_heatmap(frame.luma, soft)
    assert ((img2[..., 0].astype(int) - img2[..., 2]) > 40).mean() > 0.03   # blue tiles: soft
    # the legend row holds the whole ramp
    legend = img[-20:]
    assert (np.abs(legend.astype(int) - SOFT_BGR).sum(axis=2) < 30).any()
    assert (np.abs(legend.astype(int) - SHARP_BGR).sum(axis=2) < 30).any()


def test_heatmap_params_validated():
    with pytest.raises(ConfigError, match="heatmap.max_side_px"):
        HeatmapParams(max_side_px=10)
    with pytest.raises(ConfigError, match="heatmap.max_side_px.*320..2048"):
        HeatmapParams(max_side_px=4096)
    with pytest.raises(ConfigError, match="heatmap.jpeg_quality"):
        HeatmapParams(jpeg_quality=101)


def test_score_heatmap_writes_colour_jpegs_into_a_folder_or_png_when_named(tmp_path, capsys):
    frame, _ = _judged(500, 640, 480)
    cv2.imwrite(str(tmp_path / "shot.png"), frame.luma)
    assert main(["score", str(tmp_path / "shot.png"), "--no-cnn", "--heatmap", str(tmp_path / "maps")]) == 0
    jpg = tmp_path / "maps" / "shot_heatmap.jpg"
    assert jpg.read_bytes()[:3] == b"\xff\xd8\xff"   # a JPEG
    out = cv2.imread(str(jpg), cv2.IMREAD_UNCHANGED)
    assert out.ndim == 3 and out.shape[1] == 640
    assert not np.array_equal(out[..., 0], out[..., 1])   # really in colour
    assert main(["score", str(tmp_path / "shot.png"), "--no-cnn", "--heatmap", str(tmp_path / "one" / "m.png")]) == 0
    png = tmp_path / "one" / "m.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert out.ndim == 3 and out.shape[1] == 640
    assert not np.array_equal(out[..., 0], out[..., 1])   # really in colour


def test_score_heatmap_file_name_takes_one_image_only(tmp_path, capsys):
    frame, _ = _judged(500, 320, 240)
    for k in range(2):
        cv2.imwrite(str(tmp_path / f"s{k}.png"), frame.luma)
    assert main(["score", str(tmp_path / "s0.png"), str(tmp_path / "s1.png"), "--no-cnn",
                 "--heatmap", str(tmp_path / "m.jpg")]) != 0
    assert "a file name takes one image's heat map" in capsys.readouterr().err


def test_heatmap_of_a_12_mp_frame_is_jpeg_sized():
    """4056x3040 (the HQ Camera's full mode): the map's long side is bounded by max_side_px
    (<= 2048 px) and its JPEG stays under 300 KB."""
    from pifocus.focus.heatmap import encode_heatmap
    frame, rep = _judged(500, 4056, 3040)
    img = render_heatmap(frame.luma, rep, name="full.jpg")
    assert max(img.shape[:2]) <= 2048 and img.shape[1] == 1600
    size = len(encode_heatmap(img, "x.jpg"))
    assert size < 300_000, size
    with pytest.raises(ConfigError, match="name it .jpg, .jpeg or .png"):
        encode_heatmap(img, "x.tif")
