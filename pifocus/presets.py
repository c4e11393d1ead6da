"""Rack focus: named lens positions (A, B, ...) kept across restarts, and moves between them at
a set speed (follow focus).

* :class:`PresetStore` -- the presets file (JSON in the state dir, written atomically: a
  crash leaves the old file or the new one, whole).
* :class:`RackParams` + :func:`rack_legs` / :func:`rack_to` -- move a drive to a position at
  ``speed_units_s`` in small legs (``tick_s`` apart), the last one from the drive's approach
  side so backlash drops out; a cancel event stops it between legs.

Used by ``pifocus preset`` and by the ``serve`` daemon (``/api/presets``, the page).
"""

import json
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Optional

from .exc import ConfigError
from .validate import require

log = logging.getLogger(__name__)

#: A preset name: 1..24 letters, digits, space, ``_`` or ``-`` (``A``, ``B``, ``far wall``).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,23}$")
#: Most presets kept.
MAX_PRESETS = 32
#: File name in the state dir.
FILE_NAME = "presets.json"


def check_name(name) -> str:
    """``name`` stripped, if it is a valid preset name.

    Raises:
        ConfigError: not 1..24 letters, digits, spaces, ``_`` or ``-`` starting with a letter
            or digit.
    """
    if not isinstance(name, str) or not NAME_RE.match(name.strip()):
        raise ConfigError(f"preset name {name!r} is invalid; allowed: 1..24 letters, digits, spaces, '_' or '-', "
                          "starting with a letter or digit (e.g. A, B, far-wall)")
    return name.strip()


class PresetStore:
    """Named lens positions in one JSON file (``{"version": 1, "presets": {name: {"position":
    float, "units": str, "time": unix s}}}``).

    Args:
        path: the file; ``None`` = ``presets.json`` in :func:`pifocus.drive.state.default_state_dir`.

    Raises:
        ConfigError: (on read) the file exists but is not a presets file.
    """

    def __init__(self, path: Optional[str] = None):
        if path is None:
            from .drive.state import default_state_dir
            path = os.path.join(default_state_dir(), FILE_NAME)
        self.path = str(path)
        self._lock = threading.Lock()

    def load(self) -> Dict[str, dict]:
        """All presets, name -> ``{"position", "units", "time"}`` ({} when there is no file).

        Raises:
            ConfigError: the file is not valid JSON or not a presets file (named, with the fix).
        """
        try:
            with open(self.path, "r", encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise ConfigError(f"presets file {self.path}: cannot read it ({e}); fix or delete the file") from e
        presets = data.get("presets") if isinstance(data, dict) else None
        if not isinstance(presets, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("position"), (int, float)) for v in presets.values()):
            raise ConfigError(f"presets file {self.path}: not a pifocus presets file; delete it to start again")
        return presets

    def _write(self, presets: Dict[str, dict]) -> None:
        from .drive.state import atomic_write_json
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        atomic_write_json(self.path, {"version": 1, "presets": presets})

    def save(self, name: str, position: float, units: str = "steps") -> dict:
        """Store ``position`` (drive units) as ``name`` (replacing one of that name); returns
        the preset.

        Raises:
            ConfigError: bad name, a position that is not a finite number, or more than
                :data:`MAX_PRESETS` presets.
            OSError: the file cannot be written.
        """
        name = check_name(name)
        require(isinstance(position, (int, float)) and math.isfinite(float(position)), "preset", "position",
                position, "a finite number (drive units)")
        with self._lock:
            presets = self.load()
            if name not in presets and len(presets) >= MAX_PRESETS:
                raise ConfigError(f"preset {name!r}: already {MAX_PRESETS} presets; delete one first")
            presets[name] = {"position": round(float(position), 4), "units": units, "time": round(time.time(), 1)}
            self._write(presets)
        log.info("preset %s = %g %s", name, position, units)
        return dict(presets[name], name=name)

    def get(self, name: str) -> dict:
        """The preset ``name``.

        Raises:
            ConfigError: no such preset (the message lists the ones there are).
        """
        name = check_name(name)
        presets = self.load()
        if name not in presets:
            have = ", ".join(sorted(presets)) or "none yet"
            raise ConfigError(f"no preset {name!r}; saved presets: {have}")
        return dict(presets[name], name=name)

    def delete(self, name: str) -> None:
        """Remove the preset ``name``.

        Raises:
            ConfigError: no such preset.
        """
        name = check_name(name)
        with self._lock:
            presets = self.load()
            if name not in presets:
                raise ConfigError(f"no preset {name!r}; saved presets: {', '.join(sorted(presets)) or 'none yet'}")
            del presets[name]
            self._write(presets)


@dataclass(frozen=True)
class RackParams:
    """Validated parameters of a rack-focus move.

    Attributes:
        speed_units_s: lens speed, drive units per second (steps/s); the drive's own
            ``[drive] speed`` still caps each leg.
        tick_s: time between legs, seconds (smaller = smoother, more moves).
    """

    speed_units_s: float = 200.0
    tick_s: float = 0.05

    def __post_init__(self):
        require(isinstance(self.speed_units_s, (int, float)) and 0.1 <= self.speed_units_s <= 1e6, "rack",
                "speed_units_s", self.speed_units_s, "0.1..1000000 drive units per second")
        require(0.005 <= self.tick_s <= 1.0, "rack", "tick_s", self.tick_s, "0.005..1 s")


def rack_legs(drive, target: float, params: RackParams = RackParams(), cancel: Optional[threading.Event] = None,
              sleep: Callable[[float], None] = time.sleep) -> Iterator[float]:
    """Move ``drive`` to ``target`` at ``params.speed_units_s``, yielding the position after
    every leg: legs of ``speed x tick_s`` units every ``tick_s`` seconds, the last one
    approached from the drive's approach side (backlash drops out).  Stops early (without
    the last leg) once ``cancel`` is set.

    Raises:
        DriveError: the drive refused a move (soft limit with ``on_limit = "error"``, a fault).
    """
    target = float(drive.clamp(float(target)))
    step = params.speed_units_s * params.tick_s
    pos = float(drive.position)
    while abs(target - pos) > step:
        if cancel is not None and cancel.is_set():
            return
        tl = time.monotonic()
        pos = float(drive.move_to(pos + math.copysign(step, target - pos), approach=False))
        yield pos
        sleep(max(0.0, params.tick_s - (time.monotonic() - tl)))
    if cancel is not None and cancel.is_set():
        return
    yield float(drive.move_to(target, approach=True))


def leg_count(start: float, target: float, params: RackParams) -> int:
    """How many legs :func:`rack_legs` takes from ``start`` to ``target`` (for a progress bar)."""
    return int(math.ceil(max(0.0, abs(target - start) - 1e-9) / (params.speed_units_s * params.tick_s))) or 1


def rack_to(drive, target: float, params: RackParams = RackParams(), cancel: Optional[threading.Event] = None,
            sleep: Callable[[float], None] = time.sleep) -> dict:
    """:func:`rack_legs` to the end; returns ``{"position", "legs", "cancelled", "time_s"}``.

    Raises:
        DriveError: the drive refused a move.
    """
    t0 = time.monotonic()
    legs, pos = 0, float(drive.position)
    for pos in rack_legs(drive, target, params, cancel, sleep):
        legs += 1
    return {"position": pos, "legs": legs, "cancelled": bool(cancel is not None and cancel.is_set()),
            "time_s": round(time.monotonic() - t0, 3)}
