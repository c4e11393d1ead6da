"""``pifocus cull`` on camera raws: a DNG written here (the minimal DNG 1.4 tags a Pi's
picamera2/PiDNG file carries: CFA 2x2 RGGB, 16-bit strips, black/white level, colour
matrix) is decoded through rawpy (LibRaw) and judged like a JPEG.  Skips without rawpy."""

import json
import struct

import numpy as np
import pytest

from pifocus.cli import main
from pifocus.cull import inputs
from pifocus.focus.blurest import dead_leaves
from pifocus.sources.simulated import defocus

rawpy = pytest.importorskip("rawpy")


def write_dng(path, bayer16, white=4095):
    h, w = bayer16.shape
    SHORT, LONG, BYTE, ASCII, RATIONAL, SRATIONAL = 3, 4, 1, 2, 5, 10
    cm = [(int(v * 10000), 10000) for v in (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)]
    raw = bayer16.astype('<u2').tobytes()
    tags = [(254, LONG, [0]), (256, LONG, [w]), (257, LONG, [h]), (258, SHORT, [16]), (259, SHORT, [1]),
            (262, SHORT, [32803]), (271, ASCII, b"pifocus\0"), (272, ASCII, b"test\0"), (273, LONG, [0]),
            (274, SHORT, [1]), (277, SHORT, [1]), (278, LONG, [h]), (279, LONG, [len(raw)]), (284, SHORT, [1]),
            (33421, SHORT, [2, 2]), (33422, BYTE, [0, 1, 1, 2]), (50706, BYTE, [1, 4, 0, 0]),
            (50708, ASCII, b"pifocus test\0"), (50714, LONG, [0]), (50717, LONG, [white]),
            (50721, SRATIONAL, cm), (50728, RATIONAL, [(1, 1), (1, 1), (1, 1)]), (50778, SHORT, [21])]
    fmt = {SHORT: "H", LONG: "I", BYTE: "B"}
    n = len(tags)
    ifd_size = 2 + 12 * n + 4
    data_off = 8 + ifd_size
    blobs = b""
    entries = b""
    def enc(typ, vals):
        if typ == ASCII:
            return vals, len(vals)
        if typ in (RATIONAL, SRATIONAL):
            f = "i" if typ == SRATIONAL else "I"
            return b"".join(struct.pack("<" + f + f, a, b) for a, b in vals), len(vals)
        return struct.pack("<" + fmt[typ] * len(vals), *vals), len(vals)
    for tag, typ, vals in tags:
        b, count = enc(typ, vals)
        if len(b) <= 4:
            entries += struct.pack("<HHI", tag, typ, count) + b.ljust(4, b"\0")
        else:
            entries += struct.pack("<HHII", tag, typ, count, data_off + len(blobs))
            blobs += b + (b"\0" if len(b) % 2 else b"")
    raw_off = data_off + len(blobs)
    # patch StripOffsets
    i = [t[0] for t in tags].index(273)
    e = bytearray(entries)
    e[12 * i + 8:12 * i + 12] = struct.pack("<I", raw_off)
    out = b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", n) + bytes(e) + struct.pack("<I", 0) + blobs + raw
    open(path, "wb").write(out)

def _bayer(scene, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(scene * 3500 + 200 + rng.normal(0, 6, scene.shape), 0, 4095).astype(np.uint16)


def test_dng_decodes_to_luma(tmp_path):
    scene = dead_leaves(256, seed=4)
    write_dng(str(tmp_path / "a.dng"), _bayer(scene))
    d, why = inputs.decode_photo(str(tmp_path / "a.dng"), want_thumb=True)
    assert why == "" and d.luma.shape == (256, 256) and d.luma.dtype == np.uint8
    assert d.thumb_bgr.shape[2] == 3
    # The luma follows the scene (a demosaiced grey scene stays correlated with it).
    assert np.corrcoef(d.luma.ravel().astype(float), scene.ravel())[0, 1] > 0.9


def test_cull_judges_dngs(tmp_path, capsys):
    scene = dead_leaves(512, seed=6, n_discs=2500)
    write_dng(str(tmp_path / "sharp.dng"), _bayer(scene))
    write_dng(str(tmp_path / "soft.dng"), _bayer(defocus(scene, 7.0)))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main(["cull", str(tmp_path), "--json", "--jobs", "1"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    by = {r["path"].rsplit("/", 1)[-1]: r for r in rows if "path" in r}
    assert by["sharp.dng"]["verdict"] == "keep" and by["soft.dng"]["verdict"] == "reject"
    assert by["soft.dng"]["blur_px"] > by["sharp.dng"]["blur_px"] + 3
    assert (tmp_path / "sharp.dng.xmp").exists()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix == ".dng"} == before
