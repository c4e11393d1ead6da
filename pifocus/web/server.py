"""The preview server: stdlib ``ThreadingHTTPServer``, one page, an MJPEG stream, a JSON API.

The routes are documented in ``API.md`` next to this file.  Every answer to ``/api/...`` is
JSON; a bad request gets a 4xx with ``{"ok": false, "error": "..."}`` and an unexpected
failure a 500 with a one-line message (the traceback goes to the log, never to the client).

The server knows the service only as a :class:`pifocus.controls.Controls` -- status and
controls, and its preview hub for images.  It never imports :mod:`pifocus.service`.
Request parsing and checks are in :mod:`.request`, the page and stills in :mod:`.files`,
the MJPEG stream in :mod:`.stream`.
"""

import functools
import io
import logging
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from ..controls import Controls
from ..exc import ConfigError, ServiceError
from . import WebParams, files, is_loopback, request
from .files import CONTENT_TYPES, STATIC_DIR
from .httpd import AddressInUse, DeadlineReader, HTTPServer, bind, check_exposure
from .request import MAX_BODY, HTTPError, only
from .stream import BOUNDARY, serve_stream
from .tools import VIEW_FIELDS, ToolRoutes

# The constants kept their old home here too (they were defined in this module).
__all__ = ["WebServer", "check_exposure", "HTTPError", "BOUNDARY", "CONTENT_TYPES", "MAX_BODY", "STATIC_DIR"]

log = logging.getLogger(__name__)

#: Seconds a connection may stay silent (a read or a write).
IO_TIMEOUT_S = 15.0
#: Seconds a request body may take to arrive (at most 16 KB).
BODY_TIMEOUT_S = 10.0

#: Paths that answer GET only: a POST to them is a 405, any other unknown POST a 404.
GET_ONLY = ("/api/status", "/stream.mjpg", "/api/preview.jpg", "/api/captures", "/api/zoom")


class _Handler(ToolRoutes, BaseHTTPRequestHandler):
    """One HTTP connection: dispatch to the route tables, answer JSON, never crash.

    ``GET_ROUTES``/``POST_ROUTES`` map a path to a method name; ``GET_PREFIXES`` map a path
    prefix to a method that takes the rest of the path.
    """

    server_version = "pifocus"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    GET_ROUTES = {"/": "_get_page", "/index.html": "_get_page", "/stream.mjpg": "_get_stream",
                  "/api/stream.mjpg": "_get_stream", "/api/preview.jpg": "_get_preview",
                  "/api/status": "_get_status", "/api/captures": "_get_captures",
                  "/favicon.ico": "_get_favicon", "/api/zoom": "_get_zoom",
                  "/api/presets": "_get_presets"}
    GET_PREFIXES = (("/static/", "_get_static"), ("/captures/", "_get_capture_file"))
    POST_ROUTES = {"/api/roi": "_post_roi", "/api/autofocus": "_post_autofocus",
                   "/api/nudge": "_post_nudge", "/api/capture": "_post_capture", "/api/mode": "_post_mode",
                   "/api/autofocus/cancel": "_post_af_cancel", "/api/presets": "_post_presets",
                   "/api/stack": "_post_stack"}

    # -- plumbing -----------------------------------------------------------------------------
    @property
    def web(self) -> "WebServer":
        """The :class:`WebServer` this connection belongs to."""
        return self.server.pifocus_web

    @property
    def controls(self) -> Controls:
        """The service's controls."""
        return self.web.controls

    def log_message(self, fmt, *args):  # noqa: D102 - route http.server's log to logging; no token
        log.debug("%s %s", self.address_string(), request.redact(fmt % args, self.web.params.token))

    def setup(self):
        """Connection set-up: reads go through a :class:`~.httpd.DeadlineReader` (a request
        head must arrive within ``header_timeout_s``, a body within :data:`BODY_TIMEOUT_S`);
        a client silent for :data:`IO_TIMEOUT_S` is dropped."""
        super().setup()
        self.rfile.close()  # replaced: the stdlib's buffered socket file has no deadline
        self._reader = DeadlineReader(self.connection, IO_TIMEOUT_S)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self):
        """One request on the connection, its head (request line and headers) within
        ``header_timeout_s``; an idle keep-alive connection is closed after as long."""
        self._body_read = False
        self._reader.deadline = time.monotonic() + float(self.web.params.header_timeout_s)
        super().handle_one_request()

    def send_error(self, code, message=None, explain=None):
        """The stdlib's own errors (bad request line, 414, 431, 501, 505 ...) as JSON like
        every other answer, and the connection closed."""
        try:
            text = message or HTTPStatus(code).phrase
        except ValueError:
            text = "error"
        self.log_error("code %d, message %s", code, text)
        self.close_connection = True
        body = request.json_body({"ok": False, "error": text})
        self.send_response(code, HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else None)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 205, 304):
            self.wfile.write(body)

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
        self._send(status, request.json_body(obj), "application/json", headers)

    def _dispatch(self, method: str) -> None:
        self._reader.deadline = time.monotonic() + BODY_TIMEOUT_S
        self._framing_ok = False
        url = urlsplit(self.path)
        self.query = parse_qs(url.query, keep_blank_values=True)
        path = url.path
        try:
            try:
                request.check_framing(method, self.headers)
                self._framing_ok = True
                request.check_host(self.headers, self._addresses(), self.web.params.allowed_hosts)
                if method == "GET":
                    self._get(path)
                elif method == "POST":
                    self._post(path)
                else:
                    raise HTTPError(405, f"method {method} is not allowed", {"Allow": "GET, POST"})
            except HTTPError as e:
                if e.close:
                    self.close_connection = True
                self._drain()
                self._json(e.status, {"ok": False, "error": str(e)}, e.headers)
            except ServiceError as e:
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
        """Answer a GET."""
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        """Answer a POST."""
        self._dispatch("POST")

    def do_PUT(self):  # noqa: N802
        """Refuse a PUT (405)."""
        self._dispatch("PUT")

    def do_DELETE(self):  # noqa: N802
        """Refuse a DELETE (405)."""
        self._dispatch("DELETE")

    def do_PATCH(self):  # noqa: N802
        """Refuse a PATCH (405)."""
        self._dispatch("PATCH")

    # -- request helpers ------------------------------------------------------------------------
    def _addresses(self):
        """This server's own names for the Host check: the bound address, the one this
        client connected to (they differ on a wildcard bind) and the machine's host name
        (``rig`` and ``rig.local``, mDNS)."""
        out = [str(self.server.server_address[0]), *own_host_names()]
        try:
            local = str(self.connection.getsockname()[0])
        except OSError:
            return out
        out.append(local)
        if local.startswith("::ffff:"):
            out.append(local[7:])  # IPv4 client on an IPv6 socket
        return out

    def _drain(self) -> None:
        """Read an unread request body so the connection stays usable (not when its length
        is in doubt: then the connection is closed unread)."""
        if getattr(self, "_body_read", False):
            return
        if not getattr(self, "_framing_ok", False):
            self.close_connection = True
            return
        if not request.drain(self.headers, self.rfile):
            self.close_connection = True
        self._body_read = True

    def _body(self) -> dict:
        """The JSON object the request sent (see :func:`.request.read_json_body`)."""
        self._body_read = True
        return request.read_json_body(self.headers, self.rfile)

    def _hub(self):
        hub = self.web.hub
        if hub is None:
            raise HTTPError(503, "the preview is not running")
        return hub

    def _captures_dir(self) -> Path:
        return Path(self.web.params.captures_dir)

    # -- GET -------------------------------------------------------------------------------------
    def _get(self, path: str) -> None:
        name = self.GET_ROUTES.get(path)
        if name is not None:
            return getattr(self, name)()
        for prefix, name in self.GET_PREFIXES:
            if path.startswith(prefix):
                return getattr(self, name)(path[len(prefix):])
        raise HTTPError(404, f"no such page: {path}")

    def _get_page(self) -> None:
        self._get_static("index.html")

    def _get_static(self, name: str) -> None:
        body, ctype = files.static_file(name)
        self._send(200, body, ctype, {"Cache-Control": "no-cache"})

    def _get_stream(self) -> None:
        serve_stream(self, self._hub(), lambda: self.web.stopping)

    def _get_preview(self) -> None:
        pf = self._hub().snapshot(2.0)
        if pf is None:
            raise HTTPError(503, "no preview frame yet (camera not delivering frames)")
        self._send(200, pf.jpeg, "image/jpeg", {"X-Frame-Index": str(pf.frame_index),
                                                "X-Timestamp-Ns": str(pf.timestamp_ns)})

    def _get_status(self) -> None:
        self._json(200, self.controls.status())

    def _get_captures(self) -> None:
        self._json(200, {"ok": True, "captures": files.list_captures(self._captures_dir())})

    def _get_capture_file(self, name: str) -> None:
        body, ctype = files.capture_file(self._captures_dir(), name)
        self._send(200, body, ctype, {"Content-Disposition": f'attachment; filename="{name}"'})

    def _get_favicon(self) -> None:
        self._send(204, b"", "image/x-icon")

    # -- POST ------------------------------------------------------------------------------------
    def _post(self, path: str) -> None:
        name = self.POST_ROUTES.get(path)
        if name is None:
            if path in GET_ONLY:
                raise HTTPError(405, f"{path} takes GET", {"Allow": "GET"})
            raise HTTPError(404, f"no such API: POST {path}")
        request.check_origin(self.headers)
        request.check_token(self.headers, self.query, self.web.params.token)
        body = self._body()
        getattr(self, name)(body)

    def _post_roi(self, body: dict) -> None:
        only(body, ("roi",))
        if "roi" not in body:
            raise HTTPError(400, "give {\"roi\": [x, y, w, h]} in normalized frame coordinates (0..1), "
                                 "or {\"roi\": null} for the default region")
        roi = self.controls.set_roi(body["roi"])
        self._json(200, {"ok": True, "roi": [round(float(v), 5) for v in roi]})

    def _post_autofocus(self, body: dict) -> None:
        only(body, ("strategy",))
        strategy = body.get("strategy")
        if strategy is not None and (not isinstance(strategy, str) or not strategy.strip()):
            raise HTTPError(400, "strategy must be a strategy name string")
        state = self.controls.start_autofocus(strategy)
        self._json(202, {"ok": True, "autofocus": state})

    def _post_nudge(self, body: dict) -> None:
        only(body, ("steps",))
        if "steps" not in body:
            raise HTTPError(400, "give {\"steps\": N} (signed integer; + moves towards far)")
        out = self.controls.nudge(body["steps"])
        self._json(200, {"ok": True, **out})

    def _post_capture(self, body: dict) -> None:
        only(body, ("format",))
        fmt = body.get("format")
        if fmt is not None and not isinstance(fmt, str):
            raise HTTPError(400, "format must be 'png', 'jpg' or 'dng'")
        out = self.controls.capture(fmt)
        out["url"] = f"/captures/{out['file']}"
        self._json(201, {"ok": True, **out})

    def _post_mode(self, body: dict) -> None:
        only(body, ("analysis", "peaking", "outputs") + VIEW_FIELDS)
        if not body:
            raise HTTPError(400, "give {\"analysis\": \"cnn\"|\"laplacian\"}, {\"peaking\": true|false}, "
                                 "{\"outputs\": true|false}, {\"zebra\": true|false} and/or {\"peaking_colour\": NAME}")
        out = self._view_modes(body)
        if "outputs" in body:
            out["outputs"] = self.controls.set_outputs(_flag(body, "outputs", "outputs must be true or false"))
        if "peaking" in body:
            out["peaking"] = self.controls.set_peaking(_flag(body, "peaking", "peaking must be true or false"))
        if "analysis" in body:
            if not isinstance(body["analysis"], str):
                raise HTTPError(400, "analysis must be 'cnn' or 'laplacian'")
            out["analysis"] = self.controls.set_analysis_mode(body["analysis"])
        self._json(200, {"ok": True, **out})


@functools.lru_cache(maxsize=1)
def own_host_names() -> tuple:
    """This machine's host name, also with ``.local`` (how a phone reaches it by mDNS)."""
    name = socket.gethostname().lower().rstrip(".")
    return (name, f"{name}.local") if name and "." not in name else (name,)


def _flag(body: dict, key: str, message: str) -> bool:
    """``body[key]`` when it is a JSON boolean.

    Raises:
        HTTPError: 400 ``message`` otherwise.
    """
    if not isinstance(body[key], bool):
        raise HTTPError(400, message)
    return body[key]


class WebServer:
    """The preview/API server in a background thread.

    Args:
        controls: the service's :class:`~pifocus.controls.Controls` -- everything the API
            does goes through it (status, the controls, its ``hub`` for images).
        params: :class:`~pifocus.web.WebParams`.

    The token rule -- reachable beyond this machine means a token is required -- is checked
    against the address actually bound (:func:`check_exposure`), on :meth:`bind` and on
    every :meth:`rebind`.

    Raises:
        ConfigError: (on :meth:`start`) the address cannot be bound, or is bound beyond
            localhost without a token.
    """

    def __init__(self, controls: Controls, params: WebParams):
        self.controls = controls
        self._httpd: Optional[HTTPServer] = None
        self.params = params
        self.stopping = False
        self._thread: Optional[threading.Thread] = None

    @property
    def params(self) -> WebParams:
        """The running :class:`~pifocus.web.WebParams` (set by a reload: the connection cap
        follows at once; host/port only move with :meth:`rebind`)."""
        return self._params

    @params.setter
    def params(self, params: WebParams) -> None:
        self._params = params
        if self._httpd is not None:
            self._httpd.max_connections = int(params.max_connections)

    @property
    def controller(self) -> Controls:
        """The former name of :attr:`controls`."""
        return self.controls

    @property
    def hub(self):
        """The controls' preview hub (None when the preview is not running)."""
        return getattr(self.controls, "hub", None)

    @property
    def address(self):
        """``(host, port)`` actually bound (port resolved when configured as 0)."""
        return self._httpd.server_address[:2] if self._httpd else (self.params.host, self.params.port)

    @property
    def exposed(self) -> bool:
        """True when the bound address is reachable from other machines."""
        return not is_loopback(str(self.address[0]))

    @property
    def url(self) -> str:
        """Base URL of the page."""
        host, port = self.address
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def start(self) -> "WebServer":
        """Bind and serve in a daemon thread.

        Raises:
            ConfigError: the port is taken, or the address is not local and there is no token.
        """
        return self.bind().serve()

    def bind(self) -> "WebServer":
        """Bind the socket (not serving yet; :meth:`serve` starts that).

        Raises:
            ConfigError: the port is taken, or the address is not local and there is no token.
        """
        self._httpd = bind(self.params, _Handler)
        return self

    def serve(self) -> "WebServer":
        """Serve the bound socket in a daemon thread."""
        self.stopping = False
        self._httpd.pifocus_web = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="pifocus-web", daemon=True)
        self._thread.start()
        if self.exposed:
            log.warning("web page reachable from the network at %s (controls need the token)", self.url)
        else:
            log.info("web page at %s (this machine only)", self.url)
        return self

    def prepare(self, params: WebParams) -> Optional[HTTPServer]:
        """First half of a move to ``params``' host/port: bind the new socket now, while the
        old one still serves.

        Returns the bound (not yet serving) socket for :meth:`rebind`, or None when the new
        address overlaps the old one (same port) and can only be bound once the old is closed.

        Raises:
            ConfigError: the new address cannot be bound, or would be reachable beyond
                localhost without a token.
        """
        try:
            return bind(params, _Handler)
        except AddressInUse:
            if int(params.port) == int(self.address[1]):
                return None
            raise ConfigError(f"web: cannot listen on {params.host}:{params.port}: address in use; "
                              "pick another web.port or stop what uses it") from None

    def rebind(self, params: WebParams, httpd: Optional[HTTPServer] = None) -> None:
        """Move to ``params``' host/port: stop the old socket, end its connections, serve on
        ``httpd`` (from :meth:`prepare`) or bind the new address now.  When that fails the
        old address is bound again and the error raised.

        Raises:
            ConfigError: the new address cannot be bound (the old one serves again).
        """
        old_params = self.params
        self._close_socket()
        if httpd is None:
            try:
                httpd = bind(params, _Handler)
            except ConfigError:
                log.error("web: cannot move to %s:%s; listening on %s:%s again", params.host, params.port,
                          old_params.host, old_params.port)
                self._httpd = bind(old_params, _Handler)
                self.serve()
                raise
        self._httpd = httpd
        self.params = params
        self.serve()
        log.info("web server moved to %s", self.url)

    def stop(self) -> None:
        """Stop serving, close the listening socket and end open connections (streams end)."""
        self.stopping = True
        self._close_socket()

    def _close_socket(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            self.stopping = True
            httpd.shutdown()
            httpd.server_close()
            httpd.close_connections()
