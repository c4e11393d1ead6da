"""The listening socket: a stdlib ``ThreadingHTTPServer`` that knows its connections.

:class:`HTTPServer` keeps the set of open connections so that

* :meth:`HTTPServer.close_connections` can end them all when the server stops or moves to
  another address (a keep-alive connection on the old address must not outlive a rebind);
* at most ``max_connections`` connections get a thread; one more is answered ``503`` at
  once by the accepting thread and closed (no thread, no token check, no waiting).
"""

import logging
import socket
import threading
from http.server import ThreadingHTTPServer

log = logging.getLogger("pifocus.web.server")

_BUSY_BODY = b'{"ok":false,"error":"too many connections (web.max_connections reached); try again"}'
#: What a connection over the cap gets, written without a thread.
BUSY_ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
               b"Connection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n" % len(_BUSY_BODY)) + _BUSY_BODY


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
