"""The preview server and its JSON API: happy paths, bad parameters, tokens, fan-out."""

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from pifocus import config as cfgmod
from pifocus.exc import ConfigError
from pifocus.frames import Frame
from pifocus.service import SdNotifier, Service
from pifocus.web import WebParams, is_loopback
from pifocus.web.preview import PreviewHub, peaking_mask
from service_toml import SIM_SERVICE_BASE

TOML = SIM_SERVICE_BASE + """\
[web]
port = 0
max_clients = 3
max_fps = 0
captures_dir = "{captures}"
{extra}
"""

TOKEN = "s3cret-token-123"


def _start(tmp_path, extra="", outputs=True):
    p = tmp_path / "pifocus.toml"
    p.write_text(TOML.format(captures=tmp_path / "captures", extra=extra))
    svc = Service(cfgmod.load(p), notifier=SdNotifier(""), outputs_enabled=outputs)
    svc.start()
    assert svc.wait_ready(20)
    time.sleep(0.5)  # a few frames: fps is known
    return svc


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    s = _start(tmp_path_factory.mktemp("web"))
    yield s
    s.shutdown()


@pytest.fixture(scope="module")
def tsvc(tmp_path_factory):
    s = _start(tmp_path_factory.mktemp("webtoken"), extra=f'token = "{TOKEN}"', outputs=False)
    yield s
    s.shutdown()


def call(svc, method, path, body=None, headers=None, raw=None, ctype="application/json"):
    """(status, parsed JSON or bytes, headers)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"Content-Type": ctype} if (data is not None or method == "POST") and ctype else {}
    h.update(headers or {})
    req = urllib.request.Request(svc.web.url.rstrip("/") + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, payload, hdrs = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, payload, hdrs = e.code, e.read(), e.headers
    if hdrs.get("Content-Type", "").startswith("application/json"):
        payload = json.loads(payload)
    return status, payload, hdrs


def bad(status, payload, code):
    assert status == code, (status, payload)
    assert payload["ok"] is False and isinstance(payload["error"], str) and payload["error"]
    assert "Traceback" not in payload["error"]


# -- params ---------------------------------------------------------------------------------------
def test_webparams_defaults_and_validation():
    p = WebParams()
    assert p.host == "127.0.0.1" and not p.exposed and p.token is None
    with pytest.raises(ConfigError, match="web.token"):
        WebParams(host="0.0.0.0")
    assert WebParams(host="0.0.0.0", token=TOKEN).exposed
    with pytest.raises(ConfigError, match="web.token"):
        WebParams(token="short")
    with pytest.raises(ConfigError, match="web.port"):
        WebParams(port=70000)
    with pytest.raises(ConfigError, match="peaking_colour"):
        WebParams(peaking_colour="puce")
    assert WebParams(token="").token is None
    assert WebParams(host="0.0.0.0", enabled=False).enabled is False  # no server, no token needed


def test_config_web_table(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[web]\nhost = "::1"\nport = 9000\npreview_width = 480\n')
    cfg = cfgmod.load(p)
    assert cfg.web.host == "::1" and cfg.web.port == 9000 and cfg.web.preview_width == 480
    p.write_text('[web]\nprot = 9000\n')
    with pytest.raises(ConfigError, match="did you mean 'port'"):
        cfgmod.load(p)


@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True),
                                       ("::1", True), ("[::1]", True), ("0.0.0.0", False),
                                       ("192.168.1.7", False), ("::", False), ("pi.local", False)])
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


# -- GET --------------------------------------------------------------------------------------------
def test_page_and_static(svc):
    st, body, h = call(svc, "GET", "/")
    assert st == 200 and b"<title>pifocus</title>" in body and h["Content-Type"].startswith("text/html")
    for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css")):
        st, body, h = call(svc, "GET", f"/static/{name}")
        assert st == 200 and h["Content-Type"].startswith(ctype) and len(body) > 100
    for path in ("/static/../service.py", "/static/%2e%2e/server.py", "/static/nope.js", "/nope"):
        st, payload, _ = call(svc, "GET", path)
        bad(st, payload, 404)


def test_status(svc):
    st, s, _ = call(svc, "GET", "/api/status")
    assert st == 200
    for key in ("verdict", "in_focus", "sharpness", "meter", "fps", "drive", "error", "errors", "clients",
                "roi", "tiles", "mode", "autofocus", "preview", "frame_size"):
        assert key in s, key
    assert s["ready"] and s["fps"] > 5 and s["mode"] == "laplacian"
    assert s["verdict"] in ("in focus", "near", "out of focus", "motion blur", "no detail")
    assert s["drive"]["available"] and s["drive"]["position"] is not None
    assert s["tiles"]["rows"] == 6 and len(s["tiles"]["grid"]) == 4
    assert s["frame_size"] == [320, 240]


def test_preview_jpeg_and_mjpeg_stream(svc):
    st, body, h = call(svc, "GET", "/api/preview.jpg")
    assert st == 200 and body[:2] == b"\xff\xd8" and h["Content-Type"] == "image/jpeg"
    req = urllib.request.Request(svc.web.url + "stream.mjpg")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        frames, buf = [], b""
        while len(frames) < 3:
            buf += r.read1(65536)
            while True:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    break
                head = buf[:i].decode()
                n = int(head.split("Content-Length: ")[1].split("\r\n")[0])
                if len(buf) < i + 4 + n + 2:
                    break
                frames.append((head, buf[i + 4:i + 4 + n]))
                buf = buf[i + 4 + n + 2:]
    idx = [int(hd.split("X-Frame-Index: ")[1].split("\r\n")[0]) for hd, _ in frames]
    assert idx == sorted(idx) and len(set(idx)) == 3
    assert all(j[:2] == b"\xff\xd8" and j[-2:] == b"\xff\xd9" for _, j in frames)
    import cv2
    img = cv2.imdecode(np.frombuffer(frames[0][1], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (240, 320, 3)


def _no_clients(svc, timeout=5.0):
    deadline = time.monotonic() + timeout
    while svc.hub.clients and time.monotonic() < deadline:
        time.sleep(0.02)
    return svc.hub.clients == 0


def test_too_many_stream_clients(svc):
    assert _no_clients(svc)
    rs = []
    try:
        for _ in range(3):
            rs.append(urllib.request.urlopen(svc.web.url + "stream.mjpg", timeout=10))
            rs[-1].read1(100)
        st, payload, _ = call(svc, "GET", "/stream.mjpg")
        bad(st, payload, 503)
        assert "max_clients" in payload["error"]
        assert call(svc, "GET", "/api/status")[1]["clients"] == 3
    finally:
        for r in rs:
            r.close()
    assert _no_clients(svc, 2.0)


# -- POST: happy paths ------------------------------------------------------------------------------
def test_roi_set_and_reset(svc):
    st, d, _ = call(svc, "POST", "/api/roi", {"roi": [0.25, 0.3, 0.4, 0.35]})
    assert st == 200 and d["ok"] and d["roi"] == [0.25, 0.3, 0.4, 0.35]
    time.sleep(0.2)
    assert call(svc, "GET", "/api/status")[1]["roi"] == [0.25, 0.3, 0.4, 0.35]
    st, d, _ = call(svc, "POST", "/api/roi", {"roi": None})
    assert st == 200 and d["roi"] == [0.2, 0.2, 0.6, 0.6]


def test_nudge_moves_the_sim_drive(svc):
    pos0 = call(svc, "GET", "/api/status")[1]["drive"]["position"]
    st, d, _ = call(svc, "POST", "/api/nudge", {"steps": 25})
    assert st == 200 and d["position"] == pos0 + 25
    st, d, _ = call(svc, "POST", "/api/nudge", {"steps": -25})
    assert d["position"] == pos0


def test_capture_writes_png_and_serves_it(svc):
    st, d, _ = call(svc, "POST", "/api/capture", {})
    assert st == 201 and d["file"].endswith(".png") and d["width"] == 320 and d["height"] == 240
    path = Path(d["path"])
    assert path.is_file()
    import cv2
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img.shape == (240, 320) and img.dtype == np.uint8  # full-res luma, not the preview
    st, body, h = call(svc, "GET", d["url"])
    assert st == 200 and body == path.read_bytes()
    st, d2, _ = call(svc, "POST", "/api/capture", {"format": "jpg"})
    assert st == 201 and d2["file"].endswith(".jpg")
    st, lst, _ = call(svc, "GET", "/api/captures")
    assert {d["file"], d2["file"]} <= {c["file"] for c in lst["captures"]}
    assert not list(path.parent.glob("*.part"))


def test_mode_peaking_and_analysis(svc):
    st, d, _ = call(svc, "POST", "/api/mode", {"peaking": False})
    assert st == 200 and d["peaking"] is False and not svc.hub.peaking
    st, d, _ = call(svc, "POST", "/api/mode", {"peaking": True})
    assert d["peaking"] is True
    st, d, _ = call(svc, "POST", "/api/mode", {"analysis": "laplacian"})
    assert st == 200 and d["analysis"] == "laplacian"
    st, d, _ = call(svc, "POST", "/api/mode", {"analysis": "cnn"})
    # The shipped model may not be there yet: then a clear 503 and the mode stays.
    assert st in (200, 503), d
    if st == 503:
        assert "model" in d["error"] and svc.pipeline.analyzer.mode == "laplacian"
    else:
        assert d["analysis"] == "cnn"
        assert call(svc, "POST", "/api/mode", {"analysis": "laplacian"})[0] == 200


def test_mode_outputs_off_and_on(svc):
    from pifocus.outputs import FocusLED
    led = svc.pipeline.outputs.find(FocusLED)
    st, d, _ = call(svc, "POST", "/api/mode", {"outputs": False})
    assert st == 200 and d["outputs"] is False
    assert svc.pipeline.outputs is None and led.closed  # dark, pins released
    assert call(svc, "GET", "/api/status")[1]["outputs_on"] is False
    st, d, _ = call(svc, "POST", "/api/mode", {"outputs": True})
    assert st == 200 and d["outputs"] is True and svc.pipeline.outputs is not None
    bad(*call(svc, "POST", "/api/mode", {"outputs": "off"})[:2], 400)


def test_autofocus_endpoint(svc):
    st, d, _ = call(svc, "POST", "/api/autofocus", {})
    try:
        import pifocus.autofocus  # noqa: F401
    except ImportError:
        bad(st, d, 503)
        return
    assert st == 202 and d["autofocus"]["state"] == "running", d
    st2, d2, _ = call(svc, "POST", "/api/autofocus", {})
    if st2 != 202:  # a second run while one is going is refused
        bad(st2, d2, 409)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        af = call(svc, "GET", "/api/status")[1]["autofocus"]
        if af["state"] != "running":
            break
        time.sleep(0.2)
    assert af["state"] in ("done", "failed"), af
    if af["state"] == "done":
        assert "final_position" in af["result"]


# -- POST: bad paths ------------------------------------------------------------------------------
@pytest.mark.parametrize("path,body,code,words", [
    ("/api/roi", {"roi": [0.5, 0.5, 0.8, 0.2]}, 400, "roi"),
    ("/api/roi", {"roi": [0.1, 0.1, 0.2]}, 400, "four"),
    ("/api/roi", {"roi": "centre"}, 400, "roi"),
    ("/api/roi", {"roi": [0.1, "a", 0.2, 0.2]}, 400, "roi"),
    ("/api/roi", {}, 400, "roi"),
    ("/api/roi", {"roi": None, "x": 1}, 400, "unknown field"),
    ("/api/nudge", {"steps": "ten"}, 400, "integer"),
    ("/api/nudge", {"steps": 1.5}, 400, "integer"),
    ("/api/nudge", {"steps": True}, 400, "integer"),
    ("/api/nudge", {"steps": 0}, 400, "out of range"),
    ("/api/nudge", {"steps": 10 ** 9}, 400, "nudge_max_steps"),
    ("/api/nudge", {}, 400, "steps"),
    ("/api/capture", {"format": "tiff"}, 400, "format"),
    ("/api/capture", {"format": 3}, 400, "format"),
    ("/api/mode", {"analysis": "magic"}, 400, "cnn"),
    ("/api/mode", {"peaking": "yes"}, 400, "true or false"),
    ("/api/mode", {}, 400, "analysis"),
    ("/api/autofocus", {"strategy": 7}, 400, "strategy"),
    ("/api/nope", {}, 404, "no such API"),
    ("/api/status", {}, 405, "GET"),
])
def test_bad_requests(svc, path, body, code, words):
    st, d, _ = call(svc, "POST", path, body)
    bad(st, d, code)
    assert words.lower() in d["error"].lower(), d["error"]


def test_malformed_bodies(svc):
    st, d, _ = call(svc, "POST", "/api/roi", raw=b"{not json")
    bad(st, d, 400)
    st, d, _ = call(svc, "POST", "/api/roi", raw=b"[1, 2]")
    bad(st, d, 400)
    st, d, _ = call(svc, "POST", "/api/roi", raw=b"\xff\xfe")
    bad(st, d, 400)
    st, d, _ = call(svc, "POST", "/api/roi", raw=b'{"roi": null}', ctype="text/plain")
    bad(st, d, 415)
    st, d, _ = call(svc, "POST", "/api/nudge", raw=b"x" * 20000)
    bad(st, d, 413)
    st, d, _ = call(svc, "PUT", "/api/roi", {"roi": None})
    bad(st, d, 405)
    st, d, _ = call(svc, "POST", "/api/roi", {"roi": None}, headers={"Origin": "http://evil.example"})
    bad(st, d, 403)
    # the server is still fine
    assert call(svc, "GET", "/api/status")[0] == 200


# -- tokens --------------------------------------------------------------------------------------
def test_token_required_for_controls(tsvc):
    assert call(tsvc, "GET", "/api/status")[0] == 200  # reading is open
    assert call(tsvc, "GET", "/")[0] == 200
    for path, body in (("/api/nudge", {"steps": 5}), ("/api/capture", {}), ("/api/roi", {"roi": None}),
                       ("/api/autofocus", {}), ("/api/mode", {"peaking": True})):
        st, d, h = call(tsvc, "POST", path, body)
        bad(st, d, 401)
        assert "Bearer" in h.get("WWW-Authenticate", "")
        st, d, _ = call(tsvc, "POST", path, body, headers={"Authorization": "Bearer wrong-token-xyz"})
        bad(st, d, 403)
    st, d, _ = call(tsvc, "POST", "/api/nudge", {"steps": 5}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert st == 200, d
    st, d, _ = call(tsvc, "POST", f"/api/nudge?token={TOKEN}", {"steps": -5})
    assert st == 200, d
    st, d, _ = call(tsvc, "POST", "/api/capture?token=nope", {})
    bad(st, d, 403)


def test_exposed_host_binds_with_token(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(TOML.format(captures=tmp_path, extra=f'host = "0.0.0.0"\ntoken = "{TOKEN}"'))
    s = Service(cfgmod.load(p), notifier=SdNotifier(""), outputs_enabled=False)
    s.start()
    try:
        assert s.web.params.exposed
        port = s.web.address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10) as r:
            assert r.status == 200
    finally:
        s.shutdown()


def test_port_in_use_is_a_config_error(svc, tmp_path):
    port = svc.web.address[1]
    p = tmp_path / "c.toml"
    p.write_text(TOML.format(captures=tmp_path, extra="").replace("port = 0", f"port = {port}"))
    s = Service(cfgmod.load(p), notifier=SdNotifier(""), outputs_enabled=False)
    with pytest.raises(ConfigError, match="cannot listen"):
        s.start()


def test_no_drive_gives_503(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(TOML.format(captures=tmp_path, extra="").replace('name = "sim"\nstate_file', 'name = "none"\nstate_file'))
    try:
        cfg = cfgmod.load(p)
    except ConfigError:
        pytest.skip("this build's [drive] does not accept name = 'none'")
    s = Service(cfg, notifier=SdNotifier(""), outputs_enabled=False)
    s.start()
    try:
        assert s.wait_ready(20)
        s_, d, _ = call(s, "POST", "/api/nudge", {"steps": 3})
        bad(s_, d, 503)
        s_, d, _ = call(s, "POST", "/api/autofocus", {})
        bad(s_, d, 503)
        assert call(s, "GET", "/api/status")[1]["drive"]["available"] is False
    finally:
        s.shutdown()


# -- the hub: encode once, fan out; never block the loop -----------------------------------------------
def _frame(i, w=1332, h=990):
    rng = np.random.default_rng(i)
    return Frame(luma=rng.integers(0, 255, (h, w), dtype=np.uint8), index=i, timestamp_ns=time.monotonic_ns())


def test_hub_encodes_once_for_many_clients():
    hub = PreviewHub(WebParams(max_fps=0, preview_width=320)).start()
    got = [[] for _ in range(4)]
    try:
        for _ in range(4):
            assert hub.try_join()

        def client(k):
            for pf in hub.stream(timeout=1):
                got[k].append(pf.seq)
                if len(got[k]) >= 5:
                    return
        ts = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for i in range(60):
            hub.offer(_frame(i, 640, 480))
            time.sleep(0.01)
            if all(len(g) >= 5 for g in got):
                break
        for t in ts:
            t.join(5)
        assert all(len(g) >= 5 for g in got)
        assert hub.encoded <= hub.offered  # one encode per frame, whatever the number of clients
        # every client got the very same encoded objects
        assert len(set().union(*map(set, got))) <= hub.encoded
    finally:
        hub.close()


def test_hub_offer_never_waits_for_a_slow_encoder(monkeypatch):
    hub = PreviewHub(WebParams(max_fps=0, preview_width=320)).start()
    slow = threading.Event()
    orig = hub.render

    def slow_render(luma, noise=0.0, roi=None):
        slow.wait(5.0)  # released by the test: the encoder is busy for the whole offer loop
        return orig(luma, noise, roi)
    monkeypatch.setattr(hub, "render", slow_render)
    try:
        assert hub.try_join()
        frames = [_frame(i, 640, 480) for i in range(30)]
        t0 = time.perf_counter()
        for f in frames:
            hub.offer(f)
        per_offer = (time.perf_counter() - t0) / len(frames)
        assert per_offer < 0.01  # a copy, not an encode
        assert hub.dropped >= 25  # the rest were replaced by newer frames
    finally:
        slow.set()
        hub.close()


def test_hub_idle_without_clients():
    hub = PreviewHub(WebParams()).start()
    try:
        assert not hub.offer(_frame(0, 320, 240))
        assert hub.offered == 0
    finally:
        hub.close()


def test_peaking_marks_sharp_not_soft_edges():
    import cv2
    img = np.full((200, 200), 60, np.uint8)
    img[:, 100:] = 200
    sharp = peaking_mask(img, 0.45)
    soft = peaking_mask(cv2.GaussianBlur(img, (0, 0), 3), 0.45)
    assert sharp[:, 98:102].any() and not soft.any()
    noise = np.clip(128 + np.random.default_rng(0).normal(0, 2, (200, 200)), 0, 255).astype(np.uint8)
    assert peaking_mask(noise, 0.45, noise_sigma_dn=2.0).mean() < 0.001


def test_random_garbage_never_500(svc):
    import random
    rnd = random.Random(5)
    values = [None, True, False, 0, -1, 1.5, 1e308, "x", "", [], {}, [0.1] * 4, ["a"] * 4, [[1]], {"a": 1},
              "\u00e9\u0000", 10 ** 30, -10 ** 30, [float("1e-300")] * 4]
    paths = ["/api/roi", "/api/nudge", "/api/capture", "/api/mode", "/api/autofocus"]
    keys = ["roi", "steps", "format", "analysis", "peaking", "outputs", "strategy", "zzz"]
    for _ in range(150):
        path = rnd.choice(paths)
        body = {rnd.choice(keys): rnd.choice(values) for _ in range(rnd.randint(0, 2))}
        st, d, _ = call(svc, "POST", path, body)
        assert st < 500 or st == 503, (path, body, st, d)
        assert isinstance(d, dict) and "ok" in d, (path, body, d)
        if path == "/api/autofocus" and st == 202:
            deadline = time.monotonic() + 30
            while svc.af_state["state"] == "running" and time.monotonic() < deadline:
                time.sleep(0.05)
    for raw in (b"\x00" * 10, b"{", b'{"roi": [NaN, 0, 1, 1]}', b'{"steps": Infinity}', b"null", b'"str"'):
        st, d, _ = call(svc, "POST", "/api/nudge", raw=raw)
        assert 400 <= st < 500, (raw, st, d)
    # restore what the garbage may have changed
    call(svc, "POST", "/api/roi", {"roi": None})
    call(svc, "POST", "/api/mode", {"peaking": True, "outputs": True, "analysis": "laplacian"})
    assert call(svc, "GET", "/api/status")[0] == 200


def test_hub_max_fps_is_a_budget():
    hub = PreviewHub(WebParams(max_fps=20, preview_width=160)).start()
    try:
        assert hub.try_join()
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 1.5:  # a 30 fps camera
            n += 1
            hub.offer(_frame(n, 320, 240))
            time.sleep(1 / 30)
        elapsed = time.monotonic() - t0
        # About 20 of the 30 frames a second, not every other one (15).  Judged against the
        # frames this loop really offered (a loaded machine sleeps longer than 1/30 s): the
        # budget when the camera outpaces it, every frame when it does not.
        want = min(n, 20 * elapsed)
        assert 0.8 * want <= hub.offered <= 1.1 * 20 * elapsed + 1, (hub.offered, n, elapsed)
    finally:
        hub.close()


def test_a_client_that_never_reads_slows_nobody(svc):
    import socket as sk
    assert _no_clients(svc)
    host, port = svc.web.address
    stuck = sk.create_connection((host, port))
    stuck.setsockopt(sk.SOL_SOCKET, sk.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")  # ... and never reads
    try:
        f0, t0 = svc.pipeline.frames, time.monotonic()
        got = 0
        with urllib.request.urlopen(svc.web.url + "stream.mjpg", timeout=10) as r:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                got += r.read1(65536).count(b"--pifocusframe")
        elapsed = time.monotonic() - t0
        fps = (svc.pipeline.frames - f0) / elapsed
    finally:
        stuck.close()
    # Ratios against this machine's own rate in the same test, not absolute numbers (an
    # emulated arm64 run is several times slower): a healthy client alone for 3 s.
    assert _no_clients(svc)
    f0, t0 = svc.pipeline.frames, time.monotonic()
    alone = 0
    with urllib.request.urlopen(svc.web.url + "stream.mjpg", timeout=10) as r:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            alone += r.read1(65536).count(b"--pifocusframe")
    fps_alone = (svc.pipeline.frames - f0) / (time.monotonic() - t0)
    assert fps_alone > 0 and alone > 0
    assert fps >= 0.7 * fps_alone, (fps, fps_alone)   # the stuck client does not slow the loop
    assert got >= 0.6 * alone, (got, alone)            # nor the healthy client's preview
