"""The listening socket: a stdlib ``ThreadingHTTPServer`` that knows its connections.

:class:`HTTPServer` keeps the set of open connections so that

* :meth:`HTTPServer.close_connections` can end them all when the server stops or moves to
  another address (a keep-alive connection on the old address must not outlive a rebind);
* at most ``max_connections`` connections get a thread; one more is answered ``503`` at
  once by the accepting thread and closed (no thread, no token check, no waiting).

:class:`DeadlineReader` puts a deadline on reading a whole request head (a client sending
its headers one byte at a time is dropped after ``header_timeout_s``, not kept for ever).
:func:`bind` makes the socket and checks the token rule (:func:`check_exposure`) against
the address it actually got.
"""

import errno
import io
import logging
import socket
import threading
import time
from typing import Optional

from ..exc import ConfigError
from . import is_loopback
from http.server import ThreadingHTTPServer

log = logging.getLogger("pifocus.web.server")

_BUSY_BODY = b'{"ok":false,"error":"too many connections (web.max_connections reached); try again"}'
#: What a connection over the cap gets, written without a thread.
BUSY_ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
               b"Connection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n" % len(_BUSY_BODY)) + _BUSY_BODY


class DeadlineReader(io.RawIOBase):
    """The socket as a raw stream whose reads fail with :class:`TimeoutError` once
    ``deadline`` (``time.monotonic()``, None = none) has passed, however slowly the bytes
    trickle in.  Between reads (and for writes) the socket keeps ``io_timeout``.
    """

    def __init__(self, sock, io_timeout: float):
        super().__init__()
        self.sock = sock
        self.io_timeout = io_timeout
        self.deadline: Optional[float] = None
        sock.settimeout(io_timeout)

    def readable(self) -> bool:  # noqa: D102
        return True

    def readinto(self, b) -> int:
        """Read into ``b`` from the socket, within the deadline.

        Raises:
            TimeoutError: the deadline passed.
        """
        deadline = self.deadline
        if deadline is None:
            return self.sock.recv_into(b)
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request too slow")
        self.sock.settimeout(min(left, self.io_timeout))
        try:
            return self.sock.recv_into(b)
        finally:
            self.sock.settimeout(self.io_timeout)


class HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that tracks and caps its connections.

    Attributes:
        max_connections: most connections served at once (each holds a thread).
        refused: connections answered 503 because of the cap so far.
    """

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    max_connections = 32
    #: listen backlog: connections waiting to be accepted (the stdlib's 5 made a burst of
    #: connections wait seconds for the kernel to retry their handshakes)
    request_queue_size = 128

    def __init__(self, *args, **kwargs):
        self._conns = set()
        self._conns_lock = threading.Lock()
        self.refused = 0
        super().__init__(*args, **kwargs)

    @property
    def connections(self) -> int:
        """Connections open right now."""
        with self._conns_lock:
            return len(self._conns)

    def process_request(self, request, client_address):
        """Serve ``request`` in a thread, or refuse it at once when the cap is reached."""
        with self._conns_lock:
            full = len(self._conns) >= self.max_connections
            if not full:
                self._conns.add(request)
        if full:
            self.refused += 1
            if self.refused == 1 or self.refused % 100 == 0:
                log.warning("web: %d connection(s) refused so far: web.max_connections = %d reached",
                            self.refused, self.max_connections)
            try:
                request.setblocking(False)
                request.send(BUSY_ANSWER)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        """Forget and close ``request``'s connection."""
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open connection (their threads see EOF or a reset and finish)."""
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):  # noqa: D102 - log, don't print
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class HTTPServer6(HTTPServer):
    """:class:`HTTPServer` on an IPv6 address."""

    address_family = socket.AF_INET6


class AddressInUse(ConfigError):
    """The address is taken (maybe by this very server, before a rebind)."""


def check_exposure(host: str, port: int, token: Optional[str]) -> None:
    """The token rule against the address actually bound.

    Raises:
        ConfigError: ``host`` is reachable beyond this machine and ``token`` is None.
    """
    if token is None and not is_loopback(str(host)):
        raise ConfigError(f"web: the server would listen on {host}:{port}, reachable from the network, "
                          "without a token; set web.token, or bind web.host = \"127.0.0.1\" and use an SSH tunnel")


def bind(params, handler) -> HTTPServer:
    """A socket bound to ``params``' host/port (a :class:`~pifocus.web.WebParams`),
    listening, serving with ``handler`` once started, checked by :func:`check_exposure`.

    Raises:
        ConfigError: cannot listen there (:class:`AddressInUse` when it is taken), or the
            token rule is broken.
    """
    cls = HTTPServer6 if ":" in params.host else HTTPServer
    try:
        httpd = cls((params.host, params.port), handler)
    except OSError as e:
        err = AddressInUse if e.errno == errno.EADDRINUSE else ConfigError
        raise err(f"web: cannot listen on {params.host}:{params.port}: {e.strerror or e}; "
                  "pick another web.port or stop what uses it") from None
    httpd.max_connections = int(params.max_connections)
    host, port = httpd.server_address[:2]
    try:
        check_exposure(host, port, params.token)
    except ConfigError:
        httpd.server_close()
        raise
    return httpd
