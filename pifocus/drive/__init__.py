"""Focus drives: what turns the lens.

:class:`FocusDrive` is the base class; one module per implementation:

* :mod:`.stepper`   -- step/dir drivers (A4988, DRV8825, TMC2209)
* :mod:`.uln2003`   -- 28BYJ-48 4-phase motor on a ULN2003 board
* :mod:`.libcamera` -- Camera Module 3 (or any libcamera lens) ``LensPosition``
* :mod:`.simulated` -- a focus ring over the ``sim`` frame source (backlash, missed steps, settle)
* :mod:`.replay`    -- a recorded sweep acting as a lens (``replay:DIR``)

:func:`open_drive` turns a drive string (``sim``, ``replay:DIR``, ``stepper``, ``uln2003``,
``libcamera``) into a drive.

Position safety, the same for every drive:

* **Units**: steps (motor step pulses, i.e. microsteps for step/dir drivers), dioptres for
  libcamera lenses, the recorded position for replay.
* **Soft limits** (``min_position`` .. ``max_position``, default the drive's native range)
  are never exceeded, whatever a caller asks: with ``on_limit = "clamp"`` (default) a
  target outside them is clamped to the nearest limit (and logged); with ``"error"`` it
  raises :class:`~pifocus.exc.LimitError` and the lens does not move.  Backlash overshoot
  is clamped to the limits too.  Only :meth:`FocusDrive.home` drives past them, on purpose,
  towards the end stop or limit switch, because the position is unknown until it is done.
* **Persistence**: the position is written to a state file (JSON, temp file + fsync +
  ``os.replace`` + directory fsync, so a crash leaves either the old or the new file, never
  a torn one) before a move (marked "moving") and after it.  On open the position is
  restored; if the process died during a move the position is *uncertain*: the drive homes
  when homing is configured, else it warns and :attr:`FocusDrive.position_uncertain` is set.
* **Backlash**: with ``backlash > 0`` every move whose last leg would run against the
  final-approach side (``approach = "up"``: moving to higher positions) first overshoots by
  the backlash (+ margin) and comes back, so the lens always arrives from the same side.
* **Manual ring turns**: :func:`curve_offset` / :class:`RingWatch` compare a fresh focus
  curve (or the sharpness at the resting position) with the one recorded at the last
  autofocus and report when the ring has been turned by hand.
"""

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from ..exc import ConfigError, DriveError, LimitError
from ..validate import require

log = logging.getLogger(__name__)

DRIVE_KINDS = ("sim", "replay", "stepper", "uln2003", "libcamera")


@dataclass(frozen=True)
class DriveParams:
    """Validated parameters of a focus drive (config table ``[drive]``).

    Attributes:
        name: drive string: ``sim``, ``replay:DIR``, ``stepper``, ``uln2003``, ``libcamera``.
        min_position, max_position: soft limits in drive units; ``None`` = the drive's
            native range (sim: 0..range_steps, replay: first..last recorded position,
            stepper/uln2003: 0..travel_steps, libcamera: the camera's LensPosition limits).
        on_limit: ``"clamp"`` a target outside the soft limits to the limit, or ``"error"``
            (raise LimitError, do not move).
        speed: top speed, units per second (steps/s; dioptres/s for libcamera).
        acceleration: ramp, units/s² (0 = no ramp: start at full speed).
        backlash: play in the focus train, units; moves end from the ``approach`` side.
        backlash_margin: extra overshoot beyond ``backlash`` before the final approach.
        approach: side of the final approach: ``"up"`` (towards higher positions) or ``"down"``.
        state_file: where the position is kept across restarts; ``None`` = the default
            (``$PIFOCUS_STATE_DIR`` or ``$XDG_STATE_HOME/pifocus`` or
            ``~/.local/state/pifocus``, file ``<drive>-position.json``) for hardware drives
            and no file for sim/replay; ``""`` or ``"none"`` = do not persist.
        homing: ``"none"``, ``"endstop"`` (drive ``home_travel`` steps into the mechanical
            stop on the ``home_side``, the motor slips at the stop) or ``"switch"`` (step
            until ``limit_pin`` reads active).
        home_on_open: home when the drive is opened (always when the restored position
            is uncertain and homing is configured).
        home_side: ``"min"`` or ``"max"``: which end the stop/switch is at.
        home_travel: most steps to travel while homing; ``None`` = 1.2 x the native range.
        home_speed: speed while homing, units/s (no ramp); ``None`` = speed / 4, gentle on
            the end stop and slow enough to stop within a step of the switch.
        limit_pin: GPIO of the limit switch (gpiozero name, e.g. ``"GPIO5"``), switch to GND.
        limit_active_low: the switch pulls the pin low when made (internal pull-up used).
        travel_steps: native range of stepper/uln2003 drives, steps.
        settle_s: wait after each move before frames are trusted, seconds.
        settle_frames: frames to discard after each move (pipelined camera frames).
        step_pin, dir_pin, enable_pin: stepper GPIOs (``enable_pin = ""`` = none).
        enable_active_low: the driver's EN input is active low (A4988/DRV8825/TMC2209: yes).
        invert_dir: swap the meaning of the DIR level.
        driver: ``"a4988"``, ``"drv8825"`` or ``"tmc2209"`` (sets pulse timing and the
            allowed microstepping).
        microsteps: microstepping set on the driver (by jumpers or ``ms_pins``).
        ms_pins: MS1, MS2[, MS3] GPIOs to set the microstepping, empty = set by jumpers.
        step_pulse_us: STEP high time, microseconds.
        hold: keep the coils energized between moves while open (else de-energize after
            each move; ``close()`` always de-energizes).
        backend: ``"auto"`` (lgpio step trains on a Pi when available, else gpiozero),
            ``"lgpio"`` or ``"gpiozero"``.
        gpiochip: lgpio chip number (Pi 5: 0 on current kernels, 4 on older ones), -1 = auto.
        coil_pins: ULN2003 IN1..IN4 GPIOs (default GPIO6, 13, 19, 26: clear of the default
            outputs -- LED GPIO17, and GPIO18/27 suggested for meter/buzzer -- and of the
            stepper's GPIO16/20/21).
        half_step: 28BYJ-48 half stepping (8 phases) instead of full stepping (4 phases).
    """

    name: str = "sim"
    min_position: Optional[float] = None
    max_position: Optional[float] = None
    on_limit: str = "clamp"
    speed: float = 800.0
    acceleration: float = 4000.0
    backlash: float = 0.0
    backlash_margin: float = 2.0
    approach: str = "up"
    state_file: Optional[str] = None
    homing: str = "none"
    home_on_open: bool = False
    home_side: str = "min"
    home_travel: Optional[float] = None
    home_speed: Optional[float] = None
    limit_pin: str = ""
    limit_active_low: bool = True
    travel_steps: int = 2000
    settle_s: float = 0.0
    settle_frames: int = 0
    step_pin: str = "GPIO20"
    dir_pin: str = "GPIO21"
    enable_pin: str = "GPIO16"
    enable_active_low: bool = True
    invert_dir: bool = False
    driver: str = "a4988"
    microsteps: int = 1
    ms_pins: Tuple[str, ...] = ()
    step_pulse_us: float = 5.0
    hold: bool = True
    backend: str = "auto"
    gpiochip: int = -1
    coil_pins: Tuple[str, ...] = ("GPIO6", "GPIO13", "GPIO19", "GPIO26")
    half_step: bool = True

    def __post_init__(self):
        s = "drive"
        require(isinstance(self.name, str) and self.name.strip() != "", s, "name", self.name,
                "sim, replay:DIR, stepper, uln2003, libcamera")
        for key in ("min_position", "max_position"):
            v = getattr(self, key)
            require(v is None or math.isfinite(float(v)), s, key, v, "a finite number or unset")
        if self.min_position is not None and self.max_position is not None:
            require(self.min_position < self.max_position, s, "max_position", self.max_position,
                    f"> min_position ({self.min_position})")
        require(self.on_limit in ("clamp", "error"), s, "on_limit", self.on_limit, "clamp, error")
        require(self.speed > 0, s, "speed", self.speed, "> 0 units/s")
        require(self.acceleration >= 0, s, "acceleration", self.acceleration, ">= 0 units/s² (0 = no ramp)")
        require(self.backlash >= 0, s, "backlash", self.backlash, ">= 0")
        require(self.backlash_margin >= 0, s, "backlash_margin", self.backlash_margin, ">= 0")
        require(self.approach in ("up", "down"), s, "approach", self.approach, "up, down")
        require(self.homing in ("none", "endstop", "switch"), s, "homing", self.homing,
                "none, endstop, switch")
        require(self.home_side in ("min", "max"), s, "home_side", self.home_side, "min, max")
        require(self.home_travel is None or self.home_travel > 0, s, "home_travel", self.home_travel, "> 0")
        require(self.home_speed is None or self.home_speed > 0, s, "home_speed", self.home_speed, "> 0 units/s")
        require(self.homing != "switch" or bool(self.limit_pin) or self.name.startswith("sim"), s,
                "limit_pin", self.limit_pin, "a GPIO name such as 'GPIO5'",
                "homing = 'switch' needs the pin the limit switch is wired to")
        require(1 <= int(self.travel_steps) <= 10_000_000, s, "travel_steps", self.travel_steps, "1..10000000")
        require(0 <= self.settle_s <= 10, s, "settle_s", self.settle_s, "0..10 s")
        require(0 <= int(self.settle_frames) <= 30, s, "settle_frames", self.settle_frames, "0..30")
        require(self.driver in MICROSTEPS, s, "driver", self.driver, ", ".join(MICROSTEPS))
        require(int(self.microsteps) in MICROSTEPS.get(self.driver, ()), s, "microsteps", self.microsteps,
                f"{', '.join(map(str, MICROSTEPS.get(self.driver, ())))} for the {self.driver}")
        require(len(self.ms_pins) in (0, 2, 3), s, "ms_pins", self.ms_pins, "[] or 2-3 GPIO names")
        require(0.1 <= self.step_pulse_us <= 1000, s, "step_pulse_us", self.step_pulse_us, "0.1..1000 µs")
        require(self.backend in ("auto", "lgpio", "gpiozero"), s, "backend", self.backend,
                "auto, lgpio, gpiozero")
        require(-1 <= int(self.gpiochip) <= 16, s, "gpiochip", self.gpiochip, "-1 (auto) or 0..16")
        require(len(self.coil_pins) == 4, s, "coil_pins", self.coil_pins, "4 GPIO names (IN1..IN4)")

    @property
    def homing_speed(self) -> float:
        """Speed used while homing."""
        return self.home_speed if self.home_speed is not None else self.speed / 4

    @property
    def approach_sign(self) -> int:
        """+1 when the final approach runs towards higher positions, else -1."""
        return 1 if self.approach == "up" else -1


#: Microstep settings each driver supports (by its MS pins / jumpers).
MICROSTEPS = {
    "a4988": (1, 2, 4, 8, 16),
    "drv8825": (1, 2, 4, 8, 16, 32),
    "tmc2209": (8, 16, 32, 64),
}


def default_state_dir() -> str:
    """Directory for drive state files."""
    d = os.environ.get("PIFOCUS_STATE_DIR")
    if d:
        return d
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "pifocus")


def atomic_write_json(path: str, data: dict) -> None:
    """Write JSON so that a crash at any point leaves the old or the new file, whole.

    Temp file in the same directory, ``flush`` + ``fsync``, ``os.replace`` over the target,
    then ``fsync`` of the directory so the rename itself is durable.
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def read_state(path: str) -> Optional[dict]:
    """The saved drive state, or None when there is none or it cannot be read."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("drive state file %s unreadable (%s); position unknown", path, e)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("position"), (int, float)):
        log.warning("drive state file %s has no position; ignoring it", path)
        return None
    return data


class FocusDrive:
    """Base class of every focus drive.

    Subclasses set :attr:`kind` / :attr:`units`, give their native range to ``__init__``
    and implement :meth:`_move_hw` (and optionally :meth:`_open_hw`, :meth:`_close_hw`,
    :meth:`_deenergize`, :meth:`_raw_step` and :meth:`_switch_active` for homing).

    Callers use :meth:`open` / :meth:`close` (or ``with``), :attr:`position`,
    :meth:`move_to`, :meth:`move_by`, :meth:`home`.

    Attributes:
        source: the frame source whose frames show this lens (sim, replay, libcamera:
            the camera source; stepper/uln2003: ``None`` -- use the configured camera).
        moves: physical moves made since open (an overshoot + approach counts as two).
        travel: total distance moved since open, units.
        position_uncertain: the restored position may be wrong (the process died
            mid-move and no homing is configured).
        resolution: smallest meaningful position change (1 step; replay: the smallest
            gap between recorded positions; libcamera: 0.01 dioptre).
    """

    kind = "drive"
    units = "steps"
    resolution = 1.0
    #: frames a camera still delivers from before a move even when a fresh frame is asked
    #: for (added to ``settle_frames`` by autofocus); libcamera lenses: 1
    pipeline_frames = 0
    integer_positions = True
    #: Drives whose state is virtual (sim, replay) keep no state file unless asked to.
    persistent_by_default = True

    def __init__(self, params: DriveParams, native_range: Tuple[float, float]):
        self.params = params
        self.native_range = (float(native_range[0]), float(native_range[1]))
        self.source = None
        self.moves = 0
        self.travel = 0.0
        self.position_uncertain = False
        self._position = None  # logical position, units
        self._last_dir = 0     # direction of the last leg: slack is taken up on that side
        self._opened = False
        self._homed = False
        self.state_path = self._state_path()
        #: called with (drive, from, to) before each leg, before anything is written
        self.on_move: Optional[Callable[["FocusDrive", float, float], None]] = None
        #: called after the write-ahead record, just before the hardware moves
        self.on_moving: Optional[Callable[["FocusDrive", float, float], None]] = None

    # -- limits -----------------------------------------------------------------------
    @property
    def limits(self) -> Tuple[float, float]:
        """Soft limits ``(lo, hi)``: the configured ones, inside the native range."""
        lo, hi = self.native_range
        p = self.params
        if p.min_position is not None:
            lo = max(lo, float(p.min_position))
        if p.max_position is not None:
            hi = min(hi, float(p.max_position))
        if lo >= hi:
            raise ConfigError(
                f"drive {self.name!r}: soft limits {p.min_position}..{p.max_position} do not overlap the "
                f"drive's range {self.native_range[0]:g}..{self.native_range[1]:g}; fix drive.min_position/max_position")
        return lo, hi

    @property
    def name(self) -> str:
        """The drive string."""
        return self.params.name

    def check_range(self, lo: float, hi: float, what: str = "range") -> None:
        """Raise :class:`LimitError` unless ``lo..hi`` lies within the soft limits."""
        a, b = self.limits
        eps = 1e-9 + 1e-6 * abs(b - a)
        if min(lo, hi) < a - eps or max(lo, hi) > b + eps:
            raise LimitError(f"{what} {lo:g}..{hi:g} is outside the soft limits {a:g}..{b:g} of drive "
                             f"{self.name!r}; choose a range inside them (or widen drive.min_position/max_position)")

    def clamp(self, target: float) -> float:
        """``target`` clamped to the soft limits (and rounded for integer-step drives)."""
        lo, hi = self.limits
        t = min(max(float(target), lo), hi)
        if self.integer_positions:
            t = float(round(t))
            t = min(max(t, math.ceil(lo)), math.floor(hi))
        return t

    def _legal(self, target: float) -> float:
        target = float(target)
        if not math.isfinite(target):
            raise LimitError(f"drive {self.name!r}: target position {target!r} is not a number")
        lo, hi = self.limits
        t = self.clamp(target)
        eps = 1e-9 * max(1.0, abs(hi - lo)) + (0.5 if self.integer_positions else 0.0)
        if target < lo - eps or target > hi + eps:
            if self.params.on_limit == "error":
                raise LimitError(f"drive {self.name!r}: position {target:g} is outside the soft limits "
                                 f"{lo:g}..{hi:g}; ask for a position inside them")
            log.info("drive %s: target %g clamped to %g (soft limits %g..%g)", self.name, target, t, lo, hi)
        return t

    # -- lifecycle --------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True until opened and after close()."""
        return not self._opened

    def open(self) -> "FocusDrive":
        """Open the hardware, restore the position (or home).  Idempotent."""
        if self._opened:
            return self
        self._open_hw()
        self._opened = True
        try:
            self._restore()
            if self.params.homing != "none" and (self.params.home_on_open or self.position_uncertain):
                self.home()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Save the position, de-energize the motor and release the pins.  Idempotent."""
        if not self._opened:
            return
        self._opened = False
        try:
            self._save(moving=False)
        except Exception:
            log.exception("drive %s: could not save the position", self.name)
        try:
            self._deenergize()
        except Exception:
            log.exception("drive %s: could not de-energize", self.name)
        try:
            self._close_hw()
        except Exception:
            log.exception("drive %s: error while closing", self.name)

    def __enter__(self) -> "FocusDrive":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {self._position}>"

    # -- position ---------------------------------------------------------------------
    @property
    def position(self) -> float:
        """Where the lens is, in drive units."""
        if self._position is None:
            self.open()
        return float(self._position)

    def default_position(self) -> float:
        """Position assumed when nothing is saved (subclasses may know better)."""
        return self.limits[0]

    def move_to(self, target: float, approach: Optional[bool] = None,
                overshoot: Optional[float] = None) -> float:
        """Move to ``target`` (clamped to the soft limits, or LimitError -- see ``on_limit``).

        Args:
            target: position in drive units.
            approach: ``True`` forces the final leg to come from the ``approach`` side
                (overshoot by ``max(backlash + margin, margin)`` when needed), ``False``
                moves straight, ``None`` (default) compensates only when ``backlash > 0``.
            overshoot: with ``approach``: overshoot at least this far (units) even when the
                configured backlash is smaller (autofocus uses it so that an uncalibrated
                drive still approaches from one side).

        Returns:
            The position reached.
        """
        if not self._opened:
            self.open()
        t = self._legal(target)
        cur = float(self._position)
        p = self.params
        if approach is None:
            approach = p.backlash > 0
        legs: List[float] = []
        if approach:
            s = p.approach_sign
            need_overshoot = (t - cur) * s < 0 or (t == cur and self._last_dir == -s)
            dist = max(p.backlash + p.backlash_margin, float(overshoot or 0.0))
            if need_overshoot or (t != cur and self._last_dir == -s and abs(t - cur) < dist):
                over = self.clamp(t - s * dist)
                if over != t and over != cur:
                    legs.append(over)
        legs.append(t)
        for leg in legs:
            self._leg(leg)
        if not p.hold:
            self._deenergize()
        if p.settle_s > 0:
            time.sleep(p.settle_s)
        return float(self._position)

    def move_by(self, delta: float, approach: Optional[bool] = None,
                overshoot: Optional[float] = None) -> float:
        """Move by ``delta`` units (same rules as :meth:`move_to`)."""
        return self.move_to(self.position + float(delta), approach=approach, overshoot=overshoot)

    def _leg(self, target: float) -> None:
        cur = float(self._position)
        if target == cur:
            return
        lo, hi = self.limits
        if not (lo - 1e-9 <= target <= hi + 1e-9):  # defence in depth: never reached
            raise LimitError(f"drive {self.name!r}: internal move to {target:g} outside {lo:g}..{hi:g}")
        if self.on_move is not None:
            self.on_move(self, cur, target)   # (tests and the bench hook in here)
        self._save(moving=True, target=target)
        if self.on_moving is not None:
            self.on_moving(self, cur, target)
        self._move_hw(cur, target)
        self._last_dir = 1 if target > cur else -1
        self._position = target
        self.moves += 1
        self.travel += abs(target - cur)
        self._save(moving=False)

    # -- homing -----------------------------------------------------------------------
    def home(self) -> float:
        """Find the reference position against the end stop or limit switch.

        ``homing = "endstop"``: drive ``home_travel`` steps towards ``home_side`` (the motor
        slips at the stop).  ``"switch"``: step towards it until the switch is active (and
        back off until it releases).  Then the position is the native end of that side, and
        the drive moves to the nearest soft limit from the approach side.

        Returns:
            The drift found: old belief minus the true position (0 for a well-kept position;
            NaN when the old position was unknown).

        Raises:
            DriveError: homing is not configured, or the switch never triggered.
        """
        p = self.params
        if p.homing == "none":
            raise DriveError(f"drive {self.name!r}: homing is not configured; set [drive] homing = "
                             "'endstop' or 'switch' (with limit_pin)")
        if not self._opened:
            self.open()
        lo_n, hi_n = self.native_range
        sign = -1 if p.home_side == "min" else 1
        travel = p.home_travel if p.home_travel is not None else 1.2 * (hi_n - lo_n)
        ref = lo_n if sign < 0 else hi_n
        before = None if self.position_uncertain or self._position is None else float(self._position)
        # Write-ahead: until homing completes the position is not known.
        self._write_state({"position": float(self._position if self._position is not None else ref),
                           "moving": True, "homing": True})
        if p.homing == "endstop":
            self._raw_step(sign, int(math.ceil(travel)))
            moved = None
        else:
            moved = 0
            chunk = 1
            while not self._switch_active():
                if moved >= travel:
                    raise DriveError(
                        f"drive {self.name!r}: limit switch on {p.limit_pin or 'the sim'} never triggered within "
                        f"{travel:g} steps towards {p.home_side}; check the wiring, limit_active_low and home_side")
                self._raw_step(sign, chunk)
                moved += chunk
        self._position = ref
        self._last_dir = sign
        self.position_uncertain = False
        self._homed = True
        self._save(moving=False)
        drift = math.nan if before is None or moved is None else before - (ref - sign * moved)
        if before is not None and moved is not None and abs(drift) > 0.5:
            log.warning("drive %s: homing found the position off by %g %s (missed steps?); corrected",
                        self.name, drift, self.units)
        lo, hi = self.limits
        self.move_to(lo if sign < 0 else hi, approach=True)
        return drift

    # -- state file -------------------------------------------------------------------
    def _state_path(self) -> Optional[str]:
        sf = self.params.state_file
        if sf is None:
            if not self.persistent_by_default:
                return None
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.params.name)
            return os.path.join(default_state_dir(), f"{safe}-position.json")
        if sf.strip().lower() in ("", "none"):
            return None
        return os.path.expanduser(sf)

    def _write_state(self, data: dict) -> None:
        if not self.state_path:
            return
        data = dict(data, drive=self.kind, name=self.params.name, units=self.units,
                    last_dir=self._last_dir, time=time.time(), version=1)
        try:
            atomic_write_json(self.state_path, data)
        except OSError as e:
            raise DriveError(f"drive {self.name!r}: cannot write state file {self.state_path}: {e}; "
                             "make its folder writable or set drive.state_file") from e

    def _save(self, moving: bool, target: Optional[float] = None) -> None:
        if self._position is None:
            return
        data = {"position": float(self._position), "moving": bool(moving), "homed": self._homed}
        if target is not None:
            data["target"] = float(target)
        self._write_state(data)

    def _restore(self) -> None:
        st = read_state(self.state_path) if self.state_path else None
        if st is None:
            if self._position is None:
                self._position = self.clamp(self.default_position())
            return
        if st.get("drive") not in (None, self.kind):
            log.warning("drive state file %s belongs to a %s drive, not %s; ignoring it",
                        self.state_path, st.get("drive"), self.kind)
            self._position = self.clamp(self.default_position())
            return
        pos = float(st["position"])
        self._last_dir = int(st.get("last_dir", 0) or 0)
        self._homed = bool(st.get("homed", False))
        if st.get("moving"):
            self.position_uncertain = True
            target = st.get("target")
            log.warning("drive %s: the last run stopped during a move (%g -> %s); the position is uncertain%s",
                        self.name, pos, target,
                        "; homing" if self.params.homing != "none" else
                        "; configure homing or check the focus")
        lo, hi = self.native_range
        if not (lo - 1e-6 <= pos <= hi + 1e-6):
            log.warning("drive %s: saved position %g is outside the range %g..%g; position uncertain",
                        self.name, pos, lo, hi)
            self.position_uncertain = True
            pos = min(max(pos, lo), hi)
        self._position = pos

    # -- for subclasses ---------------------------------------------------------------
    def _open_hw(self) -> None:
        pass

    def _close_hw(self) -> None:
        pass

    def _deenergize(self) -> None:
        pass

    def _move_hw(self, start: float, target: float) -> None:
        raise NotImplementedError

    def _raw_step(self, direction: int, steps: int) -> None:
        """Move ``steps`` in ``direction`` ignoring limits and position (homing only)."""
        raise DriveError(f"drive {self.name!r} cannot home (no raw stepping)")

    def _switch_active(self) -> bool:
        raise DriveError(f"drive {self.name!r} has no limit switch")


# ---------------------------------------------------------------------------------------
# Motion profile (shared by the step/dir and ULN2003 drives)
# ---------------------------------------------------------------------------------------

def step_intervals(steps: int, max_rate: float, accel: float, start_rate: Optional[float] = None):
    """Seconds between step pulses for a trapezoidal (or triangular) speed profile.

    Args:
        steps: number of steps.
        max_rate: top speed, steps/s.
        accel: acceleration, steps/s² (0 = constant ``max_rate``).
        start_rate: speed of the first step (default ``min(max_rate, sqrt(accel))``, i.e.
            what the motor can start at without stalling).

    Returns:
        A float array of ``steps`` intervals; symmetric ramps up and down.
    """
    import numpy as np

    n = int(steps)
    if n <= 0:
        return np.zeros(0)
    if accel <= 0:
        return np.full(n, 1.0 / max_rate)
    v0 = min(max_rate, start_rate if start_rate else max(math.sqrt(accel), 1.0))
    k = np.arange(n, dtype=np.float64)
    up = np.sqrt(v0 * v0 + 2.0 * accel * k)           # speed reachable after k steps
    down = np.sqrt(v0 * v0 + 2.0 * accel * (n - 1 - k))  # speed from which we can still stop
    v = np.minimum(np.minimum(up, down), max_rate)
    return 1.0 / v


# ---------------------------------------------------------------------------------------
# Manual ring turn detection
# ---------------------------------------------------------------------------------------

def curve_offset(reference: Sequence[Sequence[float]], probe: Sequence[Sequence[float]],
                 max_shift: Optional[float] = None, steps: int = 201) -> Tuple[float, float]:
    """How far a focus curve has moved along the position axis.

    Compares log-sharpness of ``probe`` samples ``[[position, score], ...]`` against the
    ``reference`` curve (interpolated) shifted by candidate offsets.

    Returns:
        ``(offset, rms)``: the shift (probe position minus reference position of the same
        feature; the ring was turned by ``-offset`` relative to the motor) and the RMS
        log-residual at that shift.
    """
    import numpy as np

    ref = np.asarray(sorted((float(p), float(s)) for p, s in reference), np.float64)
    pr = np.asarray([(float(p), float(s)) for p, s in probe], np.float64)
    if len(ref) < 3 or len(pr) < 2:
        return 0.0, math.inf
    span = ref[-1, 0] - ref[0, 0]
    max_shift = span / 2 if max_shift is None else max_shift
    lr = np.log(np.maximum(ref[:, 1], 1e-6))
    lp = np.log(np.maximum(pr[:, 1], 1e-6))
    best = (0.0, math.inf)
    for off in np.linspace(-max_shift, max_shift, steps):
        x = pr[:, 0] - off
        ok = (x >= ref[0, 0]) & (x <= ref[-1, 0])
        if ok.sum() < 2:
            continue
        pred = np.interp(x[ok], ref[:, 0], lr)
        rms = float(np.sqrt(np.mean((lp[ok] - pred) ** 2)))
        if rms < best[1] - 1e-12 or (abs(rms - best[1]) < 1e-12 and abs(off) < abs(best[0])):
            best = (float(off), rms)
    return best


class RingWatch:
    """Notice that the focus ring was turned by hand while the drive stood still.

    Give it the AF curve and final position (:meth:`reset`); feed it the sharpness of frames
    taken while the drive has not moved (:meth:`update`).  When the sharpness stays well
    below what the curve says it should be at this position (``drop`` ratio for
    ``frames`` frames in a row) the focus no longer matches the position: either the
    subject moved or the ring was turned.  :meth:`locate` then tells them apart with a short
    probe sweep: a curve of the same shape, shifted, means a manual turn of ``-offset``.
    """

    def __init__(self, drop: float = 0.5, frames: int = 5, tolerance: float = 0.0):
        self.drop = drop
        self.frames = frames
        self.tolerance = tolerance
        self.curve: List[Tuple[float, float]] = []
        self.position: Optional[float] = None
        self.expected = math.nan
        self._low = 0

    def reset(self, curve, position: float, expected: Optional[float] = None) -> None:
        """Start watching after an AF run that ended at ``position``."""
        import numpy as np

        self.curve = sorted((float(p), float(s)) for p, s in curve)
        self.position = float(position)
        if expected is None and self.curve:
            xs = np.array([c[0] for c in self.curve])
            ys = np.array([c[1] for c in self.curve])
            expected = float(np.interp(position, xs, ys))
        self.expected = float(expected) if expected is not None else math.nan
        self._low = 0

    def update(self, score: float) -> bool:
        """Feed one frame's sharpness; True once it has stayed low long enough."""
        if not math.isfinite(self.expected) or self.expected <= 0:
            return False
        self._low = self._low + 1 if score < self.drop * self.expected else 0
        return self._low >= self.frames

    def locate(self, probe) -> dict:
        """Classify a probe sweep ``[[position, score], ...]`` taken after :meth:`update` fired.

        Returns:
            ``{"manual_turn": bool, "offset": float, "rms": float}``; ``offset`` is where
            the peak now is relative to where the drive believes it put it.
        """
        off, rms = curve_offset(self.curve, probe)
        turned = math.isfinite(rms) and rms < 1.0 and abs(off) > max(self.tolerance, 1e-9)
        return {"manual_turn": bool(turned), "offset": off, "rms": rms}


# ---------------------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------------------

def open_drive(spec: Optional[str] = None, source=None, params: Optional[DriveParams] = None,
               **options) -> FocusDrive:
    """Make a :class:`FocusDrive` from a drive string (not yet opened).

    Args:
        spec: ``sim``, ``replay:DIR``, ``stepper``, ``uln2003``, ``libcamera``; default
            ``params.name``.
        source: the frame source the drive works with: a ``SimulatedSource`` for ``sim``
            (made when omitted), the picamera2 source (or a Picamera2 object) for
            ``libcamera``; ignored by ``replay`` (which reads its own folder).
        params: :class:`DriveParams` (default: defaults); ``options`` that are fields of
            DriveParams override it, the rest go to the drive class (e.g. ``backlash_steps``,
            ``missed_step_rate`` for ``sim``; ``pin_factory`` for GPIO drives).

    Raises:
        ConfigError: unknown drive string or option.
        DriveError: the drive cannot be made (folder without frames, ...).
    """
    import dataclasses

    params = params or DriveParams()
    fields = {f.name for f in dataclasses.fields(DriveParams)}
    pchanges = {k: options.pop(k) for k in list(options) if k in fields}
    spec = str(spec if spec is not None else params.name).strip()
    params = dataclasses.replace(params, name=spec, **pchanges)
    kind, _, arg = spec.partition(":")
    kind = kind.lower()
    try:
        if kind == "sim":
            from .simulated import SimulatedDrive
            return SimulatedDrive(params, source=source, **options)
        if kind == "replay":
            if not arg:
                raise ConfigError(f"drive {spec!r}: give the recorded sweep folder, e.g. replay:sweeps/lens1")
            from .replay import ReplayDrive
            return ReplayDrive(arg, params, **options)
        if kind == "stepper":
            from .stepper import StepperDrive
            return StepperDrive(params, **options)
        if kind == "uln2003":
            from .uln2003 import ULN2003Drive
            return ULN2003Drive(params, **options)
        if kind == "libcamera":
            from .libcamera import LibcameraDrive
            return LibcameraDrive(params, source=source, **options)
    except TypeError as e:
        raise ConfigError(f"drive {spec!r}: {e}") from e
    raise ConfigError(f"unknown drive {spec!r}; use sim, replay:DIR, stepper, uln2003 or libcamera")


__all__ = ["DriveParams", "FocusDrive", "open_drive", "step_intervals", "curve_offset", "RingWatch",
           "atomic_write_json", "read_state", "DRIVE_KINDS", "MICROSTEPS"]
