"""The photographer's tools on the page's API: the magnifier, sensor-resolution peaking that
tracks focus, the zebra, the peaking colour, the exposure readouts in /api/status."""

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from pifocus import config as cfgmod
from pifocus.exc import ConfigError
from pifocus.service import SdNotifier, Service
from pifocus.sources.simulated import SimulatedSource
from pifocus.web import WebParams
from pifocus.web import magnifier as mag
from pifocus.web.preview import PreviewHub

TOML = """\
[source]
name = "sim"
width = 640
height = 480
realtime = true
fps = 30

[analysis]
use_cnn = false

[drive]
name = "sim"
state_file = "none"

[web]
port = 0
max_fps = 0
captures_dir = "{captures}"
presets_file = "{presets}"
"""


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webtools")
    p = tmp / "pifocus.toml"
    p.write_text(TOML.format(captures=tmp / "captures", presets=tmp / "presets.json"))
    s = Service(cfgmod.load(p), notifier=SdNotifier(""), outputs_enabled=False)
    s.start()
    assert s.wait_ready(20)
    time.sleep(0.5)
    yield s
    s.shutdown()


def get(svc, path):
    """(status, body bytes, headers)."""
    try:
        with urllib.request.urlopen(svc.web.url.rstrip("/") + path, timeout=10) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def post(svc, path, body):
    req = urllib.request.Request(svc.web.url.rstrip("/") + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# -- pure functions --------------------------------------------------------------------------

def test_zoom_window_literal():
    assert mag.zoom_window(2028, 1520, mag.ZoomParams(0.5, 0.5, 1)) == (774, 580, 480, 360)
    assert mag.zoom_window(2028, 1520, mag.ZoomParams(0.5, 0.5, 4)) == (954, 715, 120, 90)
    assert mag.zoom_window(2028, 1520, mag.ZoomParams(0.0, 1.0, 2)) == (0, 1340, 240, 180)  # kept inside
    assert mag.zoom_window(100, 80, mag.ZoomParams(0.5, 0.5, 1)) == (0, 0, 100, 80)        # small frame


def test_render_zoom_is_a_pixel_exact_enlargement():
    rng = np.random.default_rng(0)
    luma = rng.integers(0, 256, (300, 400), dtype=np.uint8)
    bgr, (x0, y0, w, h) = mag.render_zoom(luma, mag.ZoomParams(0.5, 0.5, 4, 160, 120))
    assert bgr.shape == (120, 160, 3) and (w, h) == (40, 30)
    # every sensor pixel is a 4x4 block of exactly its value: no interpolation, no downscale
    assert np.array_equal(bgr[::4, ::4, 0], luma[y0:y0 + h, x0:x0 + w])
    assert np.array_equal(bgr[3::4, 3::4, 1], luma[y0:y0 + h, x0:x0 + w])


@pytest.mark.parametrize("kw", [dict(x=1.5), dict(y=-0.1), dict(scale=3), dict(width_px=10)])
def test_zoom_params_validated(kw):
    with pytest.raises(ConfigError, match="zoom\\."):
        mag.ZoomParams(**kw)


def test_zebra_stripes_only_clipped_pixels():
    small = np.full((16, 16), 100, np.uint8)
    small[:, 8:] = 255
    z = mag.zebra_mask(small, 250, period_px=4)
    assert not z[:, :8].any()
    share = (z[:, 8:] > 0).mean()
    assert 0.4 <= share <= 0.6   # stripes: half of the clipped area


def _coverage(hub, luma, noise):
    bgr, _ = hub.render(luma, noise)
    colour = np.array((0, 0, 255), np.uint8)
    painted = np.all(bgr == colour, axis=2)
    h, w = painted.shape
    return 100.0 * painted[int(.2 * h):int(.8 * h), int(.2 * w):int(.8 * w)].mean()


def test_sensor_peaking_tracks_the_last_two_percent_of_focus():
    """On the sim (2028 px frame, 640 px preview), sensor-resolution peaking covers clearly
    more of the ROI at best focus than 2 % of the range away; preview peaking does not."""
    sensor = PreviewHub(WebParams(peaking_resolution="sensor"))
    preview = PreviewHub(WebParams(peaking_resolution="preview"))
    with SimulatedSource(width=2028, height=1520) as src:
        cov = {}
        for pos in (480, 500, 520):
            src.lens_position = pos
            luma = src.read().luma
            cov[pos] = (_coverage(sensor, luma, 1.8), _coverage(preview, luma, 1.8))
    best_s, best_p = cov[500]
    for pos in (480, 520):
        assert best_s > 2.0 * cov[pos][0], cov
        assert best_p < 1.1 * cov[pos][1], cov     # the old way cannot tell them apart


def test_peaking_colour_and_zebra_drawn(monkeypatch):
    hub = PreviewHub(WebParams(preview_width=64))
    luma = np.full((48, 64), 252, np.uint8)
    luma[:, :32] = 60
    hub.peaking, hub.zebra = False, True
    bgr, _ = hub.render(luma)
    assert (bgr[:, 40:] == 0).all(axis=2).any() and not (bgr[:, :30] == 0).all(axis=2).any()
    hub.peaking, hub.zebra, hub.peaking_colour = True, False, "cyan"
    bgr, _ = hub.render(luma)
    assert (bgr == (255, 255, 0)).all(axis=2).any()    # the step edge, in cyan (BGR)


# -- through the server --------------------------------------------------------------------------

def test_zoom_endpoint_full_resolution_crop(svc):
    for scale in (1, 2, 4):
        code, body, hdrs = get(svc, f"/api/zoom?x=0.5&y=0.5&scale={scale}&w=320&h=240")
        assert code == 200 and hdrs["Content-Type"] == "image/jpeg"
        img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (240, 320, 3)
        x0, y0, w, h = (int(v) for v in hdrs["X-Zoom-Window"].split(","))
        assert (w, h) == (320 // scale, 240 // scale)
        assert x0 == 320 - w // 2 and y0 == 240 - h // 2
        assert hdrs["X-Zoom-Scale"] == str(scale)


@pytest.mark.parametrize("query, words", [("x=2", "zoom.x"), ("scale=3", "scale"), ("y=abc", "not a number"),
                                          ("w=5", "zoom.width_px")])
def test_zoom_bad_parameters(svc, query, words):
    code, body, _ = get(svc, "/api/zoom?" + query)
    assert code == 400 and words in json.loads(body)["error"]


def test_mode_zebra_and_peaking_colour(svc):
    code, d = post(svc, "/api/mode", {"zebra": True, "peaking_colour": "magenta"})
    assert code == 200 and d["zebra"] is True and d["peaking_colour"] == "magenta"
    code, body, _ = get(svc, "/api/status")
    st = json.loads(body)
    assert st["preview"]["zebra"] is True and st["preview"]["peaking_colour"] == "magenta"
    code, d = post(svc, "/api/mode", {"peaking_colour": "plaid"})
    assert code == 400 and "peaking_colour" in d["error"] and "magenta" in d["error"]
    post(svc, "/api/mode", {"zebra": False, "peaking_colour": "red"})


def test_status_has_exposure_readouts(svc):
    _, body, _ = get(svc, "/api/status")
    e = json.loads(body)["exposure"]
    assert e["iso"] == 100 and e["exposure_us"] > 0 and len(e["histogram"]) == 64
    assert sum(e["histogram"]) == pytest.approx(1.0, abs=1e-3)
    for k in ("ev_offset", "ev_offset_roi", "clip_high_pct", "clip_high_pct_roi", "clip_low_pct_roi",
              "noise_sigma_dn", "snr_db", "mean_dn"):
        assert k in e


def test_presets_save_go_stop_delete(svc):
    svc.drive.move_to(420)
    code, d = post(svc, "/api/presets", {"save": "A"})
    assert code == 201 and d["preset"]["position"] == 420
    svc.drive.move_to(100)
    code, d = post(svc, "/api/presets", {"save": "B"})
    assert code == 201
    _, body, _ = get(svc, "/api/presets")
    assert set(json.loads(body)["presets"]) == {"A", "B"}
    code, d = post(svc, "/api/presets", {"go": "A", "speed": 2000})
    assert code == 202 and d["rack"]["state"] == "moving"
    deadline = time.monotonic() + 10
    while svc.controls.rack_state["state"] == "moving" and time.monotonic() < deadline:
        time.sleep(0.05)
    st = json.loads(get(svc, "/api/status")[1])
    assert st["rack"]["state"] == "done" and svc.drive.position == 420 and "A" in st["presets"]
    # a slow move, stopped half-way
    code, d = post(svc, "/api/presets", {"go": "B", "speed": 100})
    time.sleep(0.5)
    code2, _ = post(svc, "/api/nudge", {"steps": 1})
    assert code2 == 409                        # the drive is busy with the move
    code, d = post(svc, "/api/presets", {"stop": True})
    assert code == 200 and d["rack"]["state"] == "stopped"
    assert 100 < svc.drive.position < 420
    code, d = post(svc, "/api/presets", {"delete": "B"})
    assert code == 200


@pytest.mark.parametrize("body, words", [({"go": "nope"}, "no preset 'nope'"), ({"save": "a/b"}, "preset name"),
                                         ({"go": "A", "speed": "fast"}, "speed"), ({}, "give one of"),
                                         ({"go": "A", "speed": 0}, "rack.speed_units_s"),
                                         ({"save": "A", "delete": "A"}, "give one of")])
def test_presets_bad_requests(svc, body, words):
    code, d = post(svc, "/api/presets", body)
    assert code == 400 and words in d["error"], d


def test_stack_endpoint_brackets_into_the_captures_dir(svc):
    code, d = post(svc, "/api/stack", {"near": 430, "far": 570, "fuse": True})
    assert code == 202 and d["stack"]["state"] == "running"
    deadline = time.monotonic() + 60
    while svc.controls.stack_state["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    st = json.loads(get(svc, "/api/status")[1])["stack"]
    assert st["state"] == "done" and st["frames"] >= 3 and st["fused"], st
    out = Path(svc.cfg.web.captures_dir) / st["out"]
    assert len(list(out.glob("frame_*.png"))) == st["frames"] == len(list(out.glob("frame_*.json")))
    assert (out / "sweep.csv").exists() and (out / "fused.png").exists()
    code, d = post(svc, "/api/stack", {"near": 430})
    assert code == 400 and "far" in d["error"]
    code, d = post(svc, "/api/stack", {"near": 400, "far": 400})
    assert code == 400 and "stack.near" in d["error"]


def test_stack_stop_between_frames(svc):
    code, d = post(svc, "/api/stack", {"near": 300, "far": 700, "overlap": 0.9})   # many frames
    assert code == 202
    deadline = time.monotonic() + 30
    while svc.controls.stack_state.get("phase") != "capture" and time.monotonic() < deadline:
        time.sleep(0.05)
    code, d = post(svc, "/api/stack", {"stop": True})
    assert code == 200 and d["stack"]["state"] == "stopped", d
    assert d["stack"]["frames"] < d["stack"]["total"]
    out = Path(svc.cfg.web.captures_dir) / d["stack"]["out"]
    rows = (out / "sweep.csv").read_text().strip().splitlines()
    assert len(rows) - 1 == d["stack"]["frames"]           # what was written is listed, nothing more
    code, _ = post(svc, "/api/nudge", {"steps": 1})
    assert code == 200                                     # the drive is free again
