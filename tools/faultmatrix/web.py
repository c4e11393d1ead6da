"""The web server under attack: ``pifocus serve`` as a subprocess on 127.0.0.1 (sim source,
sim drive, mock GPIO, a token, ``-vv`` logging to a file); every case runs against it with
bounded loops and timeouts, and after every case the daemon must be alive and answer
``/api/status``.

* ``held``      -- refused or answered as API.md says (a JSON 4xx/5xx, or the connection closed
  in time);
* ``traceback`` -- a traceback in an answer or a new one in the daemon's log;
* ``hang``      -- no answer and no close within the case's bound;
* ``crash``     -- the daemon died or stopped answering ``/api/status``;
* ``security``  -- something that must be refused got through (a foreign Host served, a GET
  body run as a request, a control without the token, a slow client kept, the token in the
  log, a path outside the captures folder served).
"""

import json
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import List

from .harness import Case
from .webclient import (FPS, HEADER_TIMEOUT_S, MAX_CONNECTIONS, TOKEN, Daemon, _auth, exchange, expect,
                        request, status_of)


def case_foreign_host_get(d):
    """A page on evil.example whose name resolves to the Pi reads the status."""
    return expect(d.port, request("GET", "/api/status", host="evil.example"), (403,), refused_is_security=True)


def case_foreign_host_post(d):
    """DNS rebinding: Host and Origin agree (evil.example), the token is known."""
    body = b'{"steps": 1}'
    return expect(d.port, request("POST", "/api/nudge", host=f"evil.example:{d.port}",
                                  headers=_auth() + (f"Origin: http://evil.example:{d.port}",), body=body),
                  (403,), refused_is_security=True)


def case_allowed_host(d):
    """A configured name is served."""
    out = expect(d.port, request("GET", "/api/status", host="rig.local:8080"), (200,))
    return out if out[1] == "200" else ("security", f"allowed host refused: {out[1]}")


def case_missing_host(d):
    """HTTP/1.0 without Host."""
    return expect(d.port, b"GET /api/status HTTP/1.0\r\n\r\n", (400,), refused_is_security=True)


def case_double_host(d):
    """Two Host headers."""
    return expect(d.port, request("GET", "/api/status", headers=("Host: evil.example",)), (400,),
                  refused_is_security=True)


def case_get_with_body(d):
    """A GET whose body is a whole authorised POST (request smuggling)."""
    before = d.position()
    inner = request("POST", "/api/nudge", headers=_auth(), body=b'{"steps": 40}').replace(
        b"Connection: close\r\n", b"")
    out = expect(d.port, request("GET", "/api/status", headers=(f"Content-Length: {len(inner)}",), body=inner,
                                 length=False), (400,), refused_is_security=True)
    time.sleep(0.3)
    after = d.position()
    if before is not None and after is not None and after != before:
        return "security", f"the body ran as a request: drive moved {before} -> {after}"
    return out


def case_duplicate_content_length(d):
    """Two different Content-Length headers."""
    body = b'{"steps": 1}'
    return expect(d.port, request("POST", "/api/nudge", headers=_auth() + ("Content-Length: 40",), body=body),
                  (400,), refused_is_security=True)


def case_invalid_content_length(d):
    """Content-Length: +12 (int() would take it)."""
    body = b'{"steps": 1}'
    return expect(d.port, request("POST", "/api/nudge", headers=_auth() + ("Content-Length: +12",), body=body,
                                  length=False), (400,), refused_is_security=True)


def case_chunked_post(d):
    """A chunked POST body."""
    return expect(d.port, request("POST", "/api/nudge", headers=_auth() + ("Transfer-Encoding: chunked",),
                                  body=b"c\r\n{\"steps\": 1}\r\n0\r\n\r\n", length=False), (411, 400),
                  refused_is_security=True)


def case_no_token(d):
    """A control without the token."""
    return expect(d.port, request("POST", "/api/nudge", headers=("Content-Type: application/json",),
                                  body=b'{"steps": 1}'), (401,), refused_is_security=True)


def case_wrong_token(d):
    """A control with a wrong token."""
    return expect(d.port, request("POST", "/api/nudge", headers=("Authorization: Bearer nope-nope-nope",
                                                                 "Content-Type: application/json"),
                                  body=b'{"steps": 1}'), (403,), refused_is_security=True)


def case_long_request_line(d):
    """A 70 KB request line."""
    return expect(d.port, request("GET", "/" + "a" * 70000), (414, 400, 404, 431))


def case_many_headers(d):
    """200 headers."""
    return expect(d.port, request("GET", "/api/status", headers=tuple(f"X-H{i}: v" for i in range(200))),
                  (431, 400))


def case_garbage(d):
    """Binary garbage instead of a request."""
    return expect(d.port, bytes(range(256)) * 4 + b"\r\n\r\n", (400, 505))


def case_half_request_then_close(d):
    """Half a request line, then the client closes."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=2)
    s.sendall(b"GET /api/sta")
    s.close()
    return "held", "client went away"


def case_slow_headers(d):
    """One header line every 0.4 s: the server must hang up after header_timeout_s."""
    bound = HEADER_TIMEOUT_S + 3.0
    s = socket.create_connection(("127.0.0.1", d.port), timeout=0.4)
    t0 = time.monotonic()
    try:
        s.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for i in range(int(bound / 0.4) + 1):
            try:
                s.sendall(b"X-Slow-%d: y\r\n" % i)
                if s.recv(1024) == b"":
                    return "held", f"dropped after {time.monotonic() - t0:.1f} s"
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return "held", f"dropped after {time.monotonic() - t0:.1f} s"
    finally:
        s.close()
    return "security", f"a trickling client was kept over {bound:.0f} s"


def case_slow_body(d):
    """A 100-byte POST body one byte every 0.5 s: dropped within the body timeout (10 s)."""
    bound = 14.0
    s = socket.create_connection(("127.0.0.1", d.port), timeout=0.5)
    t0 = time.monotonic()
    try:
        s.sendall(request("POST", "/api/nudge", headers=_auth() + ("Content-Length: 100",), length=False))
        while time.monotonic() - t0 < bound:
            try:
                s.sendall(b" ")
                data = s.recv(4096)
                if data == b"" or data.startswith(b"HTTP/"):
                    return "held", f"ended after {time.monotonic() - t0:.1f} s ({status_of(data) or 'closed'})"
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return "held", f"dropped after {time.monotonic() - t0:.1f} s"
    finally:
        s.close()
    return "hang", f"a trickling body was kept over {bound:.0f} s"


def case_connection_flood(d):
    """max_connections + 10 idle connections: the extra ones get 503 at once."""
    socks, answers = [], []
    try:
        for _ in range(MAX_CONNECTIONS + 10):
            socks.append(socket.create_connection(("127.0.0.1", d.port), timeout=2))
        deadline = time.monotonic() + 3.0
        for s in socks[MAX_CONNECTIONS:]:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                answers.append(status_of(s.recv(4096)))
            except socket.timeout:
                answers.append(None)
    finally:
        for s in socks:
            s.close()
    busy = sum(1 for a in answers if a == 503)
    if busy == 0:
        return "security", f"no connection refused over the cap ({MAX_CONNECTIONS}): {answers}"
    return "held", f"{busy} of {len(answers)} extra connections got 503 at once"


def case_slowloris_flood(d):
    """50 trickling clients for 6 s; /api/status must answer (or 503) meanwhile and 200 after."""
    stop = threading.Event()
    socks = []

    def trickle(s):
        i = 0
        while not stop.is_set() and i < 30:
            try:
                s.sendall(b"X-%d: y\r\n" % i)
            except OSError:
                return
            i += 1
            stop.wait(0.2)

    threads = []
    for _ in range(50):
        try:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=2)
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        except OSError:
            continue
        socks.append(s)
        t = threading.Thread(target=trickle, args=(s,), daemon=True)
        t.start()
        threads.append(t)
    hung = 0
    t_end = time.monotonic() + 6.0
    while time.monotonic() < t_end:
        resp, closed = exchange(d.port, request("GET", "/api/status"), timeout=2.0)
        if status_of(resp) is None and not closed:
            hung += 1
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(1.0)
    for s in socks:
        s.close()
    if hung:
        return "hang", f"/api/status hung {hung} time(s) while 50 slow clients were connected"
    if not d.status_ok(HEADER_TIMEOUT_S + 3):
        return "hang", "/api/status not back after the slow clients left"
    return "held", "status answered throughout"


def case_token_in_log(d):
    """The token is used in a query string: it must not reach the log, even at -vv."""
    req = request("POST", f"/api/nudge?token={TOKEN}", headers=("Content-Type: application/json",),
                  body=b'{"steps": 1}')
    exchange(d.port, req)
    exchange(d.port, f"GET /x?token={TOKEN} HTTP/9\r\n\r\n".encode())
    time.sleep(0.5)
    text = d.log_text()
    if TOKEN in text:
        return "security", "the token is in the daemon's log"
    return "held", "not in the log"


def case_nudge_bad_steps(d):
    """Authorised nudges with NaN, 1e308, a string, a list, a fraction: 400, the lens stays."""
    before = d.position()
    for body in (b'{"steps": NaN}', b'{"steps": 1e308}', b'{"steps": "5"}', b'{"steps": [1]}', b'{"steps": 0.5}',
                 b'{"steps": -1e400}'):
        out = expect(d.port, request("POST", "/api/nudge", headers=_auth(), body=body), (400,),
                     refused_is_security=True)
        if out[0] != "held" or out[1] != "400":
            return out[0] if out[0] != "held" else "security", f"{body!r}: {out[1]}"
    after = d.position()
    if before is not None and after != before:
        return "security", f"the lens moved {before} -> {after}"
    return "held", "all 400, the lens did not move"


def case_nested_json(d):
    """A body of 8000 nested lists (RecursionError bait) within the body limit."""
    body = b"[" * 8000 + b"]" * 8000
    return expect(d.port, request("POST", "/api/mode", headers=_auth(), body=body), (400, 413))


def case_huge_content_length(d):
    """Content-Length: 10^12 -- refused at once, nothing read."""
    return expect(d.port, request("POST", "/api/nudge", headers=_auth() + ("Content-Length: 1000000000000",),
                                  length=False), (413, 400), refused_is_security=True)


def case_captures_traversal(d):
    """``/captures/`` names that climb out of the captures folder are never served."""
    (d.work / "secret.txt").write_text("SECRET-CONTENT")
    for path in ("/captures/../secret.txt", "/captures/%2e%2e/secret.txt", "/captures/..%2fsecret.txt",
                 "/captures//etc/passwd", "/static/../../../etc/passwd", "/static/%2e%2e/%2e%2e/setup.py"):
        resp, _ = exchange(d.port, request("GET", path))
        if b"SECRET-CONTENT" in resp or b"root:x:" in resp or b"setup(" in resp:
            return "security", f"{path} served a file outside its folder"
        if status_of(resp) is not None and not 400 <= status_of(resp) < 500:
            return "security", f"{path} answered {status_of(resp)}"
    return "held", "all 4xx"


def case_slow_viewers(d):
    """12 MJPEG viewers that never read, for 6 s: the frame loop keeps >= 60 % of its fps
    (beyond max_clients they get 503; /api/status answers meanwhile)."""
    socks = []
    try:
        for _ in range(12):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(2)
            s.connect(("127.0.0.1", d.port))
            s.sendall(request("GET", "/stream.mjpg").replace(b"Connection: close\r\n", b""))
            socks.append(s)
        fps, refused = [], 0
        t_end = time.monotonic() + 6.0
        while time.monotonic() < t_end:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{d.port}/api/status", timeout=2.0) as r:
                    fps.append(json.loads(r.read())["fps"])
            except (urllib.error.URLError, OSError, ValueError):
                refused += 1
            time.sleep(0.5)
    finally:
        for s in socks:
            s.close()
    if len(fps) < 4:
        return "hang", f"/api/status answered only {len(fps)} time(s) in 6 s with 12 stalled viewers"
    low = min(fps[1:])
    if low < 0.6 * FPS:
        return "hang", f"fps fell to {low:.1f} (of {FPS}) with 12 stalled viewers: {fps}"
    return "held", f"fps {low:.1f}..{max(fps):.1f} with 12 stalled viewers ({refused} status calls refused)"


def case_sighup_bad_config(d):
    """SIGHUP with a broken config: the daemon keeps running, the old token still guards."""
    good = d.cfg_path.read_text()
    try:
        d.cfg_path.write_text(good.replace('max_clients = ', 'max_clients = "many"\nx = ').replace("[web]", "[web\n"))
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        if not d.status_ok(3):
            return "crash", "not answering after the reload"
        out = expect(d.port, request("POST", "/api/nudge", headers=("Content-Type: application/json",),
                                     body=b'{"steps": 1}'), (401,), refused_is_security=True)
        if "reload failed" not in d.log_text():
            return "wrong", "no 'reload failed' in the log"
        return out
    finally:
        d.cfg_path.write_text(good)
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)


CASES = [(name[5:], fn) for name, fn in sorted(globals().items()) if name.startswith("case_")]
_STATE = {}


def web_cases(work: Path) -> List[Case]:
    """Every ``case_*`` above against one daemon (started on the first case, stopped by
    :func:`teardown`)."""
    def run(fn):
        d = _STATE.get("daemon")
        if d is None:
            (work / "web").mkdir(exist_ok=True)
            d = _STATE["daemon"] = Daemon(work / "web")
            if not d.wait_ready():
                _STATE["dead"] = "pifocus serve did not start: " + d.log_text()[-300:]
        if "dead" in _STATE:
            return "crash", _STATE["dead"]
        try:
            outcome, detail = fn(d)
        except OSError as e:  # e.g. connection refused: the daemon is gone
            outcome, detail = "crash", f"{type(e).__name__}: {e}"
        if d.new_tracebacks() and outcome == "held":
            outcome, detail = "traceback", f"traceback in the daemon's log ({detail})"
        if not d.status_ok(HEADER_TIMEOUT_S + 3):
            outcome, detail = "crash", f"daemon not answering after the case ({detail})"
            if d.proc.poll() is not None:
                _STATE["dead"] = "the daemon died"
        return outcome, detail
    quick = {"foreign_host_get", "no_token", "get_with_body", "duplicate_content_length", "captures_traversal",
             "token_in_log", "connection_flood", "nudge_bad_steps"}
    return [Case(f"web/{name}", "web", lambda f=fn: run(f), quick=name in quick, slow=name not in quick)
            for name, fn in CASES]


def teardown() -> None:
    """Stop the daemon (SIGTERM, then SIGKILL after 5 s)."""
    d = _STATE.pop("daemon", None)
    _STATE.pop("dead", None)
    if d is not None:
        d.stop()
