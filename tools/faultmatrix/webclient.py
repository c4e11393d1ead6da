"""The daemon and the raw HTTP client of the web cases (:mod:`.web`): ``pifocus serve`` in a
subprocess on 127.0.0.1 with its log in a file, and requests written byte by byte with every
read bounded in time.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "fault-matrix-token-0123"
HEADER_TIMEOUT_S = 2.0
MAX_CONNECTIONS = 16
FPS = 20

CONFIG = """\
[source]
name = "sim"
width = 320
height = 240
realtime = true
fps = {fps}

[analysis]
use_cnn = false

[drive]
name = "sim"
state_file = "none"

[web]
host = "127.0.0.1"
port = {port}
token = "{token}"
max_clients = 4
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
        self.cfg_path = cfg
        cfg.write_text(CONFIG.format(port=self.port, token=TOKEN, maxconn=MAX_CONNECTIONS, fps=FPS,
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
        return ("held", "closed without an answer") if closed else ("hang", f"no answer in {timeout} s")
    if st in codes:
        return "held", f"{st}"
    if refused_is_security and 200 <= st < 300:
        return "security", f"answered {st}; must be refused with {codes}"
    return "held" if 400 <= st < 600 else "security", f"answered {st}; expected {codes}"


