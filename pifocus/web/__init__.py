"""The phone preview: a small HTTP server inside the ``serve`` daemon.

* :class:`WebParams` -- the ``[web]`` config table.
* :mod:`.preview` -- :class:`~pifocus.web.preview.PreviewHub`: one encoder thread turns the
  newest frame into one JPEG (downscaled, with focus peaking) that every client shares
  ("encode once, fan out"), so clients never slow the frame loop.
* :mod:`.magnifier` -- critical-focus aids from the full-resolution luma: sensor-resolution
  peaking for the overview, the magnifier crop (``GET /api/zoom``), the zebra.
* :mod:`.server` -- the stdlib ``ThreadingHTTPServer``: the route tables for the page
  (``static/``), the MJPEG stream and the JSON API documented in ``API.md``.  It talks to
  the service only through a :class:`pifocus.controls.Controls`.
* :mod:`.httpd` -- the listening socket: tracks its connections (closed on stop or
  rebind) and caps them (``max_connections``).
* :mod:`.tools` -- the magnifier route, AF cancel, the view options (zebra, peaking colour) and
  the autofocus mode of ``POST /api/mode``.
* :mod:`.request` -- reading and checking requests: JSON body, Origin, token.
* :mod:`.files` -- the page's files and the saved stills (safe names only).
* :mod:`.stream` -- the MJPEG stream of the shared preview JPEGs.

Only the standard library, numpy and OpenCV are used: nothing to build or install on a Pi.
"""

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Optional, Tuple

from ..validate import require

PEAKING_COLOURS = {
    "red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 64, 0),
    "yellow": (0, 255, 255), "magenta": (255, 0, 255), "cyan": (255, 255, 0), "white": (255, 255, 255),
}
CAPTURE_FORMATS = ("png", "jpg", "dng")
MIN_TOKEN_CHARS = 8
#: A host name (or IP literal) as ``allowed_hosts`` takes it: no port, no scheme, no path.
_HOST_NAME = re.compile(r"^\.?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$")


def host_name_ok(name) -> bool:
    """True for a host name (``rig.local``, ``.example.org``) or an IP address, no port."""
    if not isinstance(name, str):
        return False
    h = name.strip().lower()
    try:
        ipaddress.ip_address(h.strip("[]"))
        return True
    except ValueError:
        return _HOST_NAME.match(h) is not None


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine (``127.0.0.0/8``,
    ``::1``, ``localhost``)."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebParams:
    """Validated parameters of the preview server (config table ``[web]``).

    Attributes:
        enabled: serve the page and API at all (``serve`` still runs without them).
        host: address to bind.  ``127.0.0.1`` (default) is reachable only from the Pi;
            ``0.0.0.0`` or a LAN address exposes it, and then ``token`` is required.
        port: TCP port (0 = any free port, for tests).
        token: shared secret for the controls (``Authorization: Bearer TOKEN`` or
            ``?token=TOKEN``); at least 8 characters.  Required when ``host`` is not a
            loopback address.  When set it is enforced on every host.
        preview_width: width of the preview JPEG in pixels (height follows the frame's
            aspect ratio).
        jpeg_quality: JPEG quality 10..95.
        max_fps: most preview frames encoded per second (0 = every frame).
        max_clients: most simultaneous preview streams; more get HTTP 503.
        peaking: draw focus peaking on the preview.
        peaking_threshold: edge sharpness needed for peaking: |Laplacian| of the downscaled
            frame as a share of the local contrast (0.45 paints edges no wider than about two
            preview pixels; lower paints more).  Contrast below the sensor noise is ignored.
        peaking_colour: one of red, green, blue, yellow, magenta, cyan, white (the page can
            change it; the heat map uses a blue-to-green scale, so it never collides).
        peaking_resolution: ``"sensor"`` (default): inside the subject region edges are found
            on the full-resolution frame and the mask reduced onto the preview, so peaking
            tracks the last pixel of focus (outside it, and with ``"preview"``, on the
            downscaled preview: cheaper, but blind to the last few per cent of the focus range).
        peaking_min_share: with ``"sensor"``, a preview pixel is painted when at least this
            share (0..1) of the sensor pixels under it carry a sharp edge.
        peaking_max_px: with ``"sensor"``, frames wider than this are reduced to this width
            first (bounds the encoder's cost on a 12 MP mode).
        zebra: stripe clipped highlights on the preview (the page can switch it).
        presets_file: the rack-focus presets file (``None``: ``presets.json`` in the state
            dir, shared with ``pifocus preset``).
        captures_dir: folder for ``/api/capture`` stills (relative paths are relative to
            the working directory, ``/var/lib/pifocus`` under systemd).
        capture_format: ``png`` (lossless) or ``jpg`` (colour when the source has colour,
            else grey), or ``dng`` (the sensor's raw data; picamera2 only: the service then
            configures the camera's raw stream).
        nudge_max_steps: largest single ``/api/nudge`` move, in drive steps.
        encoder_nice: how much lower than the frame loop the preview encoder runs (Linux
            nice levels, 0..19): when the CPU is short the preview drops frames, the focus
            loop does not.
        allowed_hosts: host names (no port) a request's ``Host`` header may carry besides
            the bound address, the address the client connected to, ``localhost``, the
            loopback addresses and the machine's host name (``rig``, ``rig.local``) --
            e.g. ``["rig.example.org"]``.  A name starting with ``.`` also allows its
            subdomains.  Anything else is refused (403): this stops DNS rebinding, a web
            page of another site reaching the API through a name that resolves to the Pi.
        max_connections: most connections served at once (each holds a thread, preview
            streams included); one more is answered 503 at once.  More than ``max_clients``.
        header_timeout_s: seconds a client has to send a complete request line and headers
            (and an idle keep-alive connection is kept); a slower one is dropped.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    token: Optional[str] = field(default=None, repr=False)  # never in a log line or a repr
    preview_width: int = 640
    jpeg_quality: int = 70
    max_fps: float = 20.0
    max_clients: int = 4
    peaking: bool = True
    peaking_threshold: float = 0.45
    peaking_colour: str = "red"
    peaking_resolution: str = "sensor"
    peaking_min_share: float = 0.3
    peaking_max_px: int = 2048
    zebra: bool = False
    presets_file: Optional[str] = None
    captures_dir: str = "captures"
    capture_format: str = "png"
    nudge_max_steps: int = 1000
    encoder_nice: int = 10
    allowed_hosts: Tuple[str, ...] = ()
    max_connections: int = 32
    header_timeout_s: float = 5.0

    def __post_init__(self):
        s = "web"
        require(isinstance(self.host, str) and self.host.strip() != "", s, "host", self.host,
                "an address such as 127.0.0.1, 0.0.0.0 or ::1")
        require(0 <= int(self.port) <= 65535, s, "port", self.port, "0..65535")
        if self.token == "":
            object.__setattr__(self, "token", None)
        if self.token is not None:
            require(len(self.token) >= MIN_TOKEN_CHARS and self.token.isprintable() and " " not in self.token,
                    s, "token", "***", f"at least {MIN_TOKEN_CHARS} printable characters, no spaces",
                    "e.g. generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(16))'")
        require(not (self.enabled and self.token is None and not is_loopback(self.host)), s, "token", None,
                f"a token when web.host ({self.host}) is not a loopback address",
                "set web.token, or bind web.host = \"127.0.0.1\" and use an SSH tunnel")
        require(64 <= int(self.preview_width) <= 1920, s, "preview_width", self.preview_width, "64..1920 px")
        require(10 <= int(self.jpeg_quality) <= 95, s, "jpeg_quality", self.jpeg_quality, "10..95")
        require(0 <= self.max_fps <= 120, s, "max_fps", self.max_fps, "0..120 (0 = every frame)")
        require(1 <= int(self.max_clients) <= 64, s, "max_clients", self.max_clients, "1..64")
        require(0.05 <= self.peaking_threshold <= 2.0, s, "peaking_threshold", self.peaking_threshold, "0.05..2")
        require(self.peaking_colour in PEAKING_COLOURS, s, "peaking_colour", self.peaking_colour,
                ", ".join(PEAKING_COLOURS))
        require(self.peaking_resolution in ("sensor", "preview"), s, "peaking_resolution",
                self.peaking_resolution, '"sensor" or "preview"')
        require(0 < self.peaking_min_share <= 1, s, "peaking_min_share", self.peaking_min_share, "0 < x <= 1")
        require(320 <= int(self.peaking_max_px) <= 8192, s, "peaking_max_px", self.peaking_max_px, "320..8192 px")
        require(isinstance(self.captures_dir, str) and self.captures_dir.strip() != "", s, "captures_dir",
                self.captures_dir, "a folder path")
        require(self.capture_format in CAPTURE_FORMATS, s, "capture_format", self.capture_format,
                "png, jpg or dng")
        require(1 <= int(self.nudge_max_steps) <= 1_000_000, s, "nudge_max_steps", self.nudge_max_steps,
                "1..1000000 steps")
        require(0 <= int(self.encoder_nice) <= 19, s, "encoder_nice", self.encoder_nice, "0..19")
        hosts = self.allowed_hosts
        require(isinstance(hosts, (list, tuple)), s, "allowed_hosts", hosts, 'a list of host names, e.g. ["rig.local"]')
        for h in hosts:
            require(host_name_ok(h), s, "allowed_hosts", h,
                    "host names or IP addresses without port or scheme, e.g. \"rig.local\" or \".example.org\"")
        object.__setattr__(self, "allowed_hosts", tuple(h.strip().lower().strip("[]").rstrip(".") for h in hosts))
        require(int(self.max_clients) < int(self.max_connections) <= 1024, s, "max_connections",
                self.max_connections, f"more than max_clients ({self.max_clients}) and at most 1024")
        require(0.5 <= self.header_timeout_s <= 60, s, "header_timeout_s", self.header_timeout_s, "0.5..60 s")

    @property
    def exposed(self) -> bool:
        """True when the server is reachable from other machines (host not loopback)."""
        return not is_loopback(self.host)
