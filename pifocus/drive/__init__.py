"""Focus drives: what turns the lens.

:class:`FocusDrive` (here) is the base class of every drive and :func:`open_drive` (here)
turns a drive string (``sim``, ``replay:DIR``, ``stepper``, ``uln2003``, ``libcamera``) into
one.  The package's modules:

* :mod:`.params`    -- :class:`DriveParams`, the validated ``[drive]`` table, and the
  per-driver microstep settings (``MICROSTEPS``)
* :mod:`.state`     -- state files: where the position is kept across restarts, the atomic
  JSON write, reading it back (:func:`atomic_write_json`, :func:`read_state`,
  :func:`default_state_dir`; the base class's persistence and when it trusts the position:
  uncertain positions, :meth:`FocusDrive.set_position`)
* :mod:`.homing`    -- the homing algorithm (end stop or limit switch) behind
  :meth:`FocusDrive.home`
* :mod:`.timing`    -- :func:`step_intervals`, step pulse timing of the acceleration ramp
* :mod:`.ringwatch` -- manual ring turn detection (:func:`curve_offset`, :class:`RingWatch`)
* :mod:`._gpio`     -- gpiozero helpers of the GPIO drives (pin claiming with clear errors,
  precise waits) and ``StepMotorDrive``, their shared move/homing plumbing
* :mod:`.stepper`   -- step/dir drivers (A4988, DRV8825, TMC2209)
* :mod:`._lgpio`    -- the stepper's lgpio plumbing: the header pins' gpiochip (by label,
  Pi 5 aware) and lgpio errors as :class:`~pifocus.exc.DriveError`
* :mod:`.uln2003`   -- 28BYJ-48 4-phase motor on a ULN2003 board
* :mod:`.libcamera` -- Camera Module 3 (or any libcamera lens) ``LensPosition``
* :mod:`.simulated` -- a focus ring over the ``sim`` frame source (backlash, missed steps, settle)
* :mod:`.replay`    -- a recorded sweep acting as a lens (``replay:DIR``)

The helper modules (params, state, homing, timing, ringwatch) never import this package;
the implementations do (and :func:`open_drive` imports them only when asked for one).

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
  when homing is configured, else :attr:`FocusDrive.position_uncertain` is set.
* **An uncertain position is not trusted**: a step-counting drive (stepper, uln2003, sim)
  whose position is uncertain -- an interrupted move, this run or the last one -- refuses
  every move (autofocus, presets, nudges) with a :class:`~pifocus.exc.DriveError` that names
  the fix: home it (``[drive] homing``: it then homes on open), or turn the lens to a known
  mark and say where it is (``pifocus position --set POS``, or ``--assume-position POS`` on
  autofocus/calibrate/record; :meth:`FocusDrive.set_position`).  The focus verdict, the LED
  and the other outputs do not depend on the drive and keep working.  Drives that set an
  absolute position (libcamera, replay) are certain again after their next completed move.
* **Backlash**: with ``backlash > 0`` every move whose last leg would run against the
  final-approach side (``approach = "up"``: moving to higher positions) first overshoots by
  the backlash (+ margin) and comes back, so the lens always arrives from the same side.
* **Manual ring turns**: :func:`curve_offset` / :class:`RingWatch` compare a fresh focus
  curve (or the sharpness at the resting position) with the one recorded at the last
  autofocus and report when the ring has been turned by hand.
"""

import logging
import math
import time
from typing import Callable, List, Optional, Tuple

from ..exc import ConfigError, DriveError, LimitError
from .homing import run_homing
from .params import DRIVE_KINDS, MICROSTEPS, DriveParams
from .ringwatch import RingWatch, curve_offset
from .state import PersistentPosition, atomic_write_json, default_state_dir, read_state
from .timing import step_intervals

log = logging.getLogger(__name__)


class FocusDrive(PersistentPosition):
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
        position_uncertain, uncertain_reason, told_position, homed_on_open: see
            :class:`~pifocus.drive.state.PersistentPosition`.
        resolution: smallest meaningful position change (1 step; replay: the smallest
            gap between recorded positions; libcamera: 0.01 dioptre).
        state_path: the state file, or ``None`` when the position is not persisted.

    The state file (write-ahead record before each leg, restore on open) is handled by
    :class:`~pifocus.drive.state.PersistentPosition`; drives that show the position
    somewhere else too extend ``_restore``.
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
        self.told_position: Optional[float] = None
        #: (from, to) of a leg interrupted part-way (None: every move completed)
        self._interrupted: Optional[Tuple[float, float]] = None
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
            homed = False
            if self.params.homing != "none" and (self.params.home_on_open or self.position_uncertain):
                self.home()
                homed = True
            self.homed_on_open = homed
            self._apply_told_position(homed)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Save the position, de-energize the motor and release the pins.  Idempotent."""
        if not self._opened:
            return
        self._opened = False
        self._save_on_close()
        try:
            self._deenergize()
        except Exception:
            log.exception("drive %s: could not de-energize", self.name)
        try:
            self._close_hw()
        except Exception:
            log.exception("drive %s: error while closing", self.name)
        log.info("drive %s: closed (de-energized) at %s%s", self.name, self._position,
                 " (position uncertain)" if self.position_uncertain else "")

    def __enter__(self) -> "FocusDrive":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {self._position}>"

    # -- position ---------------------------------------------------------------------
    @property
    def position(self) -> float:
        """Where the lens is, in drive units.

        Raises:
            DriveError: the position is unknown (nothing saved, no homing, no
                ``assume_position``; see :meth:`_require_position`).
        """
        if self._position is None:
            self.open()
        self._require_position()
        return float(self._position)

    def default_position(self) -> Optional[float]:
        """Position assumed when nothing is saved (subclasses may know better); ``None``:
        the drive cannot know it (step counters) -- see ``assume_position``."""
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
            if getattr(self, "_abandoned", False):
                raise DriveError(f"drive {self.name!r} was closed while a move was running (shutdown); "
                                 "no further moves")
            self.open()
        self._require_position()
        self._require_certain()
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
        try:
            if self.on_moving is not None:
                self.on_moving(self, cur, target)
            self._move_hw(cur, target)
        except BaseException as e:
            # Ctrl-C, SIGTERM or a hardware error part-way: the lens is somewhere between cur
            # and target.  The write-ahead record (moving=true) stays the truth on disk.
            self._mark_interrupted(cur, target, e)
            raise
        self._last_dir = 1 if target > cur else -1
        self._position = target
        self.moves += 1
        self.travel += abs(target - cur)
        self._mark_reached()
        if self._opened:  # a move that ends after close() (abandon_move) must not write
            self._save(moving=False)

    # -- homing -----------------------------------------------------------------------
    def home(self) -> float:
        """Find the reference position against the end stop or limit switch.

        ``homing = "endstop"``: drive ``home_travel`` steps towards ``home_side`` (the motor
        slips at the stop).  ``"switch"``: step towards it until the switch is active.  Then
        the position is the native end of that side, and the drive moves to the nearest soft
        limit from the approach side (see :mod:`pifocus.drive.homing`).

        Returns:
            The drift found: old belief minus the true position (0 for a well-kept position;
            NaN when the old position was unknown).

        Raises:
            DriveError: homing is not configured, or the switch never triggered.
        """
        return run_homing(self)

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
           "atomic_write_json", "read_state", "default_state_dir", "DRIVE_KINDS", "MICROSTEPS"]
