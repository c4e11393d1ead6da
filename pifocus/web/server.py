"""The preview server: stdlib ``ThreadingHTTPServer``, one page, an MJPEG stream, a JSON API.

The routes are documented in ``API.md`` next to this file.  Every answer to ``/api/...`` is
JSON; a bad request gets a 4xx with ``{"ok": false, "error": "..."}`` and an unexpected
failure a 500 with a one-line message (the traceback goes to the log, never to the client).

The server calls into a *controller* -- the :class:`~pifocus.service.Service` -- for status
and controls, and into its :class:`~pifocus.web.preview.PreviewHub` for images.
"""

import hmac
import json
import logging
import re
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from . import WebParams

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
BOUNDARY = "pifocusframe"
MAX_BODY = 16 * 1024
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
                 ".ico": "image/x-icon", ".json": "application/json"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


class HTTPError(Exception):
    """An error answer: HTTP ``status`` and a message for the JSON body."""

    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def _json_body(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, default=str).encode()


class _Handler(BaseHTTPRequestHandler):
    server_version = "pifocus"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    # -- plumbing -----------------------------------------------------------------------------
    @property
    def web(self) -> "WebServer":
        return self.server.pifocus_web

    def log_message(self, fmt, *args):  # noqa: D102 - route http.server's log to logging
        log.debug("%s %s", self.address_string(), fmt % args)

    def setup(self):
        super().setup()
        self.connection.settimeout(15)

    def _send(self, status: int, body: bytes, ctype: str, headers: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: Optional[dict] = None) -> None:
        self._send(status, _json_body(obj), "application/json", headers)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query, keep_blank_values=True)
        path = url.path
        try:
            try:
                if method == "GET":
                    self._get(path)
                elif method == "POST":
                    self._post(path)
                else:
                    raise HTTPError(405, f"method {method} is not allowed", {"Allow": "GET, POST"})
            except HTTPError as e:
                self._drain()
                self._json(e.status, {"ok": False, "error": str(e)}, e.headers)
            except _service_error() as e:
                self._json(getattr(e, "status", 400), {"ok": False, "error": str(e)})
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as e:  # never a traceback to the client, never a dead server
            log.exception("error handling %s %s", method, path)
            try:
                self._json(500, {"ok": False, "error": f"internal error: {type(e).__name__}"})
            except OSError:
                self.close_connection = True

    def do_GET(self):  # noqa: N802
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self):  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self):  # noqa: N802
        self._dispatch("DELETE")

    def do_PATCH(self):  # noqa: N802
        self._dispatch("PATCH")

    # -- request helpers ------------------------------------------------------------------------
    def _drain(self) -> None:
        """Read an unread request body so the connection stays usable."""
        if getattr(self, "_body_read", False):
            return
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = 0
        if 0 < n <= MAX_BODY:
            self.rfile.read(n)
        elif n > MAX_BODY:
            self.close_connection = True
        self._body_read = True

    def _body(self) -> dict:
        self._body_read = True
        te = self.headers.get("Transfer-Encoding")
        if te:
            self.close_connection = True
            raise HTTPError(411, "send the body with a Content-Length (no chunked encoding)")
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise HTTPError(400, "bad Content-Length") from None
        if n < 0:
            self.close_connection = True
            raise HTTPError(400, "bad Content-Length")
        if n > MAX_BODY:
            self.close_connection = True
            raise HTTPError(413, f"request body too large ({n} bytes; at most {MAX_BODY})")
        raw = self.rfile.read(n) if n else b""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise HTTPError(415, "send Content-Type: application/json (also for an empty body)")
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise HTTPError(400, f"body is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise HTTPError(400, "body must be a JSON object, e.g. {\"steps\": 10}")
        return data

    def _check_origin(self) -> None:
        """Refuse cross-site requests: a browser's Origin must match the Host it talks to."""
        origin = self.headers.get("Origin")
        if not origin:
            return
        host = self.headers.get("Host", "")
        if urlsplit(origin).netloc.lower() != host.lower():
            raise HTTPError(403, "cross-origin request refused")

    def _check_token(self) -> None:
        token = self.web.params.token
        if token is None:
            return
        given = None
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        elif "token" in self.query:
            given = self.query["token"][-1]
        if given is None:
            raise HTTPError(401, "this control needs the token: send 'Authorization: Bearer TOKEN' "
                                 "or add ?token=TOKEN", {"WWW-Authenticate": 'Bearer realm="pifocus"'})
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPError(403, "wrong token")

    # -- GET -------------------------------------------------------------------------------------
    def _get(self, path: str) -> None:
        svc = self.web.controller
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path in ("/stream.mjpg", "/api/stream.mjpg"):
            return self._stream()
        if path == "/api/preview.jpg":
            hub = self._hub()
            pf = hub.snapshot(2.0)
            if pf is None:
                raise HTTPError(503, "no preview frame yet (camera not delivering frames)")
            return self._send(200, pf.jpeg, "image/jpeg", {"X-Frame-Index": str(pf.frame_index),
                                                            "X-Timestamp-Ns": str(pf.timestamp_ns)})
        if path == "/api/status":
            return self._json(200, svc.status())
        if path == "/api/captures":
            return self._json(200, {"ok": True, "captures": self._captures()})
        if path.startswith("/captures/"):
            return self._capture_file(path[len("/captures/"):])
        if path == "/favicon.ico":
            return self._send(204, b"", "image/x-icon")
        raise HTTPError(404, f"no such page: {path}")

    def _hub(self):
        hub = self.web.hub
        if hub is None:
            raise HTTPError(503, "the preview is not running")
        return hub

    def _static(self, name: str) -> None:
        if not _SAFE_NAME.match(name):
            raise HTTPError(404, "no such file")
        f = STATIC_DIR / name
        try:
            body = f.read_bytes()
        except OSError:
            raise HTTPError(404, f"no such file: {name}") from None
        ctype = CONTENT_TYPES.get(f.suffix, "application/octet-stream")
        self._send(200, body, ctype, {"Cache-Control": "no-cache"})

    def _stream(self) -> None:
        hub = self._hub()
        if not hub.try_join():
            raise HTTPError(503, f"too many preview clients (web.max_clients = {hub.params.max_clients})")
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for pf in hub.stream():
                if self.web.stopping or self._client_gone():
                    break
                head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(pf.jpeg)}\r\n"
                        f"X-Frame-Index: {pf.frame_index}\r\nX-Timestamp-Ns: {pf.timestamp_ns}\r\n"
                        f"X-Seq: {pf.seq}\r\n\r\n").encode()
                self.wfile.write(head + pf.jpeg + b"\r\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            pass
        finally:
            hub.leave()

    def _client_gone(self) -> bool:
        """True when the client closed its end (a stream client sends nothing after the
        request, so a readable socket means EOF or a reset)."""
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            return bool(r) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _captures_dir(self) -> Path:
        return Path(self.web.params.captures_dir)

    def _captures(self) -> list:
        d = self._captures_dir()
        try:
            files = sorted((p for p in d.iterdir() if p.suffix in (".png", ".jpg") and p.is_file()),
                           key=lambda p: p.name, reverse=True)
        except OSError:
            return []
        return [{"file": p.name, "bytes": p.stat().st_size, "url": f"/captures/{p.name}"} for p in files[:200]]

    def _capture_file(self, name: str) -> None:
        if not _SAFE_NAME.match(name) or not name.endswith((".png", ".jpg")):
            raise HTTPError(404, "no such capture")
        try:
            body = (self._captures_dir() / name).read_bytes()
        except OSError:
            raise HTTPError(404, f"no such capture: {name}") from None
        self._send(200, body, "image/png" if name.endswith(".png") else "image/jpeg",
                   {"Content-Disposition": f'attachment; filename="{name}"'})

    # -- POST ------------------------------------------------------------------------------------
    def _post(self, path: str) -> None:
        routes = {"/api/roi": self._post_roi, "/api/autofocus": self._post_autofocus,
                  "/api/nudge": self._post_nudge, "/api/capture": self._post_capture,
                  "/api/mode": self._post_mode}
        fn = routes.get(path)
        if fn is None:
            if path in ("/api/status", "/stream.mjpg", "/api/preview.jpg", "/api/captures"):
                raise HTTPError(405, f"{path} takes GET", {"Allow": "GET"})
            raise HTTPError(404, f"no such API: POST {path}")
        self._check_origin()
        self._check_token()
        body = self._body()
        fn(body)

    @staticmethod
    def _only(body: dict, allowed) -> None:
        extra = sorted(set(body) - set(allowed))
        if extra:
            raise HTTPError(400, f"unknown field(s) {', '.join(extra)}; allowed: {', '.join(allowed) or 'none'}")

    def _post_roi(self, body: dict) -> None:
        self._only(body, ("roi",))
        if "roi" not in body:
            raise HTTPError(400, "give {\"roi\": [x, y, w, h]} in normalized frame coordinates (0..1), "
                                 "or {\"roi\": null} for the default region")
        roi = self.web.controller.set_roi(body["roi"])
        self._json(200, {"ok": True, "roi": [round(float(v), 5) for v in roi]})

    def _post_autofocus(self, body: dict) -> None:
        self._only(body, ("strategy",))
        strategy = body.get("strategy")
        if strategy is not None and (not isinstance(strategy, str) or not strategy.strip()):
            raise HTTPError(400, "strategy must be a strategy name string")
        state = self.web.controller.start_autofocus(strategy)
        self._json(202, {"ok": True, "autofocus": state})

    def _post_nudge(self, body: dict) -> None:
        self._only(body, ("steps",))
        if "steps" not in body:
            raise HTTPError(400, "give {\"steps\": N} (signed integer; + moves towards far)")
        out = self.web.controller.nudge(body["steps"])
        self._json(200, {"ok": True, **out})

    def _post_capture(self, body: dict) -> None:
        self._only(body, ("format",))
        fmt = body.get("format")
        if fmt is not None and not isinstance(fmt, str):
            raise HTTPError(400, "format must be 'png' or 'jpg'")
        out = self.web.controller.capture(fmt)
        out["url"] = f"/captures/{out['file']}"
        self._json(201, {"ok": True, **out})

    def _post_mode(self, body: dict) -> None:
        self._only(body, ("analysis", "peaking", "outputs"))
        if not body:
            raise HTTPError(400, "give {\"analysis\": \"cnn\"|\"laplacian\"}, {\"peaking\": true|false} "
                                 "and/or {\"outputs\": true|false}")
        out = {}
        if "outputs" in body:
            if not isinstance(body["outputs"], bool):
                raise HTTPError(400, "outputs must be true or false")
            out["outputs"] = self.web.controller.set_outputs(body["outputs"])
        if "peaking" in body:
            if not isinstance(body["peaking"], bool):
                raise HTTPError(400, "peaking must be true or false")
            out["peaking"] = self.web.controller.set_peaking(body["peaking"])
        if "analysis" in body:
            if not isinstance(body["analysis"], str):
                raise HTTPError(400, "analysis must be 'cnn' or 'laplacian'")
            out["analysis"] = self.web.controller.set_analysis_mode(body["analysis"])
        self._json(200, {"ok": True, **out})


def _service_error():
    from ..service import ServiceError
    return ServiceError


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # noqa: D102 - log, don't print
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class WebServer:
    """The preview/API server in a background thread.

    Args:
        controller: the object behind the API (a :class:`~pifocus.service.Service`): needs
            ``status()``, ``set_roi()``, ``start_autofocus()``, ``nudge()``, ``capture()``,
            ``set_analysis_mode()``, ``set_peaking()`` and a ``hub`` attribute.
        params: :class:`~pifocus.web.WebParams`.

    Raises:
        ConfigError: (on :meth:`start`) the address cannot be bound.
    """

    def __init__(self, controller, params: WebParams):
        self.controller = controller
        self.params = params
        self.stopping = False
        self._httpd: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def hub(self):
        """The controller's preview hub."""
        return getattr(self.controller, "hub", None)

    @property
    def address(self):
        """``(host, port)`` actually bound (port resolved when configured as 0)."""
        return self._httpd.server_address[:2] if self._httpd else (self.params.host, self.params.port)

    @property
    def url(self) -> str:
        """Base URL of the page."""
        host, port = self.address
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def start(self) -> "WebServer":
        """Bind and serve in a daemon thread.

        Raises:
            ConfigError: the port is taken or the address is not local.
        """
        from ..exc import ConfigError

        p = self.params
        cls = _Server
        if ":" in p.host:
            class _Server6(_Server):
                address_family = socket.AF_INET6
            cls = _Server6
        try:
            self._httpd = cls((p.host, p.port), _Handler)
        except OSError as e:
            raise ConfigError(f"web: cannot listen on {p.host}:{p.port}: {e.strerror or e}; "
                              "pick another web.port or stop what uses it") from None
        self._httpd.pifocus_web = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="pifocus-web", daemon=True)
        self._thread.start()
        if p.exposed:
            log.warning("web page reachable from the network at %s (controls need the token)", self.url)
        else:
            log.info("web page at %s (this machine only)", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (streams end with the hub)."""
        self.stopping = True
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
