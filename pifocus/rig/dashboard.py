"""``pifocus rig``: the rig dashboard -- one page for every camera, served by the standard
library's ``ThreadingHTTPServer`` (like the phone page), fed by a
:class:`~pifocus.rig.view.RigView` on the broker.

Routes (JSON answers; a bad request gets ``{"ok": false, "error": ...}``):

* ``GET /`` -- the page (``static/rig.html``, ``rig.js``, ``rig.css``);
* ``GET /api/rig`` -- every camera's state, events and the recent commands with their
  replies (and, for captures, the spread of the actual times);
* ``GET /api/thumb/<camera>.jpg`` -- the camera's latest thumbnail;
* ``POST /api/command`` ``{"name": "autofocus", "target": "all" | camera, "args": {...}}``
  -- send a command (``capture`` to ``all`` without ``at`` is named 2 s ahead); answers
  ``{"ok": true, "id": ...}`` at once, the replies arrive in ``/api/rig``.

POSTs follow the web page's rules (:mod:`pifocus.web.request`): same-origin only, and the
``[web] token`` when one is set (required when the page is bound beyond localhost).
"""

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from ..exc import ConfigError
from ..web import is_loopback
from ..web.request import HTTPError, check_origin, check_token
from . import ALL, NAME_RE
from .topics import COMMANDS

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"rig.html": "text/html; charset=utf-8", "rig.js": "text/javascript; charset=utf-8",
                "rig.css": "text/css; charset=utf-8"}
#: Largest POST body, bytes.
MAX_BODY = 16 * 1024
#: Seconds ahead a "capture all" from the page is named, so every camera gets it in time.
CAPTURE_AHEAD_S = 2.0


class _Handler(BaseHTTPRequestHandler):
    server_version = "pifocus-rig"
    sys_version = ""

    def log_message(self, fmt, *args):  # noqa: D102 - to logging, never the token
        log.debug("%s %s", self.address_string(), (fmt % args).split("token=")[0])

    @property
    def dash(self) -> "RigDashboard":
        """The dashboard this request belongs to."""
        return self.server.pifocus_dashboard

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj, allow_nan=False, default=str).encode(), "application/json")

    def _run(self, fn) -> None:
        try:
            fn()
        except HTTPError as e:
            self._json(e.status, {"ok": False, "error": str(e)})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # one line to the client, the traceback to the log
            log.exception("rig dashboard: %s %s", self.command, self.path)
            self._json(500, {"ok": False, "error": f"internal error: {type(e).__name__}"})

    def do_GET(self):  # noqa: N802
        """The page, its files, ``/api/rig`` and the thumbnails."""
        self._run(self._get)

    def do_POST(self):  # noqa: N802
        """``/api/command``."""
        self._run(self._post)

    def _get(self) -> None:
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            path = "/static/rig.html"
        if path.startswith("/static/") and path[8:] in STATIC_FILES:
            self._send(200, (STATIC_DIR / path[8:]).read_bytes(), STATIC_FILES[path[8:]])
        elif path == "/api/rig":
            self._json(200, dict(self.dash.view.snapshot(), ok=True))
        elif path.startswith("/api/thumb/") and path.endswith(".jpg"):
            jpeg = self.dash.view.thumb(path[len("/api/thumb/"):-4])
            if jpeg is None:
                raise HTTPError(404, "no thumbnail from that camera (yet)")
            self._send(200, jpeg, "image/jpeg")
        elif path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        else:
            raise HTTPError(404, f"no such page: GET {path}")

    def _post(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/api/command":
            raise HTTPError(404, f"no such API: POST {url.path}")
        check_origin(self.headers)
        check_token(self.headers, parse_qs(url.query), self.dash.token)
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise HTTPError(400, "bad Content-Length") from None
        if not 0 <= n <= MAX_BODY:
            raise HTTPError(413, f"body of {n} bytes is too large; allowed: up to {MAX_BODY}")
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            raise HTTPError(400, "the body must be JSON: {\"name\": ..., \"target\": ..., \"args\": {...}}") from None
        cmd_id = self.dash.command(body if isinstance(body, dict) else {})
        self._json(202, {"ok": True, "id": cmd_id})


class RigDashboard:
    """The ``pifocus rig`` page server.

    Args:
        view: a started :class:`~pifocus.rig.view.RigView`.
        host, port: where to serve the page (port 0 = any free one).
        token: the page's token for commands (required when ``host`` is not loopback).

    Raises:
        ConfigError: exposed without a token; the port is taken.
    """

    def __init__(self, view, host: str = "127.0.0.1", port: int = 8090, token: Optional[str] = None):
        if token is None and not is_loopback(host):
            raise ConfigError(f"--host {host} exposes the rig's controls beyond this machine; set [web] token "
                              "(or bind 127.0.0.1 and use an SSH tunnel)")
        self.view = view
        self.token = token
        try:
            self.httpd = ThreadingHTTPServer((host, port), _Handler)
        except OSError as e:
            raise ConfigError(f"cannot serve the rig page on {host}:{port}: {e}; pick another --port") from e
        self.httpd.daemon_threads = True
        self.httpd.pifocus_dashboard = self
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        """The page's address."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "RigDashboard":
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="pifocus-rig-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def command(self, body: dict) -> str:
        """Send the command a page POST describes; returns its id.

        Raises:
            HTTPError: (400) unknown command, target or arguments.
        """
        extra = sorted(set(body) - {"name", "target", "args"})
        if extra:
            raise HTTPError(400, f"unknown field(s) {', '.join(extra)}; allowed: name, target, args")
        name, target, args = body.get("name"), body.get("target", ALL), body.get("args") or {}
        if name not in COMMANDS:
            raise HTTPError(400, f"name = {name!r} is unknown; use one of {', '.join(COMMANDS)}")
        if not isinstance(target, str) or not (target == ALL or NAME_RE.match(target)):
            raise HTTPError(400, f"target = {target!r} is invalid; use \"all\" or a camera name")
        if not isinstance(args, dict):
            raise HTTPError(400, "args must be an object, e.g. {\"steps\": 50}")
        if name == "capture" and target == ALL and "at" not in args:
            return self.view.capture_all(CAPTURE_AHEAD_S, args.get("format"))
        return self.view.send(name, args, target)
