"""Reading and checking API requests: the JSON body, the Origin check, the token.

The functions take the parts of a request they need (headers, the body stream, the query)
rather than the handler, so each rule of ``API.md`` "Conventions" sits in one small place.
"""

import hmac
import json
from typing import Optional, Sequence
from urllib.parse import urlsplit

MAX_BODY = 16 * 1024


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
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise HTTPError(400, f"body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise HTTPError(400, "body must be a JSON object, e.g. {\"steps\": 10}")
    return data


def check_origin(headers) -> None:
    """Refuse cross-site requests: a browser's Origin must match the Host it talks to.

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
