"""Issue 14: decompression bombs are refused from the header, before decoding."""

import struct
import zlib

import cv2
import numpy as np
import pytest

from pifocus import cli
from pifocus.sources import files as filesmod
from pifocus.sources.imagehdr import image_size
from pifocus.sources.recorded import RecordedSource


def _bomb_png(path, w=30000, h=30000):
    """A tiny PNG whose header announces w x h pixels (900 MP)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (w + 1) * 64)   # a few rows of zeros; the rest is implied
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif", ".webp", ".pgm"])
def test_header_dimensions_of_every_format(ext):
    img = (np.arange(37 * 53) % 251).astype(np.uint8).reshape(37, 53)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    assert image_size(buf.tobytes()) == (53, 37)


def test_bomb_is_skipped_without_decoding(tmp_path, monkeypatch):
    _bomb_png(tmp_path / "bomb.png")
    cv2.imwrite(str(tmp_path / "ok.png"), np.full((48, 64), 128, np.uint8))
    calls = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: calls.append(a) or real(*a))
    with RecordedSource(str(tmp_path)) as src:
        frames = list(src)
    assert len(frames) == 1 and frames[0].path.endswith("ok.png")
    assert src.skipped == 1 and "max_pixels" in src.skipped_files[0][1]
    assert len(calls) == 1                          # only ok.png was decoded


def test_max_pixels_is_configurable(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((100, 200), np.uint8))
    with RecordedSource(str(tmp_path), max_pixels=10_000) as src:
        with pytest.raises(Exception, match="none of the 1 image"):
            src.read()
    assert "20000" in src.skipped_files[0][1] or "0.0 MP" in src.skipped_files[0][1]


def test_score_skips_a_bomb_per_config(tmp_path, capsys):
    d = tmp_path / "imgs"
    d.mkdir()
    cv2.imwrite(str(d / "big.png"), np.zeros((300, 400), np.uint8))
    cv2.imwrite(str(d / "small.png"), np.zeros((30, 40), np.uint8))
    cfg = tmp_path / "c.toml"
    cfg.write_text("[source]\nname = \"sim\"\nmax_pixels = 50000\n")
    rc = cli.main(["score", str(d), "--config", str(cfg), "--no-cnn", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "small.png" in out and "big.png" not in out
    assert "max_pixels" in err and "1 unreadable file(s) skipped" in err


def test_special_file_as_image_is_skipped():
    luma, reason = filesmod.decode_image_file("/dev/zero")
    assert luma is None and "regular file" in reason
