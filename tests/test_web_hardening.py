"""Issue 14, item 2: the web server lets no stranger in.

Host header checked (DNS rebinding), slow headers timed out, connections capped before any
token check, no GET bodies, one valid Content-Length, the token never in a log line.
Every loop here is bounded in count and time; the server listens on 127.0.0.1 only.
"""

import json
import logging
import socket
import time
import urllib.error
import urllib.request

import pytest

from pifocus import config as cfgmod
from pifocus.exc import ConfigError
from pifocus.service import SdNotifier, Service
from pifocus.web import WebParams
from service_toml import SIM_SERVICE_BASE

TOKEN = "s3cret-token-123"
TOML = SIM_SERVICE_BASE + """\
[web]
port = 0
max_fps = 0
max_clients = 2
max_connections = 6
header_timeout_s = 1.0
allowed_hosts = ["rig.local", ".lan"]
token = "{token}"
captures_dir = "{captures}"
"""


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    d = tmp_path_factory.mktemp("hard")
    p = d / "pifocus.toml"
    p.write_text(TOML.format(token=TOKEN, captures=d / "captures"))
    s = Service(cfgmod.load(p), notifier=SdNotifier(""), outputs_enabled=False)
    s.start()
    assert s.wait_ready(20)
    yield s
    s.shutdown()


def _port(svc):
    return svc.web.address[1]


def get(svc, path, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{_port(svc)}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def raw(svc, data: bytes, timeout=3.0) -> bytes:
    """Send ``data`` on a fresh connection; everything read until close or ``timeout``."""
    s = socket.create_connection(("127.0.0.1", _port(svc)), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def _wait_idle(svc, n=1, timeout=5.0):
    deadline = time.monotonic() + timeout
    while svc.web._httpd.connections > n and time.monotonic() < deadline:
        time.sleep(0.05)


# -- Host header (DNS rebinding) -------------------------------------------------------------
@pytest.mark.parametrize("host,code", [("127.0.0.1", 200), ("localhost:9999", 200), ("[::1]:8080", 200),
                                       ("rig.local", 200), ("RIG.local:80", 200), ("cam.lan", 200),
                                       ("lan", 200), ("evil.example", 403), ("rig.local.evil.example", 403),
                                       ("evillan", 403), ("a b", 400), ("x:y", 400)])
def test_host_header_is_checked(svc, host, code):
    st, d = get(svc, "/api/status", {"Host": host})
    assert st == code, (host, d)
    if code == 403:
        assert "allowed_hosts" in d["error"] and host.split(":")[0] in d["error"]


def test_the_machine_host_name_is_allowed(svc):
    import socket as sk
    name = sk.gethostname()
    assert get(svc, "/api/status", {"Host": f"{name}:8080"})[0] == 200
    if "." not in name:
        assert get(svc, "/api/status", {"Host": f"{name}.local"})[0] == 200


def test_dns_rebinding_post_is_refused_even_with_matching_origin(svc):
    """A page on evil.example whose name now resolves to the Pi: Host and Origin agree."""
    body = b'{"steps": 1}'
    resp = raw(svc, b"POST /api/nudge HTTP/1.1\r\nHost: evil.example:%d\r\nOrigin: http://evil.example:%d\r\n"
                    b"Authorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                    b"Connection: close\r\n\r\n%s" % (_port(svc), _port(svc), TOKEN.encode(), len(body), body))
    assert resp.startswith(b"HTTP/1.1 403"), resp[:200]


def test_missing_or_double_host_is_400(svc):
    assert raw(svc, b"GET /api/status HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(svc, b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n").startswith(
        b"HTTP/1.1 400")


# -- slow clients and the connection cap ------------------------------------------------------
def test_slow_headers_are_dropped(svc):
    """A client trickling header lines is cut off after header_timeout_s (1 s here)."""
    _wait_idle(svc)
    s = socket.create_connection(("127.0.0.1", _port(svc)), timeout=0.3)
    t0 = time.monotonic()
    closed_after = None
    try:
        s.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for i in range(20):  # at most 20 x 0.3 s
            try:
                s.sendall(b"X-Slow-%d: y\r\n" % i)
                if s.recv(1024) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - t0
                break
    finally:
        s.close()
    assert closed_after is not None and closed_after < 3.0, closed_after


def test_connection_cap_answers_503_at_once_and_recovers(svc):
    _wait_idle(svc, 0)
    idle = []
    try:
        for _ in range(svc.web.params.max_connections):  # each holds a thread, sends nothing
            idle.append(socket.create_connection(("127.0.0.1", _port(svc)), timeout=2))
        time.sleep(0.2)
        t0 = time.monotonic()
        resp = raw(svc, b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", timeout=2)
        assert resp.startswith(b"HTTP/1.1 503") and b"max_connections" in resp, resp[:200]
        assert time.monotonic() - t0 < 1.0
    finally:
        for s in idle:
            s.close()
    # the idle ones go (closed here, or timed out by the server); a normal request is served
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if get(svc, "/api/status")[0] == 200:
            break
        time.sleep(0.1)
    assert get(svc, "/api/status")[0] == 200


def test_a_burst_of_connections_is_answered_at_once(svc):
    """40 connections at once: those over the cap get their 503 within a second (the listen
    backlog is not the stdlib's 5, so the kernel does not hold them back for seconds)."""
    _wait_idle(svc, 0)
    socks = []
    try:
        for _ in range(40):
            socks.append(socket.create_connection(("127.0.0.1", _port(svc)), timeout=2))
        deadline = time.monotonic() + 1.0
        answered = 0
        for s in socks[svc.web.params.max_connections:]:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                answered += s.recv(100).startswith(b"HTTP/1.1 503")
            except socket.timeout:
                pass
        assert answered == 40 - svc.web.params.max_connections
    finally:
        for s in socks:
            s.close()


def test_idle_connections_time_out_without_being_closed_by_the_client(svc):
    _wait_idle(svc, 0)
    idle = [socket.create_connection(("127.0.0.1", _port(svc)), timeout=3) for _ in range(3)]
    try:
        time.sleep(0.2)
        assert svc.web._httpd.connections >= 3
        for s in idle:
            assert s.recv(10) == b""  # the server hung up after header_timeout_s
        _wait_idle(svc, 0)
        assert svc.web._httpd.connections == 0
    finally:
        for s in idle:
            s.close()


# -- framing: GET bodies, Content-Length --------------------------------------------------------
def _position(svc):
    return get(svc, "/api/status")[1]["drive"]["position"]


def test_get_with_a_body_is_refused_not_executed(svc):
    before = _position(svc)
    smuggled = (b"POST /api/nudge HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                b"Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"steps\": 50}" % TOKEN.encode())
    resp = raw(svc, b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s"
               % (len(smuggled), smuggled))
    assert resp.startswith(b"HTTP/1.1 400") and b"takes no body" in resp, resp[:300]
    assert resp.count(b"HTTP/1.1 ") == 1, resp  # one answer: the body was not run as a request
    time.sleep(0.3)
    assert _position(svc) == before


@pytest.mark.parametrize("lengths", [[b"12", b"12"], [b"12", b"40"], [b"+12"], [b"1_2"], [b"0x0c"], [b"-1"],
                                     [b"12 13"]])
def test_bad_or_duplicate_content_length_is_400(svc, lengths):
    body = b'{"steps": 1}'
    cl = b"".join(b"Content-Length: %s\r\n" % v for v in lengths)
    resp = raw(svc, b"POST /api/nudge HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                    b"Content-Type: application/json\r\n%s\r\n%s" % (TOKEN.encode(), cl, body))
    assert resp.startswith(b"HTTP/1.1 400") and b"Content-Length" in resp, (lengths, resp[:300])


def test_a_good_post_still_works(svc):
    body = b'{"steps": 1}'
    resp = raw(svc, b"POST /api/nudge HTTP/1.1\r\nHost: rig.local:8080\r\nAuthorization: Bearer %s\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
               % (TOKEN.encode(), len(body), body))
    assert resp.startswith(b"HTTP/1.1 200"), resp[:300]


@pytest.mark.parametrize("data,code", [(b"GET /x HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n", None),  # 0.9 style: no head
                                       (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
                                       (b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501),
                                       (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", 431),
                                       (b"\x00\x01\x02 \xff HTTP/1.1\r\n\r\n", 501)],
                         ids=["http9.9", "long-line", "head", "many-headers", "garbage"])
def test_stdlib_errors_are_json(svc, data, code):
    resp = raw(svc, data)
    if code is None:
        head, body = b"", resp
    else:
        head, _, body = resp.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d" % code), resp[:200]
    if code != 501:  # HEAD: no body
        d = json.loads(body)
        assert d["ok"] is False and d["error"]


# -- the token never in a log ----------------------------------------------------------------------
def test_token_never_logged(svc, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    port = _port(svc)
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/nudge?token={TOKEN}", data=b'{"steps": 1}',
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200
    raw(svc, b"GET /x?token=%s HTTP/9.9\r\n\r\n" % TOKEN.encode())  # a bad request line is logged
    raw(svc, b"GET /api/status?token=%s HTTP/1.1\r\nHost: evil.example\r\n\r\n" % TOKEN.encode())
    time.sleep(0.3)
    assert "api/nudge" in caplog.text  # the requests were logged ...
    assert TOKEN not in caplog.text  # ... without the token
    assert TOKEN not in repr(svc.cfg) and TOKEN not in repr(svc.web.params)
    p = tmp_path / "c.toml"
    p.write_text("[web]\ntoken = 123456789012\n")
    with pytest.raises(ConfigError) as e:
        cfgmod.load(p)
    assert "123456789012" not in str(e.value)


# -- the new [web] keys ---------------------------------------------------------------------------------
def test_new_web_keys_are_validated():
    p = WebParams(allowed_hosts=("Rig.Local", "[::1]"))
    assert p.allowed_hosts == ("rig.local", "::1") and p.max_connections == 32 and p.header_timeout_s == 5.0
    for bad in (("rig.local:8080",), ("http://rig.local",), ("a b",), ("",), (7,)):
        with pytest.raises(ConfigError, match="web.allowed_hosts"):
            WebParams(allowed_hosts=bad)
    with pytest.raises(ConfigError, match="web.max_connections"):
        WebParams(max_clients=4, max_connections=4)
    with pytest.raises(ConfigError, match="web.max_connections"):
        WebParams(max_connections=5000)
    with pytest.raises(ConfigError, match="web.header_timeout_s"):
        WebParams(header_timeout_s=0.1)


def test_new_web_keys_load_from_the_config(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[web]\nallowed_hosts = ["rig.local"]\nmax_connections = 10\nheader_timeout_s = 2.5\n')
    w = cfgmod.load(p).web
    assert w.allowed_hosts == ("rig.local",) and w.max_connections == 10 and w.header_timeout_s == 2.5
    p.write_text('[web]\nallowed_hosts = "rig.local"\n')
    with pytest.raises(ConfigError, match="allowed_hosts"):
        cfgmod.load(p)
