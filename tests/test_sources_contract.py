"""The FrameSource contract, written once and run against every implementation.

Sources: sim, recorded folder (natural order), recorded folder with sweep.csv, a list of image
files, a video file, the opencv source on that video file, and picamera2 over a fake
``picamera2`` module.  Everything is generated in ``tmp_path``: no network, no hardware.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from pifocus.exc import SourceExhausted
from pifocus.frames import Frame
from pifocus.sources import FrameSource, open_source

cv2 = pytest.importorskip("cv2")

HERE = Path(__file__).resolve().parent
N_FRAMES = 6
SIZE = (80, 64)  # w, h


def load_fake_picamera2():
    """The fake picamera2 helper module (loaded by path: tests/ need not be a package)."""
    name = "pifocus_tests_fake_picamera2"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "test_sources_fake_picamera2.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
    return sys.modules[name]


def chart(i, w=SIZE[0], h=SIZE[1], colour=True):
    """A small textured BGR (or grey) image that differs per frame."""
    rng = np.random.default_rng(i)
    img = rng.integers(0, 256, (h, w), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 0.5 + 0.3 * i)
    return cv2.merge([img, img // 2, 255 - img]) if colour else img


def write_folder(folder, n=N_FRAMES, names=None, ext=".png"):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"img{i}{ext}" for i in range(n)]
    for i, name in enumerate(names):
        assert cv2.imwrite(str(folder / name), chart(i))
    return folder, names


def write_video(path, n=N_FRAMES, fps=10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, SIZE)
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi here"
    for i in range(n):
        writer.write(chart(i))
    writer.release()
    return path


# -- factories: (source, number of frames for finite sources or None for live ones) --------

def make_sim(tmp_path, monkeypatch):
    from pifocus.sources.simulated import SimulatedSource
    return SimulatedSource(width=96, height=64, pull_frames=10), None


def make_folder(tmp_path, monkeypatch):
    folder, _ = write_folder(tmp_path / "frames")
    return open_source(str(folder)), N_FRAMES


def make_sweep(tmp_path, monkeypatch):
    folder, names = write_folder(tmp_path / "sweep", names=[f"f_{i:03d}.jpg" for i in range(N_FRAMES)])
    rows = ["file,position,timestamp_ns,exposure_us,gain"]
    rows += [f"{n},{100 + 10 * i},{i * 33_000_000},{8000},{2.0}" for i, n in enumerate(names)]
    (folder / "sweep.csv").write_text("\n".join(rows) + "\n")
    return open_source(f"replay:{folder}"), N_FRAMES


def make_file_list(tmp_path, monkeypatch):
    from pifocus.sources.recorded import RecordedSource
    folder, names = write_folder(tmp_path / "list")
    return RecordedSource([str(folder / n) for n in names]), N_FRAMES


def make_video(tmp_path, monkeypatch):
    return open_source(str(write_video(tmp_path / "clip.avi"))), N_FRAMES


def make_opencv_file(tmp_path, monkeypatch):
    return open_source("opencv:" + str(write_video(tmp_path / "clip.avi"))), N_FRAMES


def make_picamera2(tmp_path, monkeypatch):
    load_fake_picamera2().install(monkeypatch)
    return open_source("picamera2", width=96, height=64, fps=30), None


FACTORIES = {
    "sim": make_sim,
    "folder": make_folder,
    "sweep_csv": make_sweep,
    "file_list": make_file_list,
    "video": make_video,
    "opencv_file": make_opencv_file,
    "picamera2_fake": make_picamera2,
}


@pytest.fixture(params=sorted(FACTORIES))
def source(request, tmp_path, monkeypatch):
    src, n = FACTORIES[request.param](tmp_path, monkeypatch)
    yield src, n
    src.close()


def check_frame(frame, previous=None):
    assert isinstance(frame, Frame)
    assert isinstance(frame.luma, np.ndarray)
    assert frame.luma.ndim == 2 and frame.luma.dtype == np.uint8
    assert frame.luma.shape[0] > 0 and frame.luma.shape[1] > 0
    assert isinstance(frame.index, int) and frame.index >= 0
    assert isinstance(frame.timestamp_ns, int)
    if previous is not None:
        assert frame.index > previous.index
        assert frame.timestamp_ns >= previous.timestamp_ns


def test_is_a_frame_source(source):
    src, n = source
    assert isinstance(src, FrameSource)
    assert isinstance(src.name, str) and src.name
    assert repr(src)
    assert src.closed
    assert src.finite == (n is not None)
    if n is not None and src.length is not None:
        assert src.length == n


def test_context_manager_opens_and_closes(source):
    src, _ = source
    with src as s:
        assert s is src
        assert not src.closed
        check_frame(src.read())
    assert src.closed


def test_frames_are_luma_with_increasing_index(source):
    src, n = source
    with src:
        prev = None
        for _ in range(min(n or 5, 5)):
            frame = src.read()
            check_frame(frame, prev)
            # a frame must be usable as long as the next read has not happened
            assert int(frame.luma.astype(np.int64).sum()) >= 0
            prev = frame
        assert prev.index == min(n or 5, 5) - 1


def test_finite_sources_end_with_source_exhausted(source):
    src, n = source
    if n is None:
        pytest.skip("live source: never exhausted")
    with src:
        frames = list(src)
        assert len(frames) == n
        assert [f.index for f in frames] == list(range(n))
        with pytest.raises(SourceExhausted):
            src.read()
        with pytest.raises(SourceExhausted):  # and stays exhausted
            src.read()
    assert src.skipped == 0


def test_iteration_of_a_live_source_keeps_going(source):
    src, n = source
    if n is not None:
        pytest.skip("finite source")
    with src:
        it = iter(src)
        frames = [next(it) for _ in range(7)]
    assert [f.index for f in frames] == list(range(7))


def test_close_is_idempotent_and_safe_before_open(source):
    src, _ = source
    src.close()  # never opened
    src.open()
    src.open()   # open is idempotent too
    src.close()
    src.close()
    assert src.closed


def test_read_after_close_reopens(source):
    src, _ = source
    with src:
        first = src.read()
    assert src.closed
    again = src.read()  # reopens
    check_frame(again)
    assert again.index > first.index
    assert not src.closed
    src.close()


def test_exception_in_with_block_closes(source):
    src, _ = source
    with pytest.raises(RuntimeError):
        with src:
            src.read()
            raise RuntimeError("boom")
    assert src.closed


def test_skipped_counter_exists(source):
    src, _ = source
    assert src.skipped == 0
