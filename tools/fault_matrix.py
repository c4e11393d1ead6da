#!/usr/bin/env python3
"""Fault matrix of the web server: slow clients, many connections, rebinding Host, framing.

Starts ``pifocus serve --config`` as a subprocess on 127.0.0.1 (sim source, sim drive, mock
GPIO, a token, ``-vv`` logging to a file), runs each case against it with bounded loops and
timeouts, and after every case checks that the daemon is alive and answers ``/api/status``.
Every case ends in one outcome:

* ``clean``    -- refused or answered as API.md says (a JSON 4xx/5xx, or the connection closed
  in time);
* ``traceback``-- a traceback in an answer or a new one in the daemon's log;
* ``hang``     -- no answer and no close within the case's bound;
* ``crash``    -- the daemon died or stopped answering ``/api/status``;
* ``security`` -- something that must be refused got through (a foreign Host served, a GET
  body run as a request, a control without the token, a slow client kept, the token in
  the log).

    python tools/fault_matrix.py             # all cases, about 20 s
    python tools/fault_matrix.py --only host # cases whose name contains "host"
    python tools/fault_matrix.py --json      # the summary as one JSON line too

Not part of the test suite (it takes tens of seconds).  Exit status 0 when every case is
``clean``, 1 otherwise, 2 when the daemon would not start.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "fault-matrix-token-0123"
HEADER_TIMEOUT_S = 2.0
MAX_CONNECTIONS = 16
OUTCOMES = ("clean", "traceback", "hang", "crash", "security")

CONFIG = """\
[source]
name = "sim"
width = 320
height = 240
realtime = true
fps = 20

[analysis]
use_cnn = false

[drive]
name = "sim"
state_file = "none"

[web]
host = "127.0.0.1"
port = {port}
token = "{token}"
max_clients = 2
max_connections = {maxconn}
header_timeout_s = {header_timeout}
allowed_hosts = ["rig.local"]
captures_dir = "{captures}"
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """``pifocus serve`` in a subprocess, its log in a file."""

    def __init__(self, work: Path):
        self.port = free_port()
        self.work = work
        cfg = work / "pifocus.toml"
        cfg.write_text(CONFIG.format(port=self.port, token=TOKEN, maxconn=MAX_CONNECTIONS,
                                     header_timeout=HEADER_TIMEOUT_S, captures=work / "captures"))
        self.log_path = work / "serve.log"
        env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock",
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(k, None)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-c", "import sys; from pifocus.cli import main; "
                                      "sys.exit(main())", "serve", "--config", str(cfg), "-vv"],
                                     cwd=work, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self._tracebacks_seen = 0

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """True once ``/api/status`` answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.status_ok(1.0):
                return True
            time.sleep(0.2)
        return False

    def status_ok(self, timeout: float = 3.0) -> bool:
        """True when the daemon is alive and ``/api/status`` answers 200 within ``timeout``."""
        if self.proc.poll() is not None:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status", timeout=1.0) as r:
                    return r.status == 200
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        return False

    def position(self):
        """The drive position from ``/api/status`` (None when unknown)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status", timeout=2.0) as r:
                return json.loads(r.read())["drive"]["position"]
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return None

    def log_text(self) -> str:
        """The daemon's log so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def new_tracebacks(self) -> int:
        """Tracebacks logged since the last call."""
        n = self.log_text().count("Traceback")
        new, self._tracebacks_seen = n - self._tracebacks_seen, n
        return new

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


# -- raw HTTP helpers (every read bounded) -------------------------------------------------------
def exchange(port: int, data: bytes, timeout: float = 3.0):
    """Send ``data`` on a new connection; ``(bytes read, closed by the server in time)``."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out, closed = b"", False
    try:
        s.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            out += chunk
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    finally:
        s.close()
    return out, closed


def status_of(resp: bytes):
    """The HTTP status code of a raw answer (None when there is none)."""
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def request(method: str, path: str, host: str = "127.0.0.1", headers=(), body: bytes = b"",
            length: bool = True) -> bytes:
    """A raw HTTP/1.1 request, ``Connection: close``."""
    lines = [f"{method} {path} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += list(headers)
    if length and (body or method == "POST"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _auth():
    return ("Authorization: Bearer " + TOKEN, "Content-Type: application/json")


# -- the cases: each returns (outcome, detail) ---------------------------------------------------
def expect(port, data, codes, timeout=3.0, refused_is_security=False):
    """Outcome of one exchange that must be answered with one of ``codes``."""
    resp, closed = exchange(port, data, timeout)
    st = status_of(resp)
    if b"Traceback" in resp:
        return "traceback", f"traceback in the answer ({st})"
    if st is None:
        return ("clean", "closed without an answer") if closed else ("hang", f"no answer in {timeout} s")
    if st in codes:
        return "clean", f"{st}"
    if refused_is_security and 200 <= st < 300:
        return "security", f"answered {st}; must be refused with {codes}"
    return "clean" if 400 <= st < 600 else "security", f"answered {st}; expected {codes}"


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
    return "clean", "client went away"


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
                    return "clean", f"dropped after {time.monotonic() - t0:.1f} s"
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return "clean", f"dropped after {time.monotonic() - t0:.1f} s"
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
                    return "clean", f"ended after {time.monotonic() - t0:.1f} s ({status_of(data) or 'closed'})"
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return "clean", f"dropped after {time.monotonic() - t0:.1f} s"
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
    return "clean", f"{busy} of {len(answers)} extra connections got 503 at once"


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
    return "clean", "status answered throughout"


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
    return "clean", "not in the log"


CASES = [(name[5:], fn) for name, fn in sorted(globals().items()) if name.startswith("case_")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="WORD", help="run only the cases whose name contains WORD")
    ap.add_argument("--json", action="store_true", help="print the summary as one JSON line too")
    args = ap.parse_args(argv)
    cases = [(n, f) for n, f in CASES if not args.only or args.only in n]
    results = []
    with tempfile.TemporaryDirectory(prefix="pifocus-faults-") as tmp:
        d = Daemon(Path(tmp))
        try:
            if not d.wait_ready():
                print("pifocus serve did not start; its log:\n" + d.log_text()[-3000:], file=sys.stderr)
                return 2
            t_all = time.monotonic()
            for name, fn in cases:
                t0 = time.monotonic()
                try:
                    outcome, detail = fn(d)
                except OSError as e:  # e.g. connection refused: the daemon is gone
                    outcome, detail = "crash", f"{type(e).__name__}: {e}"
                if d.new_tracebacks() and outcome == "clean":
                    outcome, detail = "traceback", f"traceback in the daemon's log ({detail})"
                if not d.status_ok(HEADER_TIMEOUT_S + 3):
                    outcome, detail = "crash", f"daemon not answering after the case ({detail})"
                results.append({"case": name, "outcome": outcome, "detail": detail,
                                "seconds": round(time.monotonic() - t0, 2)})
                print(f"{name:32s} {outcome:10s} {time.monotonic() - t0:5.1f} s  {detail}", flush=True)
                if outcome == "crash" and d.proc.poll() is not None:
                    print("the daemon died; stopping", file=sys.stderr)
                    break
            elapsed = time.monotonic() - t_all
        finally:
            d.stop()
    counts = {o: sum(1 for r in results if r["outcome"] == o) for o in OUTCOMES}
    print(f"\n{len(results)} cases in {elapsed:.0f} s: {counts['clean']} clean errors, {counts['traceback']} "
          f"tracebacks, {counts['hang']} hangs, {counts['crash']} crashes, {counts['security']} security failures")
    if args.json:
        print(json.dumps({"cases": len(results), **counts, "results": results}))
    return 0 if counts["clean"] == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
