"""Rig scale: many pifocus cameras, one MQTT broker (Mosquitto), one dashboard.

* :class:`MqttParams` -- the ``[mqtt]`` config table (off by default).
* :mod:`.topics` -- pure logic on literal data: the topic layout, JSON payloads, the state
  document a camera publishes, command parsing and the token check, the command-id
  de-duplicator, the state rate limiter, the bounded drop-oldest outbox and the clock
  conversion for synchronised captures.
* :mod:`.client` -- the one place ``paho-mqtt`` (>= 2.0, ``CallbackAPIVersion.VERSION2``) is
  imported: a client with credentials, TLS, last will and reconnect backoff, and
  :class:`~pifocus.rig.client.Publisher`, the worker thread that drains the outbox.
* :mod:`.commands` -- :class:`~pifocus.rig.commands.CommandRunner`: each command
  (``autofocus``, ``nudge``, ``preset``, ``capture``, ``continuous``, ``reload``) carried
  out through a :class:`pifocus.controls.Controls`, with its reply.
* :mod:`.bridge` -- :class:`~pifocus.rig.bridge.MqttBridge`, what ``pifocus serve`` runs
  when ``[mqtt] enabled``: retained state at a bounded rate and on change, thumbnails, AF
  and capture events, commands in, replies out.  The frame loop never waits on it.
* :mod:`.view` -- :class:`~pifocus.rig.view.RigView`: the rig as the dashboard sees it on
  the broker (every camera's state, thumbnail, events, replies), and commands sent with an
  id and sent again to the cameras that have not answered.
* :mod:`.dashboard` -- :class:`~pifocus.rig.dashboard.RigDashboard`: ``pifocus rig``, the
  page (``static/``) and JSON API over a :class:`~pifocus.rig.view.RigView`, served by the
  standard library.

Topics and payloads are documented in ``pifocus/web/MQTT.md``.  Nothing here imports
:mod:`pifocus.service`: the bridge gets the service's controls object, as the web page does.
"""

import re
import socket
from dataclasses import dataclass, field
from typing import Optional

from ..validate import require
from ..web import is_loopback

#: A topic level a rig or camera name may use: no MQTT wildcards or separators.
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: Reserved camera name: ``pifocus/<rig>/all/cmd/<name>`` addresses every camera.
ALL = "all"
MIN_TOKEN_CHARS = 8


def default_camera_name() -> str:
    """This machine's host name as a topic level (``pi-07``), ``camera`` when it has none."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname().split(".")[0])[:64]
    return name if NAME_RE.match(name) and name != ALL else "camera"


@dataclass(frozen=True)
class MqttParams:
    """Validated parameters of the MQTT bridge (config table ``[mqtt]``).

    Attributes:
        enabled: connect to the broker at all (default off).
        host: broker address (Mosquitto).
        port: broker TCP port (1883 plain, 8883 usual for TLS).
        username, password: broker credentials (Mosquitto ``password_file``); the password
            never appears in a log line or a repr.
        tls: connect with TLS (the system CA store, or ``ca_file``).
        ca_file: CA certificate file for ``tls`` (empty: the system store).
        rig: the rig's name, the second topic level (``pifocus/<rig>/...``).
        camera: this camera's name, the third level; default the host name.  ``all`` is
            reserved (commands for every camera).
        token: shared secret every command payload must carry as ``"token"``; at least 8
            characters.  Required when ``host`` is not a loopback address (the web page's
            rule: reachable beyond this machine means a token).
        state_min_interval_s: fewest seconds between two retained state messages (a
            change sooner waits).
        state_max_interval_s: most seconds between two (published even without a change).
        thumbnail_interval_s: seconds between thumbnails (0 = none; needs the web preview).
        thumbnail_width: thumbnail width in pixels.
        queue_max: messages the outbox holds while the broker is slow or away; beyond
            this the oldest is dropped (and counted).
        keepalive_s: MQTT keep-alive; the broker publishes the last will "offline" about
            1.5x this after the camera vanishes.
        reconnect_min_s, reconnect_max_s: backoff between reconnect attempts (doubling).
        command_timeout_s: longest an autofocus command may run before its reply says so.
        dedup_size: command ids remembered so a redelivered command never runs twice.
        max_commands: commands carried out at once (more wait in line).
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    tls: bool = False
    ca_file: Optional[str] = None
    rig: str = "rig"
    camera: str = field(default_factory=default_camera_name)
    token: Optional[str] = field(default=None, repr=False)
    state_min_interval_s: float = 0.5
    state_max_interval_s: float = 10.0
    thumbnail_interval_s: float = 5.0
    thumbnail_width: int = 160
    queue_max: int = 256
    keepalive_s: int = 10
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 8.0
    command_timeout_s: float = 120.0
    dedup_size: int = 4096
    max_commands: int = 4

    def __post_init__(self):
        s = "mqtt"
        require(isinstance(self.host, str) and self.host.strip() != "", s, "host", self.host,
                "a broker address such as 127.0.0.1 or broker.local")
        require(isinstance(self.port, int) and 1 <= self.port <= 65535, s, "port", self.port, "1..65535")
        for key in ("rig", "camera"):
            v = getattr(self, key)
            require(isinstance(v, str) and NAME_RE.match(v) is not None and v != ALL, s, key, v,
                    "1..64 letters, digits, '_', '-' or '.' (no '/', '+', '#'; 'all' is reserved)")
        for key in ("username", "password", "token", "ca_file"):
            if getattr(self, key) == "":
                object.__setattr__(self, key, None)
        require(self.password is None or self.username is not None, s, "username", None,
                "a user name when mqtt.password is set")
        if self.token is not None:
            require(len(self.token) >= MIN_TOKEN_CHARS and self.token.isprintable() and " " not in self.token,
                    s, "token", "***", f"at least {MIN_TOKEN_CHARS} printable characters, no spaces",
                    "e.g. generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(16))'")
        require(not (self.enabled and self.token is None and not is_loopback(self.host)), s, "token", None,
                f"a token when mqtt.host ({self.host}) is not a loopback address",
                "set mqtt.token (and broker credentials with an ACL), or run the broker on this Pi")
        require(0.05 <= self.state_min_interval_s <= 60, s, "state_min_interval_s", self.state_min_interval_s,
                "0.05..60 s")
        require(self.state_min_interval_s <= self.state_max_interval_s <= 3600, s, "state_max_interval_s",
                self.state_max_interval_s, f"state_min_interval_s ({self.state_min_interval_s})..3600 s")
        require(self.thumbnail_interval_s == 0 or 0.5 <= self.thumbnail_interval_s <= 3600, s,
                "thumbnail_interval_s", self.thumbnail_interval_s, "0 (none) or 0.5..3600 s")
        require(isinstance(self.thumbnail_width, int) and 32 <= self.thumbnail_width <= 640, s,
                "thumbnail_width", self.thumbnail_width, "32..640 px")
        require(isinstance(self.queue_max, int) and 8 <= self.queue_max <= 100_000, s, "queue_max",
                self.queue_max, "8..100000 messages")
        require(isinstance(self.keepalive_s, int) and 5 <= self.keepalive_s <= 600, s, "keepalive_s",
                self.keepalive_s, "5..600 s")
        require(0.05 <= self.reconnect_min_s <= 60, s, "reconnect_min_s", self.reconnect_min_s, "0.05..60 s")
        require(self.reconnect_min_s <= self.reconnect_max_s <= 600, s, "reconnect_max_s", self.reconnect_max_s,
                f"reconnect_min_s ({self.reconnect_min_s})..600 s")
        require(1 <= self.command_timeout_s <= 3600, s, "command_timeout_s", self.command_timeout_s, "1..3600 s")
        require(isinstance(self.dedup_size, int) and 16 <= self.dedup_size <= 1_000_000, s, "dedup_size",
                self.dedup_size, "16..1000000 ids")
        require(isinstance(self.max_commands, int) and 1 <= self.max_commands <= 32, s, "max_commands",
                self.max_commands, "1..32")
