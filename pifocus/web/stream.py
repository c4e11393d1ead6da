"""The MJPEG preview stream: one ``multipart/x-mixed-replace`` part per preview JPEG.

Every client gets the hub's shared JPEGs (encoded once for all); a slow client skips
images, it never slows the frame loop.
"""

import select
import socket
from typing import Callable

from .request import HTTPError

BOUNDARY = "pifocusframe"


def part_head(pf) -> bytes:
    """The headers of one stream part for the preview frame ``pf``."""
    return (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(pf.jpeg)}\r\n"
            f"X-Frame-Index: {pf.frame_index}\r\nX-Timestamp-Ns: {pf.timestamp_ns}\r\n"
            f"X-Seq: {pf.seq}\r\n\r\n").encode()


def client_gone(conn) -> bool:
    """True when the client closed its end of ``conn`` (a stream client sends nothing after
    the request, so a readable socket means EOF or a reset)."""
    try:
        r, _, _ = select.select([conn], [], [], 0)
        return bool(r) and conn.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def serve_stream(handler, hub, stopping: Callable[[], bool]) -> None:
    """Answer ``handler``'s request with the live stream until the client leaves, the hub
    closes or ``stopping()`` turns true.

    Raises:
        HTTPError: 503 when the hub already has ``max_clients`` streams.
    """
    if not hub.try_join():
        raise HTTPError(503, f"too many preview clients (web.max_clients = {hub.params.max_clients})")
    try:
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        for pf in hub.stream():
            if stopping() or client_gone(handler.connection):
                break
            handler.wfile.write(part_head(pf) + pf.jpeg + b"\r\n")
    except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
        pass  # the client went away: nothing to answer
    finally:
        hub.leave()
