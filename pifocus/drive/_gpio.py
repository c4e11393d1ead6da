"""gpiozero helpers shared by the GPIO drives: pin claiming with clear errors, precise waits."""

import time

from ..exc import DriveError, is_lgpio_error, lgpio_busy_hint
from . import FocusDrive


def output(pin: str, what: str, drive: str, pin_factory=None, active_high: bool = True,
           initial_value: bool = False):
    """A gpiozero ``OutputDevice`` on ``pin``, with one-line errors naming the pin and the fix."""
    from gpiozero import OutputDevice
    return _make(OutputDevice, pin, what, drive, pin_factory,
                 active_high=active_high, initial_value=initial_value)


def input_(pin: str, what: str, drive: str, pin_factory=None, pull_up: bool = True):
    """A gpiozero ``DigitalInputDevice`` (switch) on ``pin``."""
    from gpiozero import DigitalInputDevice
    return _make(DigitalInputDevice, pin, what, drive, pin_factory, pull_up=pull_up)


def _make(cls, pin, what, drive, pin_factory, **kw):
    try:
        from gpiozero.exc import BadPinFactory, GPIOPinInUse, PinInvalidPin
    except ImportError as e:  # pragma: no cover - gpiozero is a hard dependency
        raise DriveError(f"drive {drive!r}: gpiozero is missing ({e}); pip install gpiozero") from e
    try:
        return cls(pin, pin_factory=pin_factory, **kw)
    except GPIOPinInUse as e:
        raise DriveError(f"drive {drive!r}: {what} {pin} is already in use ({e}); give the drive "
                         f"another pin in [drive] or free that one (LED/buzzer config, another "
                         "pifocus process)") from e
    except BadPinFactory as e:
        raise DriveError(f"drive {drive!r}: no GPIO available here ({e}); on a PC set "
                         "GPIOZERO_PIN_FACTORY=mock to try it, on a Pi install lgpio") from e
    except (PinInvalidPin, ValueError) as e:
        raise DriveError(f"drive {drive!r}: {what} {pin!r} is not a valid pin ({e}); use a name "
                         "such as 'GPIO20' or 'BOARD38'") from e
    except Exception as e:
        # gpiozero's LGPIOFactory lets lgpio.error through (LGPIOPin.__init__ claims the
        # line with lgpio.gpio_claim_input): 'GPIO busy' = another process holds it.
        if not is_lgpio_error(e):
            raise
        if "busy" in str(e).lower():
            raise DriveError(f"drive {drive!r}: {what} {pin} is in use by another program ({e}); "
                             f"{lgpio_busy_hint(pin)}, or give the drive another pin in [drive]") from e
        raise DriveError(f"drive {drive!r}: {what} {pin} could not be claimed with lgpio ({e}); check "
                         "[drive] and that the user is in the 'gpio' group") from e


def close_all(devices) -> None:
    """Close gpiozero devices, ignoring errors (closing must not mask the real one)."""
    for d in devices:
        if d is not None:
            try:
                d.close()
            except Exception:
                pass


def wait_until(t: float) -> None:
    """Sleep until ``time.perf_counter() >= t``; spin the last half millisecond."""
    while True:
        left = t - time.perf_counter()
        if left <= 0:
            return
        if left > 0.0015:
            time.sleep(left - 0.001)


class StepMotorDrive(FocusDrive):
    """Shared motion of the step-counting GPIO drives (step/dir stepper, ULN2003).

    Subclasses provide ``_step_train(direction, steps, homing=False)`` (direction +1/-1,
    ``homing`` = gentle homing speed, no ramp) and ``self.switch`` (limit switch input or
    None); this class maps moves and homing steps onto it.
    """

    switch = None

    def default_position(self):
        """None: a step counter does not know where the lens is until it homes (or is told)."""
        return None

    def _step_train(self, direction: int, steps: int, homing: bool = False) -> None:
        raise NotImplementedError

    def _switch_active(self) -> bool:
        if self.switch is None:
            raise DriveError(f"drive {self.name!r}: homing = 'switch' needs limit_pin")
        return bool(self.switch.is_active)

    def _move_hw(self, start: float, target: float) -> None:
        n = int(round(target - start))
        if n:
            self._step_train(1 if n > 0 else -1, abs(n))

    def _raw_step(self, direction: int, steps: int) -> None:
        self._step_train(direction, steps, homing=True)
