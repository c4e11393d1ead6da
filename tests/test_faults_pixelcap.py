"""Issue 14: the header pixel-count cap (``[source] max_pixels``) applies to ``sim:IMAGE``
scenes and to video files too -- refused from the header or from the size
``cv2.VideoCapture`` reports, before a single frame is decoded."""

import cv2
import numpy as np
import pytest

from pifocus import cli
from pifocus.exc import ConfigError, SourceError
from pifocus.sources import open_source
from pifocus.sources.imagehdr import check_max_pixels, pixels_refusal

from test_faults_images import _bomb_png


def test_pixels_refusal_on_literal_sizes():
    assert pixels_refusal(100, 100, 10_000) is None
    reason = pixels_refusal(101, 100, 10_000)
    assert "101x100" in reason and "source.max_pixels = 10000" in reason and "raise [source] max_pixels" in reason


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "50", 4_000_000_001])
def test_max_pixels_is_validated(bad):
    with pytest.raises(ConfigError, match="source.max_pixels"):
        check_max_pixels(bad)


def test_sim_image_bomb_is_refused_without_decoding(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    _bomb_png(bomb)                                   # 30000 x 30000 announced, ~1 MB on disk
    calls = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setattr(cv2, "imread", lambda *a: calls.append(a) or pytest.fail("imread of a bomb"))
    src = open_source(f"sim:{bomb}")
    with pytest.raises(SourceError, match=r"30000x30000 = 900.0 MP is above source.max_pixels"):
        src.open()
    assert calls == []


def test_sim_image_under_the_cap_still_works(tmp_path):
    img = tmp_path / "scene.png"
    cv2.imwrite(str(img), (np.indices((60, 80)).sum(0) % 7 * 30).astype(np.uint8))
    with open_source(f"sim:{img}") as src:
        f = src.read()
    assert f.luma.shape == (60, 80)
    with pytest.raises(SourceError, match="max_pixels"):
        open_source(f"sim:{img}", max_pixels=80 * 60 - 1).open()


def test_sim_image_special_file_is_refused(tmp_path):
    with pytest.raises(SourceError, match="regular file"):
        open_source("sim:/dev/zero").open()


def test_sim_image_cap_comes_from_the_config(tmp_path, capsys):
    img = tmp_path / "scene.png"
    cv2.imwrite(str(img), np.zeros((300, 400), np.uint8))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[source]\nname = "sim:{img}"\nmax_pixels = 50000\n\n[analysis]\nuse_cnn = false\n')
    rc = cli.main(["run", "--config", str(cfg), "--frames", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0
    assert err[-1].startswith("pifocus: error:") and "400x300" in err[-1] and "max_pixels = 50000" in err[-1]


def _video(path, w=64, h=48, n=3):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h), False)
    if not vw.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG AVI")
    for i in range(n):
        vw.write(np.full((h, w), 40 * i, np.uint8))
    vw.release()
    return path


class _SpyCapture:
    """The real ``cv2.VideoCapture``, counting frame decodes."""
    reads = 0

    def __init__(self, *a):
        self._cap = _REAL_CAPTURE(*a)

    def read(self, *a):
        type(self).reads += 1
        return self._cap.read(*a)

    def __getattr__(self, name):
        return getattr(self._cap, name)


_REAL_CAPTURE = cv2.VideoCapture


def test_video_above_the_cap_is_refused_before_decoding(tmp_path, monkeypatch):
    path = _video(tmp_path / "v.avi", 64, 48)
    monkeypatch.setattr(cv2, "VideoCapture", _SpyCapture)
    _SpyCapture.reads = 0
    src = open_source(str(path), max_pixels=64 * 48 - 1)
    with pytest.raises(SourceError, match=r"video .*64x48 = 0.0 MP is above source.max_pixels = 3071"):
        src.open()
    assert _SpyCapture.reads == 0 and src._cap is None     # released, nothing decoded


def test_video_within_the_cap_reads(tmp_path):
    path = _video(tmp_path / "v.avi", 64, 48)
    with open_source(str(path), max_pixels=64 * 48) as src:
        assert src.read().luma.shape == (48, 64)


def test_run_on_a_video_bomb_is_one_line(tmp_path, capsys):
    path = _video(tmp_path / "v.avi", 320, 240)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[source]\nname = "{path}"\nmax_pixels = 10000\n\n[analysis]\nuse_cnn = false\n')
    rc = cli.main(["run", "--config", str(cfg), "--frames", "1"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("pifocus:")]
    assert rc != 0 and len(err) == 1 and "320x240" in err[0] and "unexpected" not in err[0]
