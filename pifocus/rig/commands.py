"""The rig commands, carried out through a :class:`pifocus.controls.Controls`.

:class:`CommandRunner` runs one checked :class:`~pifocus.rig.topics.Command` and returns
``(ok, result)``, or raises :class:`~pifocus.exc.ServiceError` with the status that fits
(the same statuses the web API answers).  It runs in a command worker thread of the
bridge, never in paho's network thread or the frame loop: an autofocus command waits for
its run to end, a synchronised capture waits for its named time.
"""

import logging
import math
import threading
import time
from typing import Callable, Optional, Tuple

from ..exc import ServiceError
from .topics import Command, capture_delay_s, wall_time_of

log = logging.getLogger(__name__)

#: Seconds between two looks at the autofocus state while a run goes on.
AF_POLL_S = 0.05
#: The last stretch before a capture's named time is waited out by spinning, not sleeping.
SPIN_S = 0.003
#: Seconds a capture waits for its frame after the named time.
CAPTURE_FRAME_TIMEOUT_S = 3.0
#: Latest a synchronised capture may be named ahead, seconds.
CAPTURE_MAX_AHEAD_S = 300.0


def _clean_id(value, key: str) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or not value.isprintable():
        raise ServiceError(f"{key} = {value!r} is invalid; allowed: a string of 1..64 printable characters")
    return value


class CommandRunner:
    """Carries out rig commands on one camera.

    Args:
        controls: the service's :class:`~pifocus.controls.Controls`.
        reload_fn: ``fn() -> bool`` re-reads the config (True when the new one is in use),
            or None when the service cannot reload.
        reload_error: ``fn() -> str | None``, why the last reload failed.
        emit: ``fn(event_name, document)`` publishes a non-retained event.
        command_timeout_s: longest an autofocus command waits for its run.
        stop: an Event set on shutdown (ends waits early).
    """

    def __init__(self, controls, *, reload_fn: Optional[Callable[[], bool]] = None,
                 reload_error: Optional[Callable[[], Optional[str]]] = None,
                 emit: Optional[Callable[[str, dict], None]] = None, command_timeout_s: float = 120.0,
                 stop: Optional[threading.Event] = None):
        self.controls = controls
        self.reload_fn = reload_fn
        self.reload_error = reload_error or (lambda: None)
        self.emit = emit or (lambda name, doc: None)
        self.command_timeout_s = command_timeout_s
        self.stop = stop or threading.Event()
        self.executed = 0

    def run(self, cmd: Command) -> Tuple[bool, dict]:
        """Carry out ``cmd``; ``(ok, result)``.

        Raises:
            ServiceError: the command was refused (bad argument 400, busy 409, not possible
                now 503, not in this build 501...).
        """
        self.executed += 1
        return getattr(self, "_" + cmd.name)(cmd)

    # -- focus -------------------------------------------------------------------------------
    def _wait_af(self, started: dict) -> Tuple[bool, dict]:
        deadline = time.monotonic() + self.command_timeout_s
        af = started
        while not self.stop.is_set():
            af = self.controls.status().get("autofocus") or {}
            if af.get("state") != "running":
                break
            if time.monotonic() > deadline:
                raise ServiceError(f"autofocus still running after {self.command_timeout_s:g} s "
                                   "(mqtt.command_timeout_s); follow it in the state topic", 504)
            self.stop.wait(AF_POLL_S)
        else:
            raise ServiceError("service stopping", 503)
        af = dict(af)
        self.emit("autofocus", af)
        return af.get("state") == "done", af

    def _autofocus(self, cmd: Command) -> Tuple[bool, dict]:
        strategy = cmd.args.get("strategy")
        if strategy is not None and (not isinstance(strategy, str) or not strategy.strip()):
            raise ServiceError("autofocus: strategy must be a strategy name string, e.g. \"model\"")
        return self._wait_af(self.controls.start_autofocus(strategy))

    def _continuous(self, cmd: Command) -> Tuple[bool, dict]:
        # {"enabled": true|false}: follow focus on or off ([autofocus] mode); default on.
        enabled = cmd.args.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ServiceError(f'continuous: "enabled" = {enabled!r} must be true or false')
        set_mode = getattr(self.controls, "set_af_mode", None)
        if not callable(set_mode):  # a controls object without follow focus: one local pass
            return self._wait_af(self.controls.start_autofocus("continuous"))
        mode = set_mode("continuous" if enabled else "single")
        return True, {"mode": mode}

    def _nudge(self, cmd: Command) -> Tuple[bool, dict]:
        if "steps" not in cmd.args:
            raise ServiceError('nudge: give {"steps": N} (signed integer drive steps; + moves towards far)')
        return True, self.controls.nudge(cmd.args["steps"])

    def _preset(self, cmd: Command) -> Tuple[bool, dict]:
        name = cmd.args.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ServiceError('preset: give {"name": "A"} (a stored lens position)')
        speed = cmd.args.get("speed_units_s", 200.0)
        if isinstance(speed, bool) or not isinstance(speed, (int, float)):
            raise ServiceError(f'preset: "speed_units_s" = {speed!r} must be a number (drive units per second)')
        go = getattr(self.controls, "go_preset", None)
        if not callable(go):
            raise ServiceError("preset: this service's controls offer no lens presets", 501)
        return self._wait_rack(go(name.strip(), float(speed)))

    def _wait_rack(self, started: dict) -> Tuple[bool, dict]:
        deadline = time.monotonic() + self.command_timeout_s
        rack = started
        while not self.stop.is_set():
            rack = self.controls.status().get("rack") or rack
            if rack.get("state") != "moving":
                break
            if time.monotonic() > deadline:
                raise ServiceError(f"preset move still running after {self.command_timeout_s:g} s "
                                   "(mqtt.command_timeout_s); follow it in the state topic", 504)
            self.stop.wait(AF_POLL_S)
        else:
            raise ServiceError("service stopping", 503)
        return rack.get("state") == "done", dict(rack)

    def _reload(self, cmd: Command) -> Tuple[bool, dict]:
        if self.reload_fn is None:
            raise ServiceError("reload: this service cannot reload (started without a config file)", 503)
        ok = bool(self.reload_fn())
        return ok, {"reloaded": ok, "error": None if ok else self.reload_error()}

    # -- synchronised capture ----------------------------------------------------------------
    def _sleep_until(self, at_wall: float) -> None:
        """Wait until ``time.time() >= at_wall``: sleep most of it, spin the last ms."""
        while True:
            left = at_wall - time.time()
            if left <= 0:
                return
            if left > SPIN_S:
                if self.stop.wait(left - SPIN_S):
                    raise ServiceError("service stopping", 503)

    def _capture(self, cmd: Command) -> Tuple[bool, dict]:
        capture_id = _clean_id(cmd.args.get("capture_id"), "capture: capture_id") or cmd.id
        fmt = cmd.args.get("format")
        if fmt is not None and not isinstance(fmt, str):
            raise ServiceError("capture: format must be 'png' or 'jpg'")
        at = cmd.args.get("at")
        capture_delay_s(at, time.time(), CAPTURE_MAX_AHEAD_S)  # refuse a bad time before waiting
        not_before_ns = None
        if at is not None:
            self._sleep_until(float(at))
            # The named time on the monotonic clock the frames are stamped with.
            not_before_ns = time.monotonic_ns() - int((time.time() - float(at)) * 1e9)
        started = time.time()
        out = dict(self.controls.capture(fmt, CAPTURE_FRAME_TIMEOUT_S, not_before_ns))
        ts = out.get("timestamp_ns")
        actual = wall_time_of(ts, time.monotonic_ns(), time.time()) if isinstance(ts, int) else None
        clock = "sensor"
        if actual is None:
            actual, clock = started, "request"  # frames without a monotonic stamp
        doc = {"capture_id": capture_id, "requested_unix": float(at) if at is not None else None,
               "actual_unix": round(actual, 6), "clock": clock,
               "error_ms": round((actual - float(at)) * 1e3, 3) if at is not None and math.isfinite(actual) else None}
        doc.update({k: out[k] for k in ("file", "width", "height", "frame", "lens_position", "bytes") if k in out})
        self.emit("capture", doc)
        log.info("capture %s: %s, %s ms from the named time", capture_id, doc.get("file"), doc["error_ms"])
        return True, doc
