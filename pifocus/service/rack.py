"""Rack-focus presets in the service: :class:`PresetControls`, the part of
:class:`~pifocus.service.controls.ServiceControls` that saves named lens positions and moves
between them at a set speed (``/api/presets``, the page's A/B buttons).

The presets file is :class:`pifocus.presets.PresetStore` (``[web] presets_file``, default
``presets.json`` in the state dir) -- the same one ``pifocus preset`` uses.  A move runs in a
worker thread holding the drive lock (so autofocus, nudges and follow focus wait), in legs
at the requested speed; ``stop_rack`` ends it between two legs.
"""

import logging
import threading
from typing import Optional

from ..exc import ConfigError, DriveError, PiFocusError, ServiceError
from .status import drive_position

log = logging.getLogger("pifocus.service")


class PresetControls:
    """Preset controls (a mixin: needs ``self._svc`` and ``self._require_drive()``).

    Attributes:
        rack_state: ``{"state": "idle" | "moving" | "done" | "stopped" | "failed", "name",
            "target", "speed_units_s", "position", "error"}`` for ``/api/status``.
    """

    def _init_presets(self, presets_file: Optional[str]) -> None:
        from ..presets import PresetStore
        self.preset_store = PresetStore(presets_file)
        self.rack_state = {"state": "idle"}
        self.rack_stop = threading.Event()
        self.rack_thread: Optional[threading.Thread] = None
        self._preset_cache = None

    def presets(self) -> dict:
        """All presets, name -> ``{"position", "units", "time"}``; never raises (an unreadable
        file reads as none, and says so in the log once)."""
        if self._preset_cache is None:
            try:
                self._preset_cache = self.preset_store.load()
            except ConfigError as e:
                log.error("%s", e)
                self._preset_cache = {}
        return dict(self._preset_cache)

    def save_preset(self, name: str) -> dict:
        """Store the drive's current position as ``name``; returns the preset.

        Raises:
            ServiceError: (400) bad name or too many presets; (503) no drive, or the file
                cannot be written; (409) the drive is moving.
        """
        drive = self._require_drive()
        if self.rack_state.get("state") == "moving":
            raise ServiceError("the lens is moving to a preset; wait for it or stop it", 409)
        try:
            p = self.preset_store.save(name, float(drive.position), getattr(drive, "units", "steps"))
        except ConfigError as e:
            raise ServiceError(str(e)) from None
        except OSError as e:
            raise ServiceError(f"cannot save the preset: {e}", 503) from None
        self._preset_cache = None
        return p

    def delete_preset(self, name: str) -> None:
        """Remove the preset ``name``.

        Raises:
            ServiceError: (400) no such preset; (503) the file cannot be written.
        """
        try:
            self.preset_store.delete(name)
        except ConfigError as e:
            raise ServiceError(str(e)) from None
        except OSError as e:
            raise ServiceError(f"cannot delete the preset: {e}", 503) from None
        self._preset_cache = None

    def go_preset(self, name: str, speed_units_s: float = 200.0) -> dict:
        """Start moving the lens to preset ``name`` at ``speed_units_s`` (drive units/s) in
        the background; returns the rack state (``"moving"``).

        Raises:
            ServiceError: (400) no such preset or a bad speed; (503) no drive; (409) the
                drive is busy (autofocus, a nudge, another move).
        """
        from ..presets import RackParams
        drive = self._require_drive()
        try:
            preset = self.preset_store.get(name)
            rp = RackParams(speed_units_s=speed_units_s)
        except ConfigError as e:
            raise ServiceError(str(e)) from None
        lock = self._svc.drive_lock
        if not lock.acquire(blocking=False):
            raise ServiceError("the drive is busy (autofocus or another move running)", 409)
        self.rack_stop.clear()
        self.rack_state = {"state": "moving", "name": preset["name"], "target": preset["position"],
                           "speed_units_s": rp.speed_units_s, "position": drive_position(drive), "error": None}
        self.rack_thread = threading.Thread(target=self._rack_worker, args=(drive, preset, rp),
                                            name="pifocus-rack", daemon=True)
        self.rack_thread.start()
        return dict(self.rack_state)

    def stop_rack(self) -> dict:
        """Stop a preset move between two legs (the lens stays there); returns the state."""
        if self.rack_state.get("state") == "moving":
            self.rack_stop.set()
            t = self.rack_thread
            if t is not None:
                t.join(2.0)
        return dict(self.rack_state)

    def _rack_worker(self, drive, preset, rp) -> None:
        from ..presets import rack_legs
        state = self.rack_state
        try:
            for pos in rack_legs(drive, preset["position"], rp, self.rack_stop):
                state["position"] = round(pos, 3)
            state["state"] = "stopped" if self.rack_stop.is_set() else "done"
            log.info("rack focus to %s: %s at %s", preset["name"], state["state"], state["position"])
        except (DriveError, PiFocusError) as e:
            state.update(state="failed", error=str(e))
            log.error("rack focus to %s failed: %s", preset["name"], e)
        except Exception as e:  # the worker must end with a state
            state.update(state="failed", error=f"unexpected {type(e).__name__}: {e}")
            log.exception("rack focus crashed")
        finally:
            self._svc.drive_lock.release()
