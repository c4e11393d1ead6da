"""28BYJ-48 4-phase stepper on a ULN2003 board (drive string ``uln2003``).

Four GPIOs drive IN1..IN4 (``coil_pins``, default GPIO6, GPIO13, GPIO19, GPIO26) through
gpiozero ``OutputDevice`` s.  Half stepping (8 phases, 4096 steps per output turn) or full
stepping (two coils on, 4 phases, 2048 steps per turn).  Position is counted in those
steps; the coil phase follows the position, so a restored position re-energizes the same
phase the motor stopped at.  The 28BYJ-48 starts reliably up to ~500 half-steps/s and
runs to ~900 with a ramp.

``close()`` (and every move with ``hold = false``) switches all four coils off: the motor
has enough detent torque to hold a lens, and an energized 28BYJ-48 draws ~240 mA and gets hot.
"""

import logging
import time

from . import DriveParams, step_intervals
from ._gpio import StepMotorDrive, close_all, input_, output, wait_until

log = logging.getLogger(__name__)

HALF_STEP = ((1, 0, 0, 0), (1, 1, 0, 0), (0, 1, 0, 0), (0, 1, 1, 0),
             (0, 0, 1, 0), (0, 0, 1, 1), (0, 0, 0, 1), (1, 0, 0, 1))
FULL_STEP = ((1, 1, 0, 0), (0, 1, 1, 0), (0, 0, 1, 1), (1, 0, 0, 1))


class ULN2003Drive(StepMotorDrive):
    """28BYJ-48 through a ULN2003 driver board.

    Args:
        params: :class:`~pifocus.drive.DriveParams` (``coil_pins``, ``half_step``, speed ...).
        pin_factory: a gpiozero pin factory (tests: ``MockFactory``); default gpiozero's.
    """

    kind = "uln2003"

    def __init__(self, params: DriveParams = DriveParams(name="uln2003", speed=500.0, acceleration=2000.0),
                 pin_factory=None):
        super().__init__(params, (0.0, float(params.travel_steps)))
        self.pin_factory = pin_factory
        self.coils = []
        self.switch = None
        self.sequence = HALF_STEP if params.half_step else FULL_STEP
        self._phase = 0   # index into the sequence of the motor's current phase (tracks position)

    def _open_hw(self) -> None:
        p = self.params
        try:
            for i, pin in enumerate(p.coil_pins):
                self.coils.append(output(pin, f"coil_pins[{i}] (IN{i + 1})", p.name, self.pin_factory))
            if p.limit_pin:
                self.switch = input_(p.limit_pin, "limit_pin", p.name, self.pin_factory,
                                     pull_up=p.limit_active_low)
        except BaseException:
            self._close_hw()
            raise

    def _restore(self) -> None:
        super()._restore()
        self._phase = int(round(self._position or 0)) % len(self.sequence)  # unknown: homing sets it

    def _close_hw(self) -> None:
        close_all(self.coils + [self.switch])
        self.coils = []
        self.switch = None

    def _deenergize(self) -> None:
        for c in self.coils:
            c.off()

    @property
    def energized(self) -> bool:
        """Any coil is on."""
        return any(c.value for c in self.coils)

    def _set_phase(self, phase: int) -> None:
        for c, level in zip(self.coils, self.sequence[phase % len(self.sequence)]):
            c.value = bool(level)

    def _step_train(self, direction: int, steps: int, homing: bool = False) -> None:
        p = self.params
        self._set_phase(self._phase)  # energize where the rotor is before stepping
        t = time.perf_counter()
        speed, accel = (p.homing_speed, 0.0) if homing else (p.speed, p.acceleration)
        for dt in step_intervals(steps, speed, accel):
            self._phase = (self._phase + direction) % len(self.sequence)
            self._set_phase(self._phase)
            t += dt
            wait_until(t)
