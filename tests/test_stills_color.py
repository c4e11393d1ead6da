"""Colour stills and DNG: every source that has colour gives it on request
(``FrameSource.request_still``), grey sources stay grey, picamera2 takes colour from the
request's main stream and DNG from its raw stream before the request is released (the fake
follows ``picamera2/request.py``), and the service's capture / the focus bracket write them."""

import io
import json
from pathlib import Path

import numpy as np
import pytest

from pifocus.exc import ConfigError, ServiceError
from pifocus.frames import Frame
from pifocus.service.captures import encode_still, write_capture
from pifocus.sources import open_source

from test_sources_picamera2 import _fake  # the one loader of the fake picamera2 module


@pytest.fixture
def fake(monkeypatch):
    """The fake picamera2 module, installed in sys.modules for this test."""
    return _fake().install(monkeypatch)


def _colour_png(path: Path, w=160, h=120) -> np.ndarray:
    """A red scene with white grid lines and green columns (B, G, R)."""
    import cv2
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 2] = 200
    img[::8, :, :] = 255
    img[:, ::8, 1] = 90
    assert cv2.imwrite(str(path), img)
    return img


def _means(bgr):
    return bgr.reshape(-1, 3).mean(axis=0)


# -- sources --------------------------------------------------------------------------------

def test_sim_over_a_colour_image_gives_its_colour_only_on_request(tmp_path):
    _colour_png(tmp_path / "c.png")
    src = open_source(f"sim:{tmp_path / 'c.png'}", hold_position=500.0)
    with src:
        assert src.still_kinds == ("color",)
        assert src.read().color_bgr is None  # not asked: no colour work per frame
        src.request_still("color")
        f = src.read()
        b, g, r = _means(f.color_bgr)
        assert f.color_bgr.shape == (120, 160, 3) and r > 150 and r > 3 * b
        # the luma is this colour frame's own grey
        import cv2
        assert np.array_equal(f.luma, cv2.cvtColor(f.color_bgr, cv2.COLOR_BGR2GRAY))
        src.request_still(None)
        assert src.read().color_bgr is None


def test_grey_sources_stay_grey(tmp_path):
    import cv2
    src = open_source("sim", width=160, height=120)
    with src:
        assert src.still_kinds == ()
        src.request_still("color")
        assert src.read().color_bgr is None
    grey = np.tile(np.arange(160, dtype=np.uint8), (120, 1))
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    rec = open_source(str(tmp_path))
    rec.request_still("color")
    assert rec.read().color_bgr is None


def test_folder_and_video_keep_the_colour_they_decoded(tmp_path):
    import cv2
    img = _colour_png(tmp_path / "a.png")
    rec = open_source(str(tmp_path))
    rec.request_still("color")
    f = rec.read()
    assert np.array_equal(f.color_bgr, img)
    vid = tmp_path / "v.avi"
    wr = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(3):
        wr.write(img)
    wr.release()
    for spec in (str(vid), f"opencv:{vid}"):
        s = open_source(spec)
        with s:
            s.request_still("color")
            c = s.read().color_bgr
            b, g, r = _means(c)
            assert c.shape == (120, 160, 3) and r > 150 > b, spec


def test_request_still_rejects_unknown_kinds():
    with pytest.raises(ConfigError, match="'tiff'.*'color' or 'dng'"):
        open_source("sim").request_still("tiff")


def test_frame_checks_the_colour_array():
    with pytest.raises(TypeError, match="color_bgr must be a uint8 array of shape"):
        Frame(luma=np.zeros((4, 6), np.uint8), color_bgr=np.zeros((4, 5, 3), np.uint8))
    f = Frame(luma=np.zeros((4, 6), np.uint8), color_bgr=np.zeros((4, 6, 3), np.uint8))
    assert f.with_luma(np.ones((4, 6), np.uint8)).color_bgr is not None
    assert f.with_luma(np.ones((2, 3), np.uint8)).color_bgr is None  # resized: colour dropped


# -- picamera2 (fake following picamera2/request.py) ---------------------------------------

def test_picamera2_colour_still_from_the_main_stream_before_release(fake):
    from pifocus.sources.picamera2 import Picamera2Source
    src = Picamera2Source(sensor_mode=2, zero_copy=False)  # 1332x990: released at once
    with src:
        assert src.still_kinds == ("color",)
        assert src.read().color_bgr is None
        src.request_still("color")
        f = src.read()
        req = src.camera.last_request
        assert req.released  # zero_copy=False: released before read() returned ...
        with pytest.raises(AttributeError):  # ... and a released request cannot be read again
            req.make_array("main")
        w, h = src.output_size
        assert f.color_bgr.shape == (h, w, 3)
        b, g, r = _means(f.color_bgr)
        assert r > b + 40  # the fake's V plane is warm
        # the colour frame's luma is the Y plane the frame carries (BT.601, +-2 DN rounding)
        import cv2
        grey = cv2.cvtColor(f.color_bgr, cv2.COLOR_BGR2GRAY).astype(int)
        assert np.abs(grey - f.luma.astype(int)).mean() < 12
        with pytest.raises(RuntimeError, match="Stream 'raw' is not defined"):
            src.camera.capture_request().make_buffer("raw")  # no raw stream configured


def test_picamera2_zero_copy_colour_still_keeps_the_request_until_next_read(fake):
    from pifocus.sources.picamera2 import Picamera2Source
    src = Picamera2Source(sensor_mode=2)
    with src:
        src.request_still("color")
        f = src.read()
        req = src.camera.last_request
        assert not req.released and f.color_bgr is not None
        src.read()
        assert req.released
        assert f.color_bgr.flags.owndata or f.color_bgr.base is not None  # ours, not a camera view
        assert _means(f.color_bgr)[2] > 100


def test_picamera2_dng_from_the_raw_stream(fake):
    pytest.importorskip("pidng")  # what picamera2's request.py encodes DNGs with
    rawpy = pytest.importorskip("rawpy")
    from pifocus.sources.picamera2 import Picamera2Source
    src = Picamera2Source(sensor_mode=2, raw=True, zero_copy=False)
    with src:
        assert src.camera.last_config_kwargs["raw"] == {}
        assert src.still_kinds == ("color", "dng")
        src.request_still("dng")
        f = src.read()
    assert f.dng is not None and f.color_bgr is not None
    with rawpy.imread(io.BytesIO(f.dng)) as raw:
        assert raw.raw_image.shape == (990, 1332)  # the 1332x990 mode's raw, not the output
        assert raw.raw_image.min() >= 256  # above the black level the fake reports
        assert tuple(raw.color_desc) == (b"R", b"G", b"B", b"G") or raw.num_colors == 3


def test_picamera2_raw_option_is_checked():
    from pifocus.sources.picamera2 import Picamera2Source
    with pytest.raises(ConfigError, match="raw = 'yes' is invalid; give true"):
        Picamera2Source(raw="yes")


def test_picamera2_still_failure_is_reported_not_a_disconnect(fake, monkeypatch):
    from pifocus.sources.picamera2 import Picamera2Source
    src = Picamera2Source(sensor_mode=2, zero_copy=False)
    with src:
        src.request_still("color")
        monkeypatch.setattr(fake.Picamera2, "capture_request", _broken_capture(fake.Picamera2.capture_request))
        f = src.read()  # the live frame still comes
        assert f.color_bgr is None and "make_array failed" in f.extra["StillError"]
        with pytest.raises(ServiceError, match="colour still failed .*make_array failed") as e:
            encode_still(f, "png")
        assert e.value.status == 503


def _broken_capture(orig):
    def capture(self, *a, **k):
        req = orig(self, *a, **k)

        def boom(name):
            raise RuntimeError("make_array failed")
        req.make_array = boom
        return req
    return capture


# -- writing stills -------------------------------------------------------------------------

def test_write_capture_colour_png_and_jpg_grey_without_colour(tmp_path):
    import cv2
    luma = np.full((40, 60), 90, np.uint8)
    bgr = np.zeros((40, 60, 3), np.uint8)
    bgr[..., 2] = 220
    colour = Frame(luma=luma, index=3, color_bgr=bgr)
    for fmt in ("png", "jpg"):
        out = write_capture(colour, tmp_path, fmt)
        img = cv2.imread(out["path"], cv2.IMREAD_UNCHANGED)
        assert out["color"] and img.shape == (40, 60, 3) and abs(int(img[..., 2].mean()) - 220) <= 2
    out = write_capture(Frame(luma=luma, index=4), tmp_path, "png")
    assert not out["color"] and cv2.imread(out["path"], cv2.IMREAD_UNCHANGED).shape == (40, 60)


def test_dng_from_a_frame_without_raw_says_what_to_do(tmp_path):
    with pytest.raises(ServiceError, match="no raw frames to save as DNG.*capture_format = \"dng\"") as e:
        write_capture(Frame(luma=np.zeros((4, 4), np.uint8)), tmp_path, "dng")
    assert e.value.status == 409
    assert list(tmp_path.iterdir()) == []
    out = write_capture(Frame(luma=np.zeros((4, 4), np.uint8), dng=b"II*\x00fake"), tmp_path, "dng")
    assert Path(out["path"]).read_bytes() == b"II*\x00fake" and out["file"].endswith(".dng")


# -- the bracket ----------------------------------------------------------------------------

def test_stack_writes_colour_frames_and_a_colour_fusion(tmp_path):
    import cv2

    from pifocus.drive.simulated import SimulatedDrive
    from pifocus.drive import DriveParams
    from pifocus.focus import AnalysisParams, FocusAnalyzer
    from pifocus.stack import StackParams, capture_bracket
    _colour_png(tmp_path / "c.png", 320, 240)
    sim = open_source(f"sim:{tmp_path / 'c.png'}")
    drive = SimulatedDrive(DriveParams(name="sim", state_file="none"), source=sim)
    drive.open()
    out = tmp_path / "stack"
    out.mkdir()
    an = FocusAnalyzer(AnalysisParams(use_cnn=False))
    try:
        res = capture_bracket(drive, drive.source, an, StackParams(near=450, far=550, step=50), out,
                              fuse_to=out / "fused.png")
    finally:
        drive.close()
    assert res["frames"] == 2
    for i in range(2):
        img = cv2.imread(str(out / f"frame_{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        assert img.shape == (240, 320, 3) and _means(img)[2] > 150
        assert json.loads((out / f"frame_{i:05d}.json").read_text())["color"] is True
    fused = cv2.imread(str(out / "fused.png"), cv2.IMREAD_UNCHANGED)
    assert fused.shape == (240, 320, 3)
    assert sim.still_wanted is None  # the bracket let go of its request


# -- the service: POST /api/capture ---------------------------------------------------------

def test_service_capture_saves_colour_from_a_colour_source_and_refuses_dng(tmp_path):
    import cv2
    import time

    from pifocus import config as cfgmod
    from pifocus.service import SdNotifier, Service
    from service_toml import SIM_SERVICE_BASE
    _colour_png(tmp_path / "scene.png", 320, 240)
    toml = SIM_SERVICE_BASE.replace('name = "sim"\nwidth', f'name = "sim:{tmp_path / "scene.png"}"\nwidth', 1)
    toml += f'[web]\nport = 0\nmax_fps = 0\ncaptures_dir = "{tmp_path / "cap"}"\n'
    (tmp_path / "p.toml").write_text(toml)
    svc = Service(cfgmod.load(tmp_path / "p.toml"), notifier=SdNotifier(""))
    svc.start()
    try:
        assert svc.wait_ready(20)
        time.sleep(0.3)
        for fmt in ("png", "jpg"):
            out = svc.controls.capture(fmt)
            img = cv2.imread(out["path"], cv2.IMREAD_UNCHANGED)
            assert out["color"] and img.shape == (240, 320, 3) and _means(img)[2] > 150, fmt
        assert svc.source.still_wanted is None  # no colour work once nobody waits
        with pytest.raises(ServiceError, match="no raw frames to save as DNG") as e:
            svc.controls.capture("dng")
        assert e.value.status == 409
    finally:
        svc.shutdown()


def test_dng_capture_format_configures_the_picamera2_raw_stream(tmp_path):
    from pifocus import config as cfgmod
    from pifocus.service import parts
    (tmp_path / "p.toml").write_text('[source]\nname = "picamera2"\n\n[web]\ncapture_format = "dng"\n')
    src = parts.make_source(cfgmod.load(tmp_path / "p.toml"))
    assert src.raw is True and src.still_kinds == ("color", "dng")
    (tmp_path / "q.toml").write_text('[source]\nname = "picamera2"\n\n[web]\ncapture_format = "jpg"\n')
    assert parts.make_source(cfgmod.load(tmp_path / "q.toml")).raw is False


def test_service_on_picamera2_saves_colour_and_dng(tmp_path, fake):
    """The whole path on the fake camera: [web] capture_format = "dng" configures the raw
    stream; the page's capture saves a DNG (rawpy reads it), and a JPEG in colour."""
    pytest.importorskip("pidng")
    rawpy = pytest.importorskip("rawpy")
    import cv2
    import time

    from pifocus import config as cfgmod
    from pifocus.service import SdNotifier, Service
    (tmp_path / "p.toml").write_text(
        '[source]\nname = "picamera2"\nsensor_mode = 2\n\n[analysis]\nuse_cnn = false\n\n'
        f'[web]\nport = 0\nmax_fps = 0\ncapture_format = "dng"\ncaptures_dir = "{tmp_path / "cap"}"\n')
    svc = Service(cfgmod.load(tmp_path / "p.toml"), notifier=SdNotifier(""), outputs_enabled=False)
    svc.start()
    try:
        assert svc.wait_ready(20)
        time.sleep(0.2)
        assert fake.Picamera2.instances[-1].last_config_kwargs["raw"] == {}
        out = svc.controls.capture()             # the default format: dng
        assert out["file"].endswith(".dng") and out["color"]
        with rawpy.imread(out["path"]) as raw:
            assert raw.raw_image.shape == (990, 1332)
        out = svc.controls.capture("jpg")
        img = cv2.imread(out["path"], cv2.IMREAD_UNCHANGED)
        assert img.ndim == 3 and _means(img)[2] > _means(img)[0] + 20   # the fake's warm chroma
        cam = fake.Picamera2.instances[-1]
        assert len(cam.outstanding) <= 1         # no request leaked by the stills
    finally:
        svc.shutdown()


# -- YUV420 -> BGR in the camera's colour space (pure) -------------------------------------

def _i420(y, u, v, stride):
    """An I420 buffer as picamera2 lays it out: Y rows, then U and V planes of stride/2 bytes."""
    h, w = y.shape
    buf = np.zeros((h * 3 // 2, stride), np.uint8)
    buf[:h, :w] = y
    planes = np.zeros(2 * (h // 2) * (stride // 2), np.uint8)
    half = (h // 2) * (stride // 2)
    up = np.zeros((h // 2, stride // 2), np.uint8)
    up[:, :w // 2] = u
    vp = np.zeros((h // 2, stride // 2), np.uint8)
    vp[:, :w // 2] = v
    planes[:half], planes[half:] = up.ravel(), vp.ravel()
    buf[h:] = planes.reshape(h // 2, stride)
    return buf


@pytest.mark.parametrize("encoding, kr, kb", [("bt709", 0.2126, 0.0722), ("bt601", 0.299, 0.114)])
def test_yuv420_to_bgr_inverts_the_limited_range_encoding(encoding, kr, kb):
    from pifocus.sources.picamera2_config import yuv420_to_bgr
    bgr = np.array([200.0, 40.0, 30.0])                  # a saturated blue, B, G, R
    b, g, r = bgr
    yl = kr * r + (1 - kr - kb) * g + kb * b             # studio swing: Y 16..235, C 16..240
    y8 = 16 + 219 * yl / 255
    cb = 128 + 224 * (b - yl) / (2 * (1 - kb)) / 255
    cr = 128 + 224 * (r - yl) / (2 * (1 - kr)) / 255
    w, h, stride = 8, 4, 16
    buf = _i420(np.full((h, w), round(y8), np.uint8), np.full((h // 2, w // 2), round(cb), np.uint8),
                np.full((h // 2, w // 2), round(cr), np.uint8), stride)
    out = yuv420_to_bgr(buf, w, h, encoding, full_range=False)
    assert out.shape == (h, w, 3)
    assert np.abs(out.astype(float) - bgr).max() <= 3, out[0, 0]


def test_yuv420_to_bgr_bt601_limited_is_opencv_i420_and_709_differs():
    import cv2

    from pifocus.sources.picamera2_config import ycbcr_encoding, yuv420_to_bgr
    rng = np.random.default_rng(3)
    w, h = 16, 8
    buf = _i420(rng.integers(16, 236, (h, w)).astype(np.uint8), np.full((h // 2, w // 2), 90, np.uint8),
                np.full((h // 2, w // 2), 180, np.uint8), w)
    ours = yuv420_to_bgr(buf, w, h, "bt601", False).astype(int)
    assert np.abs(ours - cv2.cvtColor(buf, cv2.COLOR_YUV2BGR_I420).astype(int)).max() <= 3
    rec709 = yuv420_to_bgr(buf, w, h, "bt709", False).astype(int)
    assert np.abs(rec709 - ours).max() >= 10        # the matrix matters for saturated colour
    assert ycbcr_encoding("libcamera.ColorSpace 'Rec709'") == ("bt709", False)
    assert ycbcr_encoding("libcamera.ColorSpace 'sYCC'") == ("bt601", True)
    assert ycbcr_encoding("libcamera.ColorSpace 'SMPTE170M'") == ("bt601", False)
    with pytest.raises(ValueError, match="does not hold an even 17x8 frame"):
        yuv420_to_bgr(buf, 17, h)
