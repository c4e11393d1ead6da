"""Picamera2Source against a fake picamera2 module (adapter logic), plus real-camera tests
marked ``hardware`` (run on a Pi with ``pytest --hardware``)."""

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pifocus.exc import ConfigError, SourceDisconnected, SourceError
from pifocus.sources import open_source
from pifocus.sources.picamera2 import (Picamera2Source, choose_sensor_mode, describe_modes,
                                       scaler_crop_rect)


def _fake():
    name = "pifocus_tests_fake_picamera2"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("test_sources_fake_picamera2.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
    return sys.modules[name]


@pytest.fixture
def fake(monkeypatch):
    """The fake picamera2 module, installed in sys.modules for this test."""
    return _fake().install(monkeypatch)


def hq_modes():
    return _fake()._hq_modes()


# -- import hygiene -----------------------------------------------------------------------

def test_module_imports_without_picamera2():
    code = ("import sys; sys.modules['picamera2'] = None\n"
            "import pifocus.sources.picamera2 as m, pifocus.sources as s\n"
            "src = s.open_source('picamera2:1')\n"
            "assert src.camera_num == 1\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_open_without_picamera2_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 -> ImportError
    src = Picamera2Source()
    with pytest.raises(SourceError) as e:
        src.open()
    msg = str(e.value)
    assert "sudo apt install python3-picamera2" in msg and "--system-site-packages" in msg
    assert src.closed


# -- sensor mode choice -------------------------------------------------------------------

@pytest.mark.parametrize("kw, size", [
    ({}, (2028, 1520)),                              # full field of view, binned
    ({"fps": 30}, (2028, 1520)),
    ({"fps": 40}, (2028, 1520)),
    ({"fps": 50}, (2028, 1080)),                     # widest that reaches 50 fps
    ({"fps": 100}, (1332, 990)),
    ({"width": 1280, "height": 720}, (2028, 1520)),
    ({"width": 4056, "height": 3040}, (4056, 3040)),
    ({"width": 3000, "height": 2000, "fps": 30}, (2028, 1520)),  # none covers it at 30: largest
    ({"sensor_mode": 3}, (4056, 3040)),
    ({"sensor_mode": "1332x990"}, (1332, 990)),
    ({"sensor_mode": (2028, 1080), "fps": 50}, (2028, 1080)),
])
def test_choose_sensor_mode_hq(kw, size):
    assert tuple(choose_sensor_mode(hq_modes(), **kw)["size"]) == size


@pytest.mark.parametrize("kw, words", [
    ({"fps": 200}, ["200", "120.0", "1332x990@120.0"]),
    ({"sensor_mode": 9}, ["sensor_mode = 9", "2028x1520@40.0"]),
    ({"sensor_mode": "640x480"}, ["640x480", "modes"]),
    ({"sensor_mode": "big"}, ["'big'", "WxH"]),
    ({"sensor_mode": 3, "fps": 30}, ["4056x3040", "10.0 fps"]),
])
def test_choose_sensor_mode_errors(kw, words):
    with pytest.raises(ConfigError) as e:
        choose_sensor_mode(hq_modes(), **kw)
    for w in words:
        assert w in str(e.value), str(e.value)


def test_choose_sensor_mode_without_raw_modes():
    assert choose_sensor_mode([{"format": "MJPEG"}]) is None
    assert describe_modes(hq_modes()).startswith("0: 2028x1080@50.0")


def test_scaler_crop_rect():
    assert scaler_crop_rect((0, 0, 1, 1), (0, 0, 4056, 3040)) == (0, 0, 4056, 3040)
    assert scaler_crop_rect((0.25, 0.25, 0.5, 0.5), (0, 0, 4056, 3040)) == (1014, 760, 2028, 1520)
    x, y, w, h = scaler_crop_rect((0.9, 0.9, 0.3, 0.3), (696, 528, 2664, 1980))
    assert x + w <= 696 + 2664 and y + h <= 528 + 1980  # clamped inside the limits
    assert x % 2 == 0 and y % 2 == 0 and w % 2 == 0 and h % 2 == 0


# -- adapter logic over the fake ----------------------------------------------------------

def test_yuv420_luma_is_a_view_of_the_y_plane(fake):
    src = Picamera2Source(width=100, height=66)   # stride 128: padding must be cut off
    with src:
        cam = src.camera
        f = src.read()
        req = cam.outstanding[-1]
        assert f.luma.shape == (66, 100) and f.luma.dtype == np.uint8
        assert np.shares_memory(f.luma, req.buf)  # no copy
        assert not (f.luma == _fake().PAD).any()  # no stride padding, no chroma rows
        assert np.array_equal(f.luma, req.buf[:66, :100])
        assert cam.mapped_write_flags == [False]
    assert cam.closed


def test_zero_copy_holds_one_request_until_next_read(fake):
    with Picamera2Source(width=64, height=64, buffer_count=3) as src:
        cam = src.camera
        for _ in range(10):                       # would run out of buffers on a leak
            src.read()
            assert len(cam.outstanding) == 1 and cam.open_maps == 1
        assert cam.released == 9
    assert cam.outstanding == [] and cam.open_maps == 0 and cam.closed


def test_copy_mode_releases_at_once(fake):
    with Picamera2Source(width=64, height=64, zero_copy=False) as src:
        cam = src.camera
        f = src.read()
        assert cam.outstanding == [] and cam.open_maps == 0
        assert f.luma.flags.c_contiguous and f.luma.shape == (64, 64)
        assert not np.shares_memory(f.luma, cam.last_request.buf)


def test_metadata_goes_into_the_frame(fake):
    fake.Picamera2.lens = True
    with Picamera2Source(width=64, height=64, fps=25, exposure_us=12000, analogue_gain=2.0,
                         controls={"LensPosition": 3.5}) as src:   # start controls: first frame
        a, b = src.read(), src.read()
    assert a.timestamp_ns == 1_000_000_000 and b.timestamp_ns == 1_040_000_000
    assert a.exposure_us == 12000 and a.analogue_gain == 2.0
    assert a.lens_position == 3.5 and src.lens_position == 3.5
    assert a.extra["FocusFoM"] == 1234 and b.extra["FocusFoM"] == 1235
    assert [a.index, b.index] == [0, 1]


def test_configuration_sent_to_picamera2(fake):
    src = Picamera2Source(fps=25, exposure_us=5000, analogue_gain=4.0, buffer_count=5,
                          controls={"AfMode": 0})
    with src:
        cam = src.camera
        kw = cam.last_config_kwargs
        assert kw["main"] == {"size": (2028, 1520), "format": "YUV420"}
        assert kw["sensor"] == {"output_size": (2028, 1520), "bit_depth": 12}
        assert kw["buffer_count"] == 5 and kw["queue"] is False
        assert kw["display"] is None and kw["encode"] is None
        c = cam.controls_set
        assert c["FrameDurationLimits"] == (40000, 40000)
        assert c["ExposureTime"] == 5000 and c["AnalogueGain"] == 4.0 and c["AeEnable"] is False
        assert c["AfMode"] == 0
        assert src.output_size == (2028, 1520) and src.read().luma.shape == (1520, 2028)
        assert cam.capture_calls[0]["wait"] >= 2.0  # bounded wait


def test_scaler_crop_roi_at_native_pixel_scale(fake):
    src = Picamera2Source(sensor_mode="4056x3040", scaler_crop=(0.375, 0.375, 0.25, 0.25))
    with src:
        assert src.scaler_crop == (1520, 1140, 1014, 760)
        assert src.camera.controls_set["ScalerCrop"] == (1520, 1140, 1014, 760)
        assert src.output_size == (1014, 760)  # 1:1 sensor pixels in the full-resolution mode
        assert src.read().luma.shape == (760, 1014)
    with Picamera2Source(scaler_crop=(0.375, 0.375, 0.25, 0.25)) as src:  # binned 2028x1520 mode
        assert src.output_size == (508, 380)
    with Picamera2Source(scaler_crop=(0.25, 0.25, 0.5, 0.5), width=640, height=480) as src:
        assert src.output_size == (640, 480)


def test_lens_position_setter_sets_manual_focus(fake):
    fake.Picamera2.lens = True
    with Picamera2Source(width=64, height=64, buffer_count=4) as src:
        assert src.read().lens_position == 1.0          # the tuning default after open
        src.lens_position = 2.5
        f = src.read()
        assert src.camera.controls_set["AfMode"] == 0
        assert src.camera.capture_calls[-1]["flush"] is True
        # the control rides on the next recycled request, behind the ones in flight
        seen = [f.lens_position] + [src.read().lens_position for _ in range(4)]
        assert seen[0] == 1.0 and 2.5 in seen


def test_request_fresh_flushes_once(fake):
    with Picamera2Source(width=64, height=64) as src:
        src.read()
        src.request_fresh()
        src.read()
        src.read()
        assert [c["flush"] for c in src.camera.capture_calls] == [None, True, None]


def test_capture_error_is_disconnect_and_reopen_works(fake):
    fake.Picamera2.fail_capture_after = 2
    src = Picamera2Source(width=64, height=64)
    with src:
        src.read(), src.read()
        with pytest.raises(SourceDisconnected, match="capture failed"):
            src.read()
        first = src.camera
    assert first.closed and first.outstanding == []
    fake.Picamera2.fail_capture_after = None
    with src:                                    # what the pipeline does after backoff
        assert src.camera is not first
        assert src.read().index == 2


def test_timeout_is_disconnect(fake):
    fake.Picamera2.timeout_capture_after = 0
    with Picamera2Source(width=64, height=64, timeout_s=0.5) as src:
        with pytest.raises(SourceDisconnected, match="no frame for 0.5 s"):
            src.read()
        assert src.camera.cancelled == 1
        assert src.camera.capture_calls[0]["wait"] == 0.5


def test_missing_camera_number(fake):
    with pytest.raises(SourceError, match="no camera number 2.*rpicam-hello --list-cameras"):
        open_source("picamera2:2").open()


def test_camera_busy(fake):
    fake.Picamera2.fail_init = RuntimeError("Failed to acquire camera: Device or resource busy")
    with pytest.raises(SourceError, match="busy.*another program"):
        Picamera2Source().open()


def test_bad_mode_closes_the_camera(fake):
    with pytest.raises(ConfigError, match="more than any sensor mode"):
        Picamera2Source(fps=500).open()
    assert fake.Picamera2.instances[-1].closed


def test_older_picamera2_api(monkeypatch):
    fake = _fake().install(monkeypatch, old=True)
    with Picamera2Source(fps=30) as src:
        cam = src.camera
        kw = cam.last_config_kwargs
        assert kw["raw"] == {"size": (2028, 1520), "format": "SRGGB12"}  # mode chosen via raw stream
        assert kw["sensor"] == {}
        src.request_fresh()
        f = src.read()
        assert f.luma.shape == (1520, 2028)
        assert cam.capture_calls[0]["flush"] is None  # no flush argument in this version
        assert cam.outstanding == [] and cam.open_maps == 0  # no DmaAllocator: copied, released
        assert f.luma.flags.c_contiguous
    assert fake.Picamera2.instances[-1].closed


def test_set_controls_needs_open():
    with pytest.raises(SourceError, match="not open"):
        Picamera2Source().set_controls({"LensPosition": 1.0})


@pytest.mark.parametrize("kw", [
    {"camera": -1}, {"camera": "0"}, {"width": 640}, {"width": 10, "height": 10}, {"fps": 0},
    {"exposure_us": 0}, {"analogue_gain": 0.5}, {"buffer_count": 2}, {"buffer_count": 99},
    {"scaler_crop": (0.5, 0.5, 0.6, 0.1)}, {"scaler_crop": (0, 0, 0, 1)}, {"scaler_crop": "centre"},
    {"timeout_s": 0}, {"controls": [1]},
])
def test_bad_parameters(kw):
    with pytest.raises(ConfigError):
        Picamera2Source(**kw)


def test_open_source_passes_options(fake):
    src = open_source("picamera2", fps=30, width=320, height=240)
    assert isinstance(src, Picamera2Source) and src.fps == 30
    with pytest.raises(ConfigError):
        open_source("picamera2:x")
    with pytest.raises(ConfigError):
        open_source("picamera2", no_such_option=1)


# -- the real camera (Raspberry Pi, pytest --hardware) -----------------------------------

@pytest.mark.hardware
def test_real_camera_frames_and_metadata():
    pytest.importorskip("picamera2")
    with Picamera2Source(fps=10) as src:
        frames = []
        for _ in range(5):
            f = src.read()
            frames.append((f.index, f.timestamp_ns, f.luma.shape, f.exposure_us, f.analogue_gain,
                           float(f.luma.mean())))
        w, h = src.output_size
    assert [f[0] for f in frames] == list(range(5))
    assert all(shape == (h, w) for _, _, shape, *_ in frames)
    ts = [f[1] for f in frames]
    assert ts == sorted(ts) and ts[-1] - ts[0] > 0.2e9   # about 100 ms per frame at 10 fps
    assert all(e and e > 0 for *_, e, g, m in frames)


@pytest.mark.hardware
def test_real_camera_scaler_crop():
    pytest.importorskip("picamera2")
    with Picamera2Source(scaler_crop=(0.375, 0.375, 0.25, 0.25)) as src:
        f = src.read()
        assert f.luma.shape == (src.output_size[1], src.output_size[0])
        assert src.camera.capture_metadata().get("ScalerCrop") is not None


# -- luma range (picamera2's video colour spaces are limited range) ---------------------------

def test_the_limited_to_full_table_maps_the_range_ends():
    from pifocus.sources.picamera2_config import LIMITED_TO_FULL
    assert (LIMITED_TO_FULL[16], LIMITED_TO_FULL[235], LIMITED_TO_FULL[0], LIMITED_TO_FULL[255]) == (0, 255, 0, 255)
    assert LIMITED_TO_FULL[126] == 128 and np.all(np.diff(LIMITED_TO_FULL.astype(int)) >= 0)


def test_the_video_configuration_asks_for_full_range_sycc(fake):
    """picamera2's video default (Rec709 / SMPTE170M) would squeeze Y to 16..235; the adapter
    asks for sYCC, so the luma is the scene's 0..255 levels, still without a copy."""
    with Picamera2Source(width=100, height=66) as src:
        cam = src.camera
        assert repr(cam.camera_config["colour_space"]) == "libcamera.ColorSpace 'sYCC'"
        f = src.read()
        assert np.shares_memory(f.luma, cam.outstanding[-1].buf)      # zero copy kept
        yy, xx = np.mgrid[0:66, 0:100]
        assert np.array_equal(f.luma, ((xx + yy) % 200 + 20).astype(np.uint8))  # the scene's own levels


@pytest.mark.parametrize("old", [False, True])
def test_a_limited_range_camera_is_expanded_to_full_range(monkeypatch, caplog, old):
    """libcamera may keep a limited-range colour space (or an older picamera2 takes no
    colour_space): every frame's luma is expanded 16..235 -> 0..255 (a copy)."""
    fake = _fake().install(monkeypatch, old=old)
    if not old:
        monkeypatch.setattr(fake.Picamera2, "keep_colour_space", _fake().ColorSpace.Rec709())
    with caplog.at_level("WARNING", logger="pifocus.sources.picamera2"):
        with Picamera2Source(width=100, height=66) as src:
            cam = src.camera
            assert "limited" in caplog.text and not src._zero_copy_active
            f = src.read()
            raw_y = cam.outstanding[-1].buf[:66, :100] if cam.outstanding else None
            assert raw_y is None or not np.shares_memory(f.luma, raw_y)
            # the ISP squeezed the scene's levels into 16..235; the frame has them back (+-1)
            yy, xx = np.mgrid[0:66, 0:100]
            scene = ((xx + yy) % 200 + 20).astype(int)
            assert np.abs(f.luma.astype(int) - scene).max() <= 1
