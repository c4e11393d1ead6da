"""OpenCVSource: device/URL parsing, open errors with hints, live drop-out -> SourceDisconnected.

Live devices are replaced by a fake ``cv2.VideoCapture`` (no camera, no network needed)."""

import logging

import numpy as np
import pytest

from pifocus.exc import ConfigError, SourceDisconnected, SourceError
from pifocus.sources import open_source
from pifocus.sources.opencv import OpenCVSource, redact

cv2 = pytest.importorskip("cv2")


class FakeCapture:
    """Stands in for cv2.VideoCapture of a live device."""

    instances = []
    opens = True
    frames_before_failure = None
    delivered_size = None

    def __init__(self, *args):
        self.args = args
        self.props = {cv2.CAP_PROP_FRAME_WIDTH: 640, cv2.CAP_PROP_FRAME_HEIGHT: 480, cv2.CAP_PROP_FPS: 30}
        self.n = 0
        self.released = False
        type(self).instances.append(self)

    def isOpened(self):
        return self.opens

    def set(self, prop, value):
        if prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT) and self.delivered_size:
            return False
        self.props[prop] = value
        return True

    def get(self, prop):
        if self.delivered_size and prop == cv2.CAP_PROP_FRAME_WIDTH:
            return self.delivered_size[0]
        if self.delivered_size and prop == cv2.CAP_PROP_FRAME_HEIGHT:
            return self.delivered_size[1]
        return self.props.get(prop, 0)

    def read(self):
        if self.frames_before_failure is not None and self.n >= self.frames_before_failure:
            return False, None
        self.n += 1
        w, h = int(self.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return True, np.full((h, w, 3), (10 * self.n) % 256, np.uint8)

    def release(self):
        self.released = True


@pytest.fixture
def fake_cap(monkeypatch):
    cls = type("FakeCap", (FakeCapture,), {"instances": []})
    monkeypatch.setattr(cv2, "VideoCapture", cls)
    return cls


def test_device_parsing():
    assert OpenCVSource(0).device == 0
    assert OpenCVSource("2").device == 2
    assert OpenCVSource(" /dev/video4 ").device == "/dev/video4"
    src = open_source("opencv:rtsp://user:secret@cam.local/stream")
    assert src.device == "rtsp://user:secret@cam.local/stream"
    assert "secret" not in src.name and "***@cam.local" in src.name
    assert not src.finite


def test_redact():
    assert redact("http://a:b@h/x") == "http://***@h/x"
    assert redact("http://h/x@y") == "http://h/x@y"


def test_open_source_needs_an_argument():
    with pytest.raises(ConfigError, match="opencv:0"):
        open_source("opencv:")


@pytest.mark.parametrize("kw", [{"width": 640}, {"width": 1, "height": 1}, {"fps": -1}, {"timeout_s": 0}])
def test_bad_parameters(kw):
    with pytest.raises(ConfigError):
        OpenCVSource(0, **kw)


def test_live_frames_are_luma(fake_cap):
    with OpenCVSource(0, width=640, height=480, fps=30) as src:
        f1, f2 = src.read(), src.read()
        cap = fake_cap.instances[-1]
        assert cap.props[cv2.CAP_PROP_FPS] == 30
        assert cap.props[cv2.CAP_PROP_BUFFERSIZE] == 1
    assert f1.luma.shape == (480, 640) and f1.luma.dtype == np.uint8
    assert (f1.index, f2.index) == (0, 1) and f2.timestamp_ns >= f1.timestamp_ns
    assert f1.lens_position is None
    assert cap.released


def test_failed_grab_on_live_device_is_disconnect(fake_cap):
    fake_cap.frames_before_failure = 2
    src = OpenCVSource(0)
    with src:
        src.read(), src.read()
        with pytest.raises(SourceDisconnected, match="opencv:0.*grab failed"):
            src.read()
    fake_cap.frames_before_failure = None
    with src:                                   # reopen after the drop-out
        assert src.read().index == 2


def test_cannot_open_device_gives_hints(fake_cap):
    fake_cap.opens = False
    with pytest.raises(SourceError) as e:
        OpenCVSource(3).open()
    msg = str(e.value)
    assert "opencv:3" in msg and "/dev/video3" in msg
    assert "v4l2-ctl --list-devices" in msg and "group video" in msg
    assert fake_cap.instances and all(c.released for c in fake_cap.instances)


def test_cannot_open_url_names_it_without_password(fake_cap):
    fake_cap.opens = False
    with pytest.raises(SourceError) as e:
        open_source("opencv:rtsp://me:pw@10.0.0.9/live").open()
    msg = str(e.value)
    assert "rtsp://***@10.0.0.9/live" in msg and "pw" not in msg.replace("rtsp", "")
    assert "URL" in msg


def test_size_mismatch_is_logged(fake_cap, caplog):
    fake_cap.delivered_size = (320, 240)
    with caplog.at_level(logging.WARNING, logger="pifocus.sources.opencv"):
        with OpenCVSource(0, width=1920, height=1080) as src:
            assert src.read().luma.shape == (240, 320)
    assert "1920x1080" in caplog.text and "320x240" in caplog.text


def test_real_missing_device_fails_cleanly():
    # A device number no machine has: real OpenCV, no fake.  Must be a SourceError, not a crash.
    with pytest.raises(SourceError, match="v4l2-ctl"):
        OpenCVSource(99).open()
