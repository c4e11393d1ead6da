"""The rig's MQTT logic that needs no broker: topics, payloads, de-duplication, rates, outbox.

Topic layout (documented with every payload in ``pifocus/web/MQTT.md``)::

    pifocus/<rig>/<camera>/state          retained JSON, or the last will "offline"
    pifocus/<rig>/<camera>/thumb          retained JPEG bytes (small preview)
    pifocus/<rig>/<camera>/event/<name>   JSON, not retained (autofocus, capture)
    pifocus/<rig>/<camera>/cmd/<name>     JSON command for this camera
    pifocus/<rig>/all/cmd/<name>          JSON command for every camera of the rig
    pifocus/<rig>/<camera>/reply/<name>   JSON answer of this camera, not retained

Everything here is pure (or a small thread-safe container) and tested on literal data.
"""

import collections
import hmac
import json
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ..exc import ServiceError
from . import ALL, NAME_RE

PREFIX = "pifocus"
#: Command name -> the arguments it takes (besides ``id`` and ``token``).
COMMAND_ARGS = {
    "autofocus": ("strategy",),
    "nudge": ("steps",),
    "preset": ("name", "speed_units_s"),
    "capture": ("capture_id", "at", "format"),
    "continuous": ("enabled",),
    "reload": (),
}
COMMANDS = tuple(COMMAND_ARGS)
#: Longest command id (a UUID is 36 characters).
MAX_ID_CHARS = 64
#: Largest command payload accepted, bytes.
MAX_PAYLOAD = 16 * 1024
#: The last will / clean-shutdown payload on the state topic.
OFFLINE = b"offline"


@dataclass(frozen=True)
class Topics:
    """The topics of one camera (``camera``) in one rig (``rig``)."""

    rig: str
    camera: str

    def _t(self, *levels: str) -> str:
        return "/".join((PREFIX, self.rig, self.camera) + levels)

    @property
    def state(self) -> str:
        """Retained state document (or ``offline``)."""
        return self._t("state")

    @property
    def thumb(self) -> str:
        """Retained thumbnail JPEG."""
        return self._t("thumb")

    def event(self, name: str) -> str:
        """Non-retained event ``name`` (``autofocus``, ``capture``)."""
        return self._t("event", name)

    def reply(self, name: str) -> str:
        """Answer to command ``name``."""
        return self._t("reply", name)

    @property
    def command_filters(self) -> Tuple[str, str]:
        """The two subscriptions of a camera: its own commands and the rig's ``all``."""
        return (self._t("cmd", "+"), "/".join((PREFIX, self.rig, ALL, "cmd", "+")))


def rig_filter(rig: str) -> str:
    """Subscription for everything of a rig (the dashboard's)."""
    return f"{PREFIX}/{rig}/#"


def command_topic(rig: str, camera: str, name: str) -> str:
    """Where to publish command ``name`` for ``camera`` (or ``"all"``)."""
    return "/".join((PREFIX, rig, camera, "cmd", name))


def parse_topic(topic: str) -> Optional[Tuple[str, str, str, Optional[str]]]:
    """``(rig, camera, kind, name)`` of a pifocus topic (``name`` None for ``state`` and
    ``thumb``), or None when the topic is not one of the layout above."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != PREFIX:
        return None
    rig, camera, kind = parts[1], parts[2], parts[3]
    if not NAME_RE.match(rig) or not NAME_RE.match(camera):
        return None
    if kind in ("state", "thumb") and len(parts) == 4:
        return rig, camera, kind, None
    if kind in ("event", "cmd", "reply") and len(parts) == 5 and parts[4]:
        return rig, camera, kind, parts[4]
    return None


def _finite(obj):
    """``obj`` with NaN/inf floats as None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def encode(obj) -> bytes:
    """Compact UTF-8 JSON of ``obj`` (NaN and infinities as null)."""
    return json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode(payload: bytes) -> dict:
    """The JSON object in ``payload``.

    Raises:
        ServiceError: (400) larger than :data:`MAX_PAYLOAD`, not UTF-8 JSON, or not an object.
    """
    if len(payload) > MAX_PAYLOAD:
        raise ServiceError(f"payload of {len(payload)} bytes is too large; allowed: up to {MAX_PAYLOAD} bytes")
    try:
        obj = json.loads(payload.decode("utf-8")) if payload else {}
    except (UnicodeDecodeError, ValueError) as e:
        raise ServiceError(f"payload is not UTF-8 JSON ({e}); send a JSON object such as "
                           '{"id": "c1", "steps": 50}') from e
    if not isinstance(obj, dict):
        raise ServiceError(f"payload must be a JSON object, got {type(obj).__name__}")
    return obj


@dataclass(frozen=True)
class Command:
    """One command as received.

    Attributes:
        id: the sender's command id (the de-duplication key).
        name: one of :data:`COMMANDS`.
        args: its arguments (``token`` and ``id`` removed).
        target: the camera name the topic addressed, or ``"all"``.
    """

    id: str
    name: str
    args: Dict[str, Any]
    target: str


def command_id(obj: dict) -> Optional[str]:
    """The ``id`` of a decoded command payload, when it is a usable one (else None)."""
    cid = obj.get("id")
    if isinstance(cid, str) and 1 <= len(cid) <= MAX_ID_CHARS and cid.isprintable():
        return cid
    return None


def check_token(given, token: Optional[str]) -> None:
    """The web page's rule on a command's ``token`` field: when a token is configured it must
    be given and equal (compared in constant time).

    Raises:
        ServiceError: (401) missing; (403) wrong.
    """
    if token is None:
        return
    if not isinstance(given, str) or not given:
        raise ServiceError('this command needs the token: add "token": "..." (mqtt.token) to the payload', 401)
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ServiceError("wrong token", 403)


def parse_command(name: str, target: str, obj: dict, token: Optional[str]) -> Command:
    """Check a decoded command payload: known name, id, token, only the known arguments.

    Raises:
        ServiceError: (404) unknown command; (400) no usable ``id`` or an unknown argument;
            (401/403) missing or wrong token.
    """
    if name not in COMMAND_ARGS:
        raise ServiceError(f"command {name!r} is unknown; use one of {', '.join(COMMANDS)}", 404)
    cid = command_id(obj)
    if cid is None:
        raise ServiceError(f'give every command an "id": a string of 1..{MAX_ID_CHARS} printable characters, '
                           "unique per command (it is what stops a redelivered command running twice)")
    check_token(obj.get("token"), token)
    args = {k: v for k, v in obj.items() if k not in ("id", "token")}
    extra = sorted(set(args) - set(COMMAND_ARGS[name]))
    if extra:
        raise ServiceError(f"{name}: unknown argument(s) {', '.join(extra)}; allowed: "
                           f"{', '.join(COMMAND_ARGS[name]) or 'none'}")
    return Command(id=cid, name=name, args=args, target=target)


def reply_document(cid: Optional[str], camera: str, name: str, *, ok: bool, status: int = 200,
                   result: Optional[dict] = None, error: Optional[str] = None,
                   received_unix: Optional[float] = None) -> dict:
    """The answer published on ``.../reply/<name>`` (fields in ``MQTT.md``)."""
    d = {"id": cid, "camera": camera, "command": name, "ok": ok, "status": status,
         "received_unix": received_unix, "done_unix": round(time.time(), 6)}
    if result is not None:
        d["result"] = result
    if error is not None:
        d["error"] = error
    return d


#: Fields of ``GET /api/status`` copied into the retained state (see ``MQTT.md``).
STATE_FIELDS = ("ready", "fps", "frames", "verdict", "verdict_code", "in_focus", "blur_px", "meter",
                "sharpness", "mode", "exposure_us", "analogue_gain", "error", "errors", "uptime_s")


def state_document(status: dict, camera: str, counters: Optional[dict] = None) -> dict:
    """The retained state of a camera from its status document (``Controls.status()``).

    ``lens_position`` is the drive's position when a drive is open, else the frame's.
    ``counters`` (outbox drops, commands run...) go in as ``mqtt``.
    """
    d = {"online": True, "camera": camera, "time_unix": round(time.time(), 3)}
    for k in STATE_FIELDS:
        d[k] = status.get(k)
    drive = status.get("drive") or {}
    d["lens_position"] = drive.get("position") if drive.get("position") is not None else status.get("lens_position")
    d["drive_busy"] = bool(drive.get("busy"))
    af = status.get("autofocus") or {}
    d["autofocus"] = {k: af[k] for k in ("state", "strategy", "error") if k in af}
    if isinstance(af.get("result"), dict):
        d["autofocus"]["result"] = af["result"]
    if counters:
        d["mqtt"] = dict(counters)
    return d


def _rounded(v, step: float):
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return round(v / step) * step
    return v


def state_key(doc: dict) -> tuple:
    """What counts as a *change* of the state: verdict, blur (0.1 px), meter (5 %), lens
    position, exposure, errors, autofocus state -- not fps, frame count or uptime, which
    change every frame."""
    af = doc.get("autofocus") or {}
    return (doc.get("ready"), doc.get("verdict_code"), doc.get("in_focus"), _rounded(doc.get("blur_px"), 0.1),
            _rounded(doc.get("meter"), 0.05), _rounded(doc.get("lens_position"), 0.5), doc.get("exposure_us"),
            doc.get("analogue_gain"), tuple(doc.get("errors") or ()), doc.get("mode"), af.get("state"),
            doc.get("drive_busy"))


class StateLimiter:
    """When to publish the retained state: on a change, but never sooner than ``min_s``
    after the last one; and at least every ``max_s`` without a change (a heartbeat)."""

    def __init__(self, min_s: float, max_s: float):
        self.min_s = float(min_s)
        self.max_s = float(max_s)
        self._last_t: Optional[float] = None
        self._last_key = None

    def due(self, key, now: float) -> bool:
        """True when a state with ``key`` should be published at ``now`` (seconds)."""
        if self._last_t is None:
            return True
        age = now - self._last_t
        if age >= self.max_s:
            return True
        return key != self._last_key and age >= self.min_s

    def mark(self, key, now: float) -> None:
        """Record that the state ``key`` was published at ``now``."""
        self._last_t = now
        self._last_key = key

    def reset(self) -> None:
        """Forget the last publish (after a reconnect the state goes out at once)."""
        self._last_t = None
        self._last_key = None


class CommandDedup:
    """Command ids already seen, so a command redelivered (QoS 1 after a reconnect, or sent
    again by the dashboard) never runs twice: the newest ``size`` ids are kept with their
    reply.

    :meth:`begin` returns ``"new"`` (run it), ``"running"`` (seen, no reply yet: ignore) or
    ``"done"`` (seen and answered: send :meth:`reply` again).  Thread-safe.
    """

    def __init__(self, size: int = 4096):
        self.size = int(size)
        self._seen: "collections.OrderedDict[str, Optional[dict]]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self.duplicates = 0

    def begin(self, cid: str) -> str:
        """Register ``cid``; ``"new"``, ``"running"`` or ``"done"`` (see the class doc)."""
        with self._lock:
            if cid in self._seen:
                self.duplicates += 1
                self._seen.move_to_end(cid)
                return "running" if self._seen[cid] is None else "done"
            self._seen[cid] = None
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)
            return "new"

    def finish(self, cid: str, reply: dict) -> None:
        """Record the reply of command ``cid``."""
        with self._lock:
            if cid in self._seen:
                self._seen[cid] = reply

    def reply(self, cid: str) -> Optional[dict]:
        """The recorded reply of ``cid`` (None: unknown or still running)."""
        with self._lock:
            return self._seen.get(cid)

    def __len__(self) -> int:
        return len(self._seen)


@dataclass
class Message:
    """One outgoing MQTT message."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


class Outbox:
    """The bounded queue between the service's threads and the publisher thread.

    :meth:`put` never blocks: when ``maxlen`` messages wait, the oldest is dropped and
    counted in :attr:`dropped`.  A retained message replaces one still waiting for the same
    topic (only the newest state matters), counted in :attr:`coalesced`.
    """

    def __init__(self, maxlen: int):
        self.maxlen = int(maxlen)
        self._q: "collections.deque[Message]" = collections.deque()
        self._cond = threading.Condition()
        self.dropped = 0
        self.coalesced = 0
        self.put_count = 0

    def put(self, msg: Message) -> None:
        """Queue ``msg`` (drop-oldest when full; a retained one replaces its topic's)."""
        with self._cond:
            self.put_count += 1
            if msg.retain:
                for i, old in enumerate(self._q):
                    if old.retain and old.topic == msg.topic:
                        del self._q[i]
                        self.coalesced += 1
                        break
            while len(self._q) >= self.maxlen:
                self._q.popleft()
                self.dropped += 1
            self._q.append(msg)
            self._cond.notify()

    def get(self, timeout: float) -> Optional[Message]:
        """The oldest waiting message, or None after ``timeout`` seconds."""
        with self._cond:
            if not self._q:
                self._cond.wait(timeout)
            return self._q.popleft() if self._q else None

    def unget(self, msg: Message) -> None:
        """Put ``msg`` back at the front (the broker was away when it was taken); dropped when
        the queue filled up meanwhile."""
        with self._cond:
            if len(self._q) >= self.maxlen:
                self.dropped += 1
                return
            self._q.appendleft(msg)
            self._cond.notify()

    def wake(self) -> None:
        """Wake a waiting :meth:`get` (shutdown)."""
        with self._cond:
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._q)


#: A frame timestamp further than this from ``time.monotonic_ns()`` is not on that clock.
MONOTONIC_WINDOW_S = 600.0


def wall_time_of(timestamp_ns: Optional[int], mono_now_ns: int, wall_now_s: float) -> Optional[float]:
    """The wall-clock time (unix seconds) of a frame stamped ``timestamp_ns`` on the
    ``CLOCK_MONOTONIC`` clock (picamera2's sensor timestamps, a realtime sim), given the
    two clocks read together now; None when the stamp is not on that clock (a recording,
    a non-realtime sim)."""
    if not isinstance(timestamp_ns, int) or timestamp_ns <= 0:
        return None
    age_s = (mono_now_ns - timestamp_ns) / 1e9
    if not -1.0 <= age_s <= MONOTONIC_WINDOW_S:
        return None
    return wall_now_s - age_s


def capture_delay_s(at, now: float, max_ahead_s: float = 300.0, late_s: float = 0.25) -> float:
    """Seconds to wait before a capture named for unix time ``at`` (None: at once).

    Raises:
        ServiceError: (400) ``at`` is not a number, more than ``late_s`` in the past (the
            command came too late: the clocks or the network are off), or more than
            ``max_ahead_s`` ahead.
    """
    if at is None:
        return 0.0
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        raise ServiceError(f"capture: at = {at!r} is invalid; allowed: unix time in seconds (a number), "
                           "e.g. time.time() + 2")
    delay = float(at) - now
    if delay < -late_s:
        raise ServiceError(f"capture: at = {at} is {-delay:.3f} s in the past on this camera's clock; allowed: "
                           f"up to {max_ahead_s:g} s ahead -- name a time further ahead, and check the clocks "
                           "(chronyc tracking)")
    if delay > max_ahead_s:
        raise ServiceError(f"capture: at = {at} is {delay:.1f} s ahead; allowed: up to {max_ahead_s:g} s ahead")
    return max(0.0, delay)


def spread_ms(times: List[Optional[float]]) -> Optional[float]:
    """Largest minus smallest of the known ``times`` (unix seconds), in milliseconds; None
    with fewer than two."""
    known = [t for t in times if isinstance(t, (int, float))]
    if len(known) < 2:
        return None
    return round((max(known) - min(known)) * 1e3, 3)
