"""Recorded source specifics: natural order, sweep.csv, corrupt files, errors, luma conversion,
replay seek/hold, video files, open_source strings."""

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from pifocus.exc import ConfigError, PiFocusError, SourceError, SourceExhausted
from pifocus.sources import open_source
from pifocus.sources.recorded import (IMAGE_EXTENSIONS, RecordedSource, natural_key, natural_sorted,
                                      read_sweep_csv, to_luma8)

cv2 = pytest.importorskip("cv2")



def _load_contract():
    """The contract test module's helpers (loaded by path: tests/ need not be a package)."""
    import importlib.util
    import sys
    name = "pifocus_tests_sources_contract"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("test_sources_contract.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
    return sys.modules[name]


chart, write_folder, write_video = (getattr(_load_contract(), n) for n in ("chart", "write_folder", "write_video"))


# -- natural sort -------------------------------------------------------------------------

def test_natural_sort_orders_numbers_by_value():
    names = ["img10.png", "img2.png", "img1.png", "img100.png", "img02b.png", "IMG3.png"]
    assert natural_sorted(names) == ["img1.png", "img2.png", "img02b.png", "IMG3.png",
                                     "img10.png", "img100.png"]


def test_natural_key_never_compares_str_with_int():
    names = ["10", "a", "a1", "1a", "", "b2c3", "b2c10", "_9"]
    assert natural_sorted(names)[:1] == [""]
    assert natural_key("b2c3") < natural_key("b2c10")


def test_folder_replays_in_natural_order_with_position_index(tmp_path):
    names = [f"frame{i}.png" for i in (10, 2, 1, 33, 3)]
    write_folder(tmp_path, names=names)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    with RecordedSource(tmp_path) as src:
        frames = list(src)
    assert [Path(f.path).name for f in frames] == ["frame1.png", "frame2.png", "frame3.png",
                                                   "frame10.png", "frame33.png"]
    assert [f.lens_position for f in frames] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert src.positions == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert src.length == 5


def test_extensions_are_case_insensitive(tmp_path):
    cv2.imwrite(str(tmp_path / "A.PNG"), chart(0))
    cv2.imwrite(str(tmp_path / "b.Jpg"), chart(1))
    cv2.imwrite(str(tmp_path / "c.tiff"), chart(2))
    assert RecordedSource(tmp_path).length == 3


# -- sweep.csv ----------------------------------------------------------------------------

def write_sweep(folder, rows, header="file,position,timestamp_ns,exposure_us,gain"):
    folder = Path(folder)
    (folder / "sweep.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return folder / "sweep.csv"


def test_sweep_csv_gives_order_positions_and_metadata(tmp_path):
    write_folder(tmp_path, n=4)
    write_sweep(tmp_path, ["img3.png,300.5,3000,9000,4.0",
                           "img1.png,100,1000,,",          # empty optional cells: unknown
                           "",                              # blank lines are ignored
                           "img2.png,200,2000,9000,4.0"])
    src = RecordedSource(tmp_path)
    assert src.csv_path.endswith("sweep.csv")
    assert src.length == 3 and src.positions == [300.5, 100.0, 200.0]
    with src:
        frames = list(src)
    assert [Path(f.path).name for f in frames] == ["img3.png", "img1.png", "img2.png"]
    assert frames[0].lens_position == 300.5
    assert frames[0].timestamp_ns == 3000 and frames[0].exposure_us == 9000
    assert frames[0].analogue_gain == 4.0
    assert frames[1].exposure_us is None and frames[1].analogue_gain is None


def test_sweep_csv_minimal_columns_and_extra_columns(tmp_path):
    write_folder(tmp_path, n=2)
    write_sweep(tmp_path, ["img0.png,5,near", "img1.png,6,far"], header="File, Position ,note")
    with RecordedSource(tmp_path) as src:
        frames = list(src)
    assert [f.lens_position for f in frames] == [5.0, 6.0]
    assert frames[0].extra["note"] == "near"
    assert frames[1].timestamp_ns > frames[0].timestamp_ns  # synthesized from fps


@pytest.mark.parametrize("rows, header, words", [
    (["img0.png,10", "missing.png,20"], "file,position", ["line 3", "missing.png"]),
    (["img0.png,10", "img1.png,ten"], "file,position", ["line 3", "position", "'ten'"]),
    (["img0.png,nan"], "file,position", ["line 2", "finite"]),
    (["img0.png,1,x"], "file,position,gain", ["line 2", "gain", "'x'"]),
    (["img0.png,"], "file,position", ["line 2", "position", "empty"]),
    ([",1"], "file,position", ["line 2", "file"]),
    (["img0.png"], "file", ["position", "file,position"]),
    ([], "file,position", ["no frame rows"]),
])
def test_bad_sweep_csv_names_the_line(tmp_path, rows, header, words):
    write_folder(tmp_path, n=2)
    csv_path = write_sweep(tmp_path, rows, header=header)
    with pytest.raises(SourceError) as e:
        RecordedSource(tmp_path)
    msg = str(e.value)
    assert str(csv_path) in msg
    for w in words:
        assert w in msg, msg


def test_empty_sweep_csv(tmp_path):
    write_folder(tmp_path, n=1)
    (tmp_path / "sweep.csv").write_text("")
    with pytest.raises(SourceError, match="empty"):
        read_sweep_csv(str(tmp_path / "sweep.csv"))


# -- corrupt files ------------------------------------------------------------------------

def test_corrupt_and_truncated_files_are_skipped_and_counted(tmp_path, caplog):
    write_folder(tmp_path, n=4)                       # img0..img3.png
    (tmp_path / "img1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    ok, jpg = cv2.imencode(".jpg", chart(5))
    (tmp_path / "img4.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])  # truncated JPEG
    (tmp_path / "img5.png").write_bytes(b"")          # empty file
    cv2.imwrite(str(tmp_path / "img6.jpg"), chart(6))
    src = RecordedSource(tmp_path)
    assert src.length == 7
    with caplog.at_level(logging.WARNING, logger="pifocus.sources.recorded"):
        with src:
            frames = list(src)
    assert [Path(f.path).name for f in frames] == ["img0.png", "img2.png", "img3.png", "img6.jpg"]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert src.skipped == 3
    skipped = [Path(p).name for p, _ in src.skipped_files]
    assert skipped == ["img1.png", "img4.jpg", "img5.png"]
    assert "truncated" in src.skipped_files[1][1]
    assert sum("skipping" in r.message for r in caplog.records) == 3


def test_all_files_corrupt_is_an_error_not_a_hang(tmp_path):
    for i in range(3):
        (tmp_path / f"bad{i}.png").write_bytes(b"nope")
    with RecordedSource(tmp_path, loop=True) as src:
        with pytest.raises(SourceError, match="none of the 3"):
            src.read()


# -- errors -------------------------------------------------------------------------------

def test_empty_folder_names_folder_and_accepted_types(tmp_path):
    with pytest.raises(SourceError) as e:
        RecordedSource(tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg
    for ext in IMAGE_EXTENSIONS:
        assert ext in msg


def test_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path))


def test_missing_path(tmp_path):
    with pytest.raises(SourceError, match="no such folder or file"):
        RecordedSource(tmp_path / "nope")
    with pytest.raises(SourceError, match="nope.mp4"):
        open_source(str(tmp_path / "nope.mp4"))


def test_missing_video_via_open_source_names_path(tmp_path):
    path = tmp_path / "gone.avi"
    with pytest.raises(SourceError) as e:
        open_source(str(path)).open()
    assert "gone.avi" in str(e.value)


def test_unreadable_video_names_path(tmp_path):
    path = tmp_path / "junk.mp4"
    path.write_bytes(os.urandom(2048))
    src = open_source(str(path))
    with pytest.raises(SourceError) as e:
        with src:
            src.read()
    assert str(path) in str(e.value)


def test_unknown_source_string():
    with pytest.raises(ConfigError) as e:
        open_source("webcam-please")
    msg = str(e.value)
    assert "webcam-please" in msg and "sim" in msg and "opencv" in msg


def test_unknown_option_is_config_error(tmp_path):
    write_folder(tmp_path, n=1)
    with pytest.raises(ConfigError):
        open_source(str(tmp_path), seed=3)


@pytest.mark.parametrize("kw", [{"fps": 0}, {"bit_depth": 20}, {"width": 100}, {"width": 4, "height": 4}])
def test_bad_options(tmp_path, kw):
    write_folder(tmp_path, n=1)
    with pytest.raises(ConfigError):
        RecordedSource(tmp_path, **kw)


def test_errors_are_pifocus_errors():
    assert issubclass(SourceError, PiFocusError)


# -- conversion to luma -------------------------------------------------------------------

def test_colour_becomes_rec601_luma():
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 2] = 255  # pure red
    y = to_luma8(bgr)
    assert y.shape == (2, 3) and y.dtype == np.uint8
    assert abs(int(y[0, 0]) - 76) <= 1  # 0.299 * 255
    assert np.array_equal(y, cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)[..., 0])  # the Y of YCrCb


def test_16bit_fixed_scale_and_bit_depth():
    img = np.array([[0, 257, 65535, 4095]], np.uint16)
    assert to_luma8(img).tolist() == [[0, 1, 255, 16]]
    assert to_luma8(img, bit_depth=12).tolist() == [[0, 16, 255, 255]]


def test_bgra_float_and_bad_arrays():
    bgra = np.full((2, 2, 4), 100, np.uint8)
    assert to_luma8(bgra).tolist() == [[100, 100], [100, 100]]
    assert to_luma8(np.array([[0.0, 0.5, 1.0, 2.0]], np.float32)).tolist() == [[0, 128, 255, 255]]
    with pytest.raises(ValueError):
        to_luma8(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError):
        to_luma8(np.zeros(5, np.uint8))


def test_16bit_and_grey_files(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((20, 30), 65535, np.uint16))
    cv2.imwrite(str(tmp_path / "b.tif"), np.full((20, 30), 4095, np.uint16))
    cv2.imwrite(str(tmp_path / "c.bmp"), np.full((20, 30), 7, np.uint8))
    with RecordedSource(tmp_path, bit_depth=12) as src:
        a, b, c = list(src)
    assert a.luma.dtype == np.uint8 and a.luma.shape == (20, 30)
    assert int(a.luma.max()) == 255 and int(b.luma.max()) == 255 and int(c.luma.max()) == 7


def test_resize_option(tmp_path):
    write_folder(tmp_path, n=2)
    with RecordedSource(tmp_path, width=40, height=32) as src:
        assert src.read().luma.shape == (32, 40)


# -- replay-drive API ---------------------------------------------------------------------

def make_sweep_folder(tmp_path, positions=(0, 50, 100, 150, 200)):
    names = [f"s{i}.png" for i in range(len(positions))]
    write_folder(tmp_path, names=names)
    write_sweep(tmp_path, [f"{n},{p}" for n, p in zip(names, positions)], header="file,position")
    return RecordedSource(tmp_path)


def test_index_nearest(tmp_path):
    src = make_sweep_folder(tmp_path)
    assert src.index_nearest(0) == 0
    assert src.index_nearest(74) == 1
    assert src.index_nearest(76) == 2
    assert src.index_nearest(75) == 1       # tie: the first
    assert src.index_nearest(-1000) == 0
    assert src.index_nearest(1e9) == 4


def test_seek_makes_next_frame_and_continues(tmp_path):
    src = make_sweep_folder(tmp_path)
    src.seek(3)                               # before open: kept
    with src:
        f = src.read()
        assert f.lens_position == 150 and f.extra["frame_index"] == 3
        assert src.read().lens_position == 200
        with pytest.raises(SourceExhausted):
            src.read()
        src.seek(-5)
        assert src.read().lens_position == 0
        assert src.seek_position(99) == 2
        assert src.read().lens_position == 100
        with pytest.raises(IndexError):
            src.seek(5)


def test_lens_position_setter_holds_the_frame(tmp_path):
    src = make_sweep_folder(tmp_path)
    with src:
        assert src.lens_position == 0
        src.lens_position = 140               # a drive moved the lens
        assert src.lens_position == 150
        frames = [src.read() for _ in range(4)]
        assert {f.lens_position for f in frames} == {150}
        assert [f.index for f in frames] == [0, 1, 2, 3]   # still a new frame each read
        ts = [f.timestamp_ns for f in frames]
        assert ts == sorted(ts) and len(set(ts)) == 4
        src.lens_position = 10
        assert src.read().lens_position == 0
        src.release_hold()
        assert src.read().lens_position == 50


def test_index_nearest_skips_known_bad_frames(tmp_path):
    src = make_sweep_folder(tmp_path)
    (tmp_path / "s2.png").write_bytes(b"broken")
    with src:
        src.seek(2)
        f = src.read()                        # s2 is bad: falls through to s3
        assert f.lens_position == 150 and src.skipped == 1
        assert src.index_nearest(100) in (1, 3)


def test_loop(tmp_path):
    write_folder(tmp_path, n=3)
    with RecordedSource(tmp_path, loop=True) as src:
        assert not src.finite
        got = [src.read().lens_position for _ in range(7)]
    assert got == [0, 1, 2, 0, 1, 2, 0]


def test_reopen_replays_from_the_start(tmp_path):
    write_folder(tmp_path, n=3)
    src = RecordedSource(tmp_path)
    with src:
        src.read(), src.read()
    with src:
        assert src.read().lens_position == 0


def test_single_image_file(tmp_path):
    write_folder(tmp_path, n=1)
    with open_source(str(tmp_path / "img0.png")) as src:
        frames = list(src)
    assert len(frames) == 1 and frames[0].path.endswith("img0.png")


def test_lazy_loading_keeps_one_frame(tmp_path, monkeypatch):
    write_folder(tmp_path, n=4)
    src = RecordedSource(tmp_path)
    calls = []
    real = src._decode_file
    monkeypatch.setattr(src, "_decode_file", lambda p: (calls.append(p), real(p))[1])
    with src:
        assert calls == []                    # nothing decoded on open
        src.read()
        assert len(calls) == 1


# -- video --------------------------------------------------------------------------------

def test_video_positions_timestamps_and_seek(tmp_path):
    path = write_video(tmp_path / "v.avi", n=5, fps=10.0)
    src = open_source(str(path))
    assert src.finite and src.is_video
    with src:
        assert src.length == 5 and src.positions == [0.0, 1.0, 2.0, 3.0, 4.0]
        frames = [src.read() for _ in range(2)]
        assert [f.lens_position for f in frames] == [0.0, 1.0]
        assert frames[1].timestamp_ns == pytest.approx(100_000_000, abs=2_000_000)
        assert frames[0].luma.shape == (64, 80)
        src.seek(4)
        assert src.read().lens_position == 4.0
        with pytest.raises(SourceExhausted):
            src.read()
        assert [src.index_nearest(p) for p in (-3, 1.5, 1.51, 99)] == [0, 1, 2, 4]
        src.lens_position = 2.2               # hold frame 2
        held = [src.read() for _ in range(3)]
        assert {f.lens_position for f in held} == {2.0}
        assert np.array_equal(held[0].luma, held[2].luma)
        src.seek(2)                           # same frame, no hold: continues sequentially
        assert [src.read().lens_position for _ in range(2)] == [2.0, 3.0]
        src.lens_position = 1
        src.read()
        src.release_hold()
        assert src.read().lens_position == 2.0


def test_video_loop(tmp_path):
    path = write_video(tmp_path / "v.avi", n=3)
    with RecordedSource(path, loop=True) as src:
        assert [src.read().lens_position for _ in range(5)] == [0, 1, 2, 0, 1]
