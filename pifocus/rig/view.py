"""The rig as the dashboard sees it through the broker: :class:`RigView`.

It subscribes to ``pifocus/<rig>/#`` and keeps, per camera, the retained state (or
"offline"), the thumbnail, the last events and the replies; it sends commands with a fresh
id, for one camera or ``all``, and sends a command again -- same id, to the cameras that
have not answered -- every ``retry_s`` until every camera answered or ``timeout`` ran out.
The cameras de-duplicate by id, so a command sent again never runs twice: at-least-once
delivery plus a once-only execution.
"""

import threading
import time
import uuid
from typing import Dict, List, Optional

from . import ALL
from .client import MqttClient
from .topics import OFFLINE, command_topic, decode, encode, parse_topic, rig_filter, spread_ms

#: Commands remembered for the page (newest last).
KEEP_COMMANDS = 50
#: Longest wait between two looks at the replies, seconds.
WAIT_POLL_S = 0.1


class RigView:
    """Every camera of one rig, live from the broker.

    Args:
        params: :class:`~pifocus.rig.MqttParams` (broker, credentials, ``rig``, ``token``).
        client_id: MQTT client id (default: unique per process).

    Attributes:
        cameras: name -> ``{"state": dict | None, "online": bool, "thumb": bytes | None,
            "thumb_seq": int, "seen_unix": float, "events": {name: dict}}``.
        commands: command id -> ``{"name", "target", "args", "sent_unix", "expected",
            "replies": {camera: reply}, "sends"}``.
    """

    def __init__(self, params, client_id: Optional[str] = None):
        self.params = params
        self.cameras: Dict[str, dict] = {}
        self.commands: Dict[str, dict] = {}
        self._lock = threading.Condition()
        self.client = MqttClient(params, client_id or f"pifocus-rig-{params.rig}-{uuid.uuid4().hex[:8]}",
                                 clean_session=True, subscriptions=[(rig_filter(params.rig), 1)],
                                 on_message=self._on_message)

    def start(self, wait_s: float = 0.0) -> "RigView":
        """Connect (in the background); wait up to ``wait_s`` for the connection."""
        self.client.start()
        if wait_s:
            self.client.connected.wait(wait_s)
        return self

    def stop(self) -> None:
        """Disconnect."""
        self.client.stop()

    # -- incoming --------------------------------------------------------------------------------
    def _camera(self, name: str) -> dict:
        return self.cameras.setdefault(name, {"state": None, "online": False, "thumb": None, "thumb_seq": 0,
                                              "seen_unix": None, "events": {}})

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        parsed = parse_topic(topic)
        if parsed is None or parsed[0] != self.params.rig or parsed[1] == ALL or parsed[2] == "cmd":
            return
        _rig, cam, kind, name = parsed
        with self._lock:
            c = self._camera(cam)
            c["seen_unix"] = time.time()
            if kind == "thumb":
                c["thumb"], c["thumb_seq"] = payload, c["thumb_seq"] + 1
            elif kind == "state":
                if payload == OFFLINE or not payload:
                    c["online"] = False
                else:
                    c["state"], c["online"] = _safe_decode(payload), True
            elif kind == "event":
                c["events"][name] = _safe_decode(payload)
            elif kind == "reply":
                reply = _safe_decode(payload)
                cmd = self.commands.get(reply.get("id")) if reply else None
                if cmd is not None:
                    cmd["replies"][cam] = reply
            self._lock.notify_all()

    # -- outgoing --------------------------------------------------------------------------------
    def online(self) -> List[str]:
        """Names of the cameras whose state says online, sorted."""
        with self._lock:
            return sorted(n for n, c in self.cameras.items() if c["online"])

    def send(self, name: str, args: Optional[dict] = None, target: str = ALL, cmd_id: Optional[str] = None) -> str:
        """Publish command ``name`` with ``args`` for ``target`` (a camera or ``"all"``);
        returns its id.  The cameras expected to answer are the online ones (or ``target``)."""
        cmd_id = cmd_id or uuid.uuid4().hex[:16]
        expected = self.online() if target == ALL else [target]
        with self._lock:
            self.commands[cmd_id] = {"id": cmd_id, "name": name, "target": target, "args": dict(args or {}),
                                     "sent_unix": time.time(), "expected": expected, "replies": {}, "sends": 0}
            while len(self.commands) > KEEP_COMMANDS:
                self.commands.pop(next(iter(self.commands)))
        self._publish(cmd_id, target)
        return cmd_id

    def _publish(self, cmd_id: str, target: str) -> None:
        cmd = self.commands[cmd_id]
        body = dict(cmd["args"], id=cmd_id)
        if self.params.token is not None:
            body["token"] = self.params.token
        cmd["sends"] += 1
        self.client.send_queued(command_topic(self.params.rig, target, cmd["name"]), encode(body))

    def missing(self, cmd_id: str) -> List[str]:
        """Cameras expected to answer ``cmd_id`` that have not."""
        with self._lock:
            cmd = self.commands[cmd_id]
            return [c for c in cmd["expected"] if c not in cmd["replies"]]

    def wait(self, cmd_id: str, timeout: float, retry_s: float = 2.0) -> Dict[str, dict]:
        """Wait until every expected camera answered ``cmd_id`` (sending it again, same id,
        to the silent ones every ``retry_s``), or ``timeout`` s; returns the replies so far."""
        deadline = time.monotonic() + timeout
        next_retry = time.monotonic() + retry_s
        while True:
            missing = self.missing(cmd_id)
            now = time.monotonic()
            if not missing or now >= deadline:
                break
            if now >= next_retry:
                for cam in missing:
                    self._publish(cmd_id, cam)
                next_retry = now + retry_s
            with self._lock:
                self._lock.wait(min(WAIT_POLL_S, max(0.0, deadline - now)))
        with self._lock:
            return dict(self.commands[cmd_id]["replies"])

    def capture_all(self, delay_s: float = 2.0, fmt: Optional[str] = None) -> str:
        """A synchronised capture ``delay_s`` from now on every camera; returns the command id
        (also the shared ``capture_id``)."""
        cmd_id = uuid.uuid4().hex[:16]
        args = {"capture_id": cmd_id, "at": round(time.time() + delay_s, 3)}
        if fmt:
            args["format"] = fmt
        return self.send("capture", args, ALL, cmd_id)

    # -- for the page ----------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """Everything the page shows, JSON-ready (thumbnails as sequence numbers)."""
        with self._lock:
            cams = []
            for name in sorted(self.cameras):
                c = self.cameras[name]
                cams.append({"camera": name, "online": c["online"], "state": c["state"],
                             "thumb_seq": c["thumb_seq"], "seen_unix": c["seen_unix"], "events": c["events"]})
            cmds = [_command_summary(c) for c in self.commands.values()]
        return {"rig": self.params.rig, "connected": self.client.connected.is_set(), "cameras": cams,
                "commands": cmds[-10:], "time_unix": time.time()}

    def thumb(self, camera: str) -> Optional[bytes]:
        """The camera's latest thumbnail JPEG, or None."""
        with self._lock:
            c = self.cameras.get(camera)
            return c["thumb"] if c else None


def _command_summary(cmd: dict) -> dict:
    """A command with its replies and, for a capture, the spread of the actual times."""
    d = {k: cmd[k] for k in ("id", "name", "target", "sent_unix", "expected", "sends")}
    d["replies"] = cmd["replies"]
    d["missing"] = [c for c in cmd["expected"] if c not in cmd["replies"]]
    if cmd["name"] == "capture":
        times = [(r.get("result") or {}).get("actual_unix") for r in cmd["replies"].values()]
        d["spread_ms"] = spread_ms(times)
    return d


def _safe_decode(payload: bytes) -> dict:
    try:
        return decode(payload)
    except Exception:  # a stranger's payload must not break the view
        return {}
