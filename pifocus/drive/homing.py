"""Homing: find a drive's reference position against its end stop or limit switch.

:func:`run_homing` is the algorithm behind :meth:`pifocus.drive.FocusDrive.home`.  It works
through the drive's own hooks -- ``_raw_step(direction, steps)`` (steps ignoring limits and
position), ``_switch_active()`` (the limit switch), ``_write_state`` / ``_save`` (the state
file) and ``move_to`` -- so every drive that can step blindly can home, and this module
needs no drive class.

* ``homing = "endstop"``: step ``home_travel`` steps towards ``home_side``; the motor slips
  at the mechanical stop, so wherever it started it ends at the stop.
* ``homing = "switch"``: step towards ``home_side`` until the switch reads active, at most
  ``home_travel`` steps: in trains of the drive's ``homing_train`` steps (lgpio: each train
  may start ~20 ms late, so not one call per step) with a switch check after each, then back
  off one train and approach the switch again one step at a time.

Afterwards the position is the native end of that side and the drive moves to the nearest
soft limit, arriving from the approach side.
"""

import logging
import math
from typing import Optional

from ..exc import DriveError

# Logged under the name these messages had before this module was split out of
# drive/__init__.py, so log lines ("WARNING pifocus.drive: ...") and journal filters stay the same.
log = logging.getLogger("pifocus.drive")


def run_homing(drive) -> float:
    """Home ``drive`` (a :class:`~pifocus.drive.FocusDrive`; opened when it is not).

    Returns:
        The drift found: old belief minus the true position, drive units (0 for a well-kept
        position; NaN when the old position was unknown or the end stop gives no count).

    Raises:
        DriveError: homing is not configured, the drive cannot step blindly, or the switch
            never triggered within ``home_travel`` steps.
    """
    p = drive.params
    if p.homing == "none":
        raise DriveError(f"drive {drive.name!r}: homing is not configured; set [drive] homing = "
                         "'endstop' or 'switch' (with limit_pin)")
    if not drive._opened:
        drive.open()
    lo_n, hi_n = drive.native_range
    sign = -1 if p.home_side == "min" else 1
    travel = p.home_travel if p.home_travel is not None else 1.2 * (hi_n - lo_n)
    ref = lo_n if sign < 0 else hi_n
    before = None if drive.position_uncertain or drive._position is None else float(drive._position)
    # Write-ahead: until homing completes the position is not known.
    drive._write_state({"position": float(drive._position if drive._position is not None else ref),
                        "moving": True, "homing": True})
    try:
        moved = _seek_reference(drive, sign, travel)
    except BaseException:
        # Interrupted or failed: the homing record (moving) stays; close() must not overwrite it.
        drive._interrupted = (drive._position, ref)
        drive.position_uncertain = True
        drive.uncertain_reason = "homing did not complete"
        raise
    drive._interrupted = None
    drive._position = ref
    drive._last_dir = sign
    drive.position_uncertain = False
    drive.uncertain_reason = ""
    drive._homed = True
    drive._save(moving=False)
    drift = math.nan if before is None or moved is None else before - (ref - sign * moved)
    if before is not None and moved is not None and abs(drift) > 0.5:
        log.warning("drive %s: homing found the position off by %g %s (missed steps?); corrected",
                    drive.name, drift, drive.units)
    lo, hi = drive.limits
    drive.move_to(lo if sign < 0 else hi, approach=True)
    return drift


def _seek_reference(drive, sign: int, travel: float) -> Optional[float]:
    """Step towards the reference (``sign`` -1: min side, +1: max side).

    Returns:
        Steps taken until the switch triggered (``"switch"``), or ``None`` for an end stop,
        where the motor slips and the count says nothing.

    Raises:
        DriveError: the switch did not trigger within ``travel`` steps.
    """
    p = drive.params
    if p.homing == "endstop":
        drive._raw_step(sign, int(math.ceil(travel)))
        return None
    train = max(1, int(getattr(drive, "homing_train", 1)))
    moved = 0
    while not drive._switch_active():
        if moved >= travel:
            _never_triggered(drive, travel)
        n = int(min(train, max(1, math.ceil(travel - moved))))
        drive._raw_step(sign, n)
        moved += n
    if train > 1:  # the switch closed within the last train: back off, find the step
        drive._raw_step(-sign, train)
        moved -= train
        extra = 0
        while drive._switch_active() and extra < train:  # switch hysteresis
            drive._raw_step(-sign, 1)
            moved -= 1
            extra += 1
        limit = moved + 2 * train + extra
        while not drive._switch_active():
            if moved >= limit:
                _never_triggered(drive, travel)
            drive._raw_step(sign, 1)
            moved += 1
    return moved


def _never_triggered(drive, travel: float) -> None:
    p = drive.params
    raise DriveError(
        f"drive {drive.name!r}: limit switch on {p.limit_pin or 'the sim'} never triggered within "
        f"{travel:g} steps towards {p.home_side}; check the wiring, limit_active_low and home_side")
