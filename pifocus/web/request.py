"""Reading and checking API requests: framing, the Host and Origin checks, the JSON body,
the token.

The functions take the parts of a request they need (headers, the body stream, the query)
rather than the handler, so each rule of ``API.md`` "Conventions" sits in one small place.
"""

import hmac
import ipaddress
import json
import re
from typing import Iterable, Optional, Sequence
from urllib.parse import urlsplit

MAX_BODY = 16 * 1024
_DIGITS = re.compile(r"[0-9]{1,15}")
_TOKEN_IN_TEXT = re.compile(r"(?i)(token=)[^&\s'\"]*")


class HTTPError(Exception):
    """An error answer: HTTP ``status`` and a message for the JSON body.

    Attributes:
        status: the HTTP status code.
        headers: extra response headers (e.g. ``Allow``, ``WWW-Authenticate``).
        close: the connection must be closed after the answer (its body was not read).
    """

    def __init__(self, status: int, message: str, headers: Optional[dict] = None, close: bool = False):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.close = close


def json_body(obj) -> bytes:
    """``obj`` as compact JSON bytes (NaN refused; unknown types as ``str``)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, default=str).encode()


def drain(headers, rfile) -> bool:
    """Read an unread request body so the connection stays usable; returns False when the
    body is too large to read and the connection must be closed."""
    try:
        n = int(headers.get("Content-Length") or 0)
    except ValueError:
        n = 0
    if 0 < n <= MAX_BODY:
        rfile.read(n)
    return n <= MAX_BODY


def check_framing(method: str, headers) -> None:
    """Refuse a request whose body length is ambiguous, or a body where none belongs.

    At most one ``Content-Length``, decimal digits only; a GET (or HEAD) carries no body (a
    GET with a body was once read as the next request on the connection: request
    smuggling).  Other methods' bodies are drained before their answer.

    Raises:
        HTTPError: 400 duplicate or invalid ``Content-Length``, or a body on a GET; ``close``
            is set (the connection is not reused).
    """
    lengths = headers.get_all("Content-Length") or []
    if len(lengths) > 1:
        raise HTTPError(400, "more than one Content-Length header; send exactly one", close=True)
    if lengths and not _DIGITS.fullmatch(lengths[0].strip(" \t")):
        raise HTTPError(400, f"bad Content-Length {lengths[0][:40]!r}: give the body size in bytes", close=True)
    if method in ("GET", "HEAD"):
        if headers.get("Transfer-Encoding") or (lengths and int(lengths[0]) > 0):
            raise HTTPError(400, f"a {method} request takes no body; send data with POST", close=True)


def host_name(value: str) -> Optional[str]:
    """The host part of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``),
    lower-case, without brackets or port; None when malformed."""
    v = value.strip().lower()
    if v.startswith("["):
        end = v.find("]")
        if end < 0 or (v[end + 1:] and not re.fullmatch(r":[0-9]{1,5}", v[end + 1:])):
            return None
        return v[1:end] or None
    name, _, port = v.partition(":")
    if (port and not port.isdigit()) or not name or ":" in port:
        return None
    if not re.fullmatch(r"[a-z0-9_.-]+", name):
        return None
    return name.rstrip(".")


def _is_loopback_ip(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_host(headers, addresses: Iterable[str], allowed: Sequence[str]) -> None:
    """Refuse a ``Host`` that does not name this server (DNS rebinding).

    Allowed: ``localhost``, a loopback address, one of ``addresses`` (the bound address and
    the one the client connected to) and the names in ``allowed`` (``[web]
    allowed_hosts``; ``.example.org`` also allows its subdomains).  The port is ignored
    (an SSH tunnel may use another one).

    Raises:
        HTTPError: 400 no or several ``Host`` headers, or a malformed one; 403 a name that is
            not allowed.
    """
    values = headers.get_all("Host") or []
    if len(values) != 1:
        raise HTTPError(400, "send exactly one Host header", close=True)
    name = host_name(values[0])
    if name is None:
        raise HTTPError(400, f"bad Host header {values[0][:60]!r}", close=True)
    if name == "localhost" or _is_loopback_ip(name) or name in {a.lower().strip("[]") for a in addresses}:
        return
    for a in allowed:
        if name == a or (a.startswith(".") and (name.endswith(a) or name == a[1:])):
            return
    raise HTTPError(403, f"Host {name!r} is not allowed: requests must name this server (its address or "
                         "localhost); add the name to web.allowed_hosts to use it")


def redact(text: str, token: Optional[str]) -> str:
    """``text`` with ``token=...`` query values and the token itself replaced by ``***``
    (for log lines)."""
    text = _TOKEN_IN_TEXT.sub(r"\1***", text)
    if token:
        text = text.replace(token, "***")
    return text


#: Deepest JSON nesting a request body may have (the API's bodies are one level deep).
MAX_JSON_DEPTH = 32


def json_depth(raw: bytes) -> int:
    """The deepest ``[``/``{`` nesting of a JSON text (brackets inside strings not counted),
    found without parsing it -- so a body of thousands of nested lists never reaches the
    recursive parser."""
    depth = deepest = 0
    in_str = escaped = False
    for b in raw:
        if in_str:
            if escaped:
                escaped = False
            elif b == 0x5C:       # backslash
                escaped = True
            elif b == 0x22:       # closing quote
                in_str = False
        elif b == 0x22:
            in_str = True
        elif b in (0x5B, 0x7B):   # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif b in (0x5D, 0x7D):   # ] }
            depth -= 1
    return deepest


def read_json_body(headers, rfile) -> dict:
    """The request body: a JSON object sent with ``Content-Type: application/json`` and a
    ``Content-Length`` of at most :data:`MAX_BODY` bytes (an empty body is ``{}``).

    Raises:
        HTTPError: 411 chunked body; 400 bad Content-Length, bad JSON or not an object; 413
            too large; 415 wrong Content-Type.  ``close`` is set when the body was not read.
    """
    if headers.get("Transfer-Encoding"):
        raise HTTPError(411, "send the body with a Content-Length (no chunked encoding)", close=True)
    try:
        n = int(headers.get("Content-Length") or 0)
    except ValueError:
        raise HTTPError(400, "bad Content-Length", close=True) from None
    if n < 0:
        raise HTTPError(400, "bad Content-Length", close=True)
    if n > MAX_BODY:
        raise HTTPError(413, f"request body too large ({n} bytes; at most {MAX_BODY})", close=True)
    raw = rfile.read(n) if n else b""
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HTTPError(415, "send Content-Type: application/json (also for an empty body)")
    if not raw.strip():
        return {}
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise HTTPError(400, f"body is nested too deeply (more than {MAX_JSON_DEPTH} levels); send a flat "
                             "JSON object, e.g. {\"steps\": 10}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise HTTPError(400, f"body is not valid JSON: {e}") from None
    except RecursionError:  # thousands of nested [[[ ... within the size limit
        raise HTTPError(400, "body is nested too deeply; send a flat JSON object, e.g. {\"steps\": 10}") from None
    if not isinstance(data, dict):
        raise HTTPError(400, "body must be a JSON object, e.g. {\"steps\": 10}")
    return data


def check_origin(headers) -> None:
    """Refuse cross-site requests: a browser's Origin must match the Host it talks to
    (which :func:`check_host` has checked).

    Raises:
        HTTPError: 403 cross-origin.
    """
    origin = headers.get("Origin")
    if not origin:
        return
    host = headers.get("Host", "")
    if urlsplit(origin).netloc.lower() != host.lower():
        raise HTTPError(403, "cross-origin request refused")


def check_token(headers, query: dict, token: Optional[str]) -> None:
    """Require ``token`` (when set) as ``Authorization: Bearer TOKEN`` or ``?token=TOKEN``.

    Raises:
        HTTPError: 401 missing (with ``WWW-Authenticate``); 403 wrong.
    """
    if token is None:
        return
    given = None
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    elif "token" in query:
        given = query["token"][-1]
    if given is None:
        raise HTTPError(401, "this control needs the token: send 'Authorization: Bearer TOKEN' "
                             "or add ?token=TOKEN", {"WWW-Authenticate": 'Bearer realm="pifocus"'})
    if not hmac.compare_digest(given.encode(), token.encode()):  # constant time
        raise HTTPError(403, "wrong token")


def only(body: dict, allowed: Sequence[str]) -> None:
    """Refuse fields of ``body`` not in ``allowed``.

    Raises:
        HTTPError: 400 naming the unknown fields and the allowed ones.
    """
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise HTTPError(400, f"unknown field(s) {', '.join(extra)}; allowed: {', '.join(allowed) or 'none'}")
