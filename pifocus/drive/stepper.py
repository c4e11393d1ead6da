"""Step/dir stepper drivers: A4988, DRV8825, TMC2209 (drive string ``stepper``).

Wiring (BCM names, all configurable in ``[drive]``): STEP ``step_pin`` (GPIO20), DIR
``dir_pin`` (GPIO21), EN ``enable_pin`` (GPIO16, active low on all three drivers),
optional MS1/MS2[/MS3] ``ms_pins`` to set the microstepping, optional limit switch
``limit_pin`` to GND (internal pull-up).  Position is counted in *step pulses* (so in
microsteps when microstepping).

Step trains:

* on a Raspberry Pi with lgpio (``backend = "auto"`` or ``"lgpio"``) the pulses are queued
  with ``lgpio.tx_pulse`` in constant-rate chunks that follow the acceleration ramp.  The
  step *count* is exact; the timing is lgpio's: its pulse queue holds 10 entries per GPIO
  and is played by a user-space thread (not the kernel), and a train that starts on an
  idle queue can wait up to ~20 ms.  So each queue entry spans at least
  :data:`MIN_ENTRY_S` (steps along the ramp are grouped at their mean rate), the queue is
  kept fed while a move runs (``lgpio.tx_room``), and homing against a switch moves in
  trains of :data:`HOMING_TRAIN_S` with a switch check between them (then a one-step
  approach over the last train) rather than one call per step;
* elsewhere (and with ``backend = "gpiozero"``) gpiozero ``OutputDevice`` s are toggled
  from Python with a spin-wait for timing -- this is what gpiozero's mock pin factory
  records in tests.

``close()`` disables the driver (EN inactive: coils de-energized) and sets STEP/DIR low.
The Pi's pins float once released: fit a 10 kΩ pull-up on EN so the driver stays disabled
when pifocus is not running (the A4988/DRV8825 EN input has an internal pull-down).
"""

import logging
import math
import time

from ..exc import DriveError
from . import DriveParams, step_intervals
from ._gpio import StepMotorDrive, close_all, input_, output, wait_until
from ._lgpio import claim_error, open_header_chip

log = logging.getLogger(__name__)

#: MS pin levels per microstep setting, per driver (MS1, MS2[, MS3]).
MS_TABLE = {
    "a4988": {1: (0, 0, 0), 2: (1, 0, 0), 4: (0, 1, 0), 8: (1, 1, 0), 16: (1, 1, 1)},
    "drv8825": {1: (0, 0, 0), 2: (1, 0, 0), 4: (0, 1, 0), 8: (1, 1, 0), 16: (0, 0, 1), 32: (1, 0, 1)},
    "tmc2209": {8: (0, 0), 32: (1, 0), 64: (0, 1), 16: (1, 1)},
}
#: Shortest lgpio queue entry (s): 10 entries then buffer >= 50 ms against Python stalls.
MIN_ENTRY_S = 0.005
#: Length of one homing train (s) on lgpio: the switch is checked between trains.
HOMING_TRAIN_S = 0.05
#: Minimum STEP high time and DIR setup time (µs) per driver, from the datasheets.
TIMING_US = {"a4988": (1.0, 0.2), "drv8825": (1.9, 0.65), "tmc2209": (0.1, 0.02)}


def _bcm(pin: str) -> int:
    """BCM number of a pin name like ``GPIO20``, ``BCM20`` or ``20`` (lgpio needs numbers)."""
    s = str(pin).upper()
    for prefix in ("GPIO", "BCM"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    try:
        return int(s)
    except ValueError:
        raise DriveError(f"drive 'stepper': pin {pin!r} must be a BCM name such as 'GPIO20' for the "
                         "lgpio backend (or set [drive] backend = 'gpiozero')") from None


class StepperDrive(StepMotorDrive):
    """A step/dir stepper driver.

    Args:
        params: :class:`~pifocus.drive.DriveParams` (pins, driver, microsteps, speed, ramp ...).
        pin_factory: a gpiozero pin factory (tests pass ``MockFactory(pin_class=MockPWMPin)``);
            default gpiozero's own choice.
    """

    kind = "stepper"

    def __init__(self, params: DriveParams = DriveParams(name="stepper"), pin_factory=None):
        super().__init__(params, (0.0, float(params.travel_steps)))
        self.pin_factory = pin_factory
        self.step = self.dir = self.enable = None
        self.ms = []
        self.switch = None
        self._lg = None       # (lgpio module, handle) on the lgpio backend
        self._lg_pins = ()
        self.pulses = 0       # step pulses sent since open (all moves, homing included)
        self.backend_used = None
        self.gpiochip_used = None  # lgpio backend: the chip of the header pins

    @property
    def homing_train(self) -> int:
        """Steps per homing train: :data:`HOMING_TRAIN_S` worth on lgpio (each lgpio train
        can start ~20 ms late), 1 with gpiozero (timed from Python)."""
        if self._lg is None:
            return 1
        return max(1, int(self.params.homing_speed * HOMING_TRAIN_S))

    # -- hardware ---------------------------------------------------------------------
    def _use_lgpio(self) -> bool:
        b = self.params.backend
        if b == "gpiozero" or self.pin_factory is not None:
            return False
        if b == "lgpio":
            return True
        try:
            import importlib.util
            return importlib.util.find_spec("lgpio") is not None and _on_pi()
        except Exception:
            return False

    def _open_hw(self) -> None:
        p = self.params
        try:
            if self._use_lgpio():
                self._open_lgpio()
            else:
                self._open_gpiozero()
            if p.limit_pin:
                self.switch = input_(p.limit_pin, "limit_pin", p.name, self.pin_factory,
                                     pull_up=p.limit_active_low)
        except BaseException:
            self._close_hw()
            raise

    def _open_gpiozero(self) -> None:
        p = self.params
        self.backend_used = "gpiozero"
        self.step = output(p.step_pin, "step_pin", p.name, self.pin_factory)
        self.dir = output(p.dir_pin, "dir_pin", p.name, self.pin_factory)
        if p.enable_pin:
            self.enable = output(p.enable_pin, "enable_pin", p.name, self.pin_factory,
                                 active_high=not p.enable_active_low, initial_value=False)
        levels = MS_TABLE[p.driver][int(p.microsteps)]
        for i, pin in enumerate(p.ms_pins):
            self.ms.append(output(pin, f"ms_pins[{i}]", p.name, self.pin_factory,
                                  initial_value=bool(levels[i]) if i < len(levels) else False))

    def _open_lgpio(self) -> None:
        import lgpio  # Pi only: never imported elsewhere

        p = self.params
        handle, self.gpiochip_used = open_header_chip(lgpio, int(p.gpiochip), p.name)
        self._lg = (lgpio, handle)
        self.backend_used = "lgpio"
        claims = [(_bcm(p.step_pin), 0, "step_pin"), (_bcm(p.dir_pin), 0, "dir_pin")]
        if p.enable_pin:
            claims.append((_bcm(p.enable_pin), 1 if p.enable_active_low else 0, "enable_pin"))
        levels = MS_TABLE[p.driver][int(p.microsteps)]
        for i, pin in enumerate(p.ms_pins):
            claims.append((_bcm(pin), int(levels[i]) if i < len(levels) else 0, f"ms_pins[{i}]"))
        claimed = []
        for gpio, level, what in claims:
            try:
                lgpio.gpio_claim_output(handle, gpio, level)
            except Exception as e:  # lgpio.error('GPIO busy'), 'bad GPIO number'
                self._lg_pins = tuple(claimed)
                raise claim_error(e, p.name, what, gpio) from e
            claimed.append(gpio)
        self._lg_pins = tuple(claimed)

    def _close_hw(self) -> None:
        if self._lg is not None:
            lgpio, h = self._lg
            for g in self._lg_pins:
                try:
                    lgpio.gpio_free(h, g)
                except Exception:
                    pass
            try:
                lgpio.gpiochip_close(h)
            except Exception:
                pass
            self._lg = None
        close_all([self.step, self.dir, self.enable, self.switch] + self.ms)
        self.step = self.dir = self.enable = self.switch = None
        self.ms = []

    def _energize(self, on: bool) -> None:
        p = self.params
        if self._lg is not None:
            if p.enable_pin:
                lgpio, h = self._lg
                level = (0 if on else 1) if p.enable_active_low else (1 if on else 0)
                lgpio.gpio_write(h, _bcm(p.enable_pin), level)
        elif self.enable is not None:
            self.enable.value = bool(on)
        if on:
            time.sleep(0.001)  # driver wake-up (DRV8825 needs ~1 ms after enable)

    @property
    def energized(self) -> bool:
        """The driver is enabled (coils powered)."""
        return bool(self.enable is not None and self.enable.value)

    def _deenergize(self) -> None:
        self._energize(False)
        if self._lg is not None:
            lgpio, h = self._lg
            for g in self._lg_pins[:2]:
                lgpio.gpio_write(h, g, 0)
        else:
            for d in (self.step, self.dir):
                if d is not None:
                    d.off()

    # -- motion -----------------------------------------------------------------------
    def _step_train(self, direction: int, steps: int, homing: bool = False) -> None:
        p = self.params
        if steps <= 0:
            return
        forward = (direction > 0) != p.invert_dir
        self._energize(True)
        if homing:
            intervals = step_intervals(steps, p.homing_speed, 0.0)
        else:
            intervals = step_intervals(steps, p.speed, p.acceleration)
        min_high_us, dir_setup_us = TIMING_US[p.driver]
        high_s = max(p.step_pulse_us, min_high_us) * 1e-6
        if self._lg is not None:
            self._pulse_lgpio(forward, intervals, high_s, dir_setup_us)
        else:
            self.dir.value = forward
            wait_until(time.perf_counter() + max(dir_setup_us, 1.0) * 1e-6)
            t = time.perf_counter()
            for dt in intervals:
                self.step.on()
                wait_until(time.perf_counter() + high_s)
                self.step.off()
                t += dt
                wait_until(t)
        self.pulses += steps

    def _pulse_lgpio(self, forward: bool, intervals, high_s: float, dir_setup_us: float) -> None:
        lgpio, h = self._lg
        p = self.params
        step_g, dir_g = _bcm(p.step_pin), _bcm(p.dir_pin)
        lgpio.gpio_write(h, dir_g, 1 if forward else 0)
        time.sleep(max(dir_setup_us, 1.0) * 1e-6)
        on_us = max(1, int(math.ceil(high_s * 1e6)))
        chunks = pulse_entries(intervals, on_us)
        total_s = float(sum(intervals))
        deadline = time.monotonic() + total_s + 2.0
        for period, count in chunks:  # keep the 10-entry queue fed while the train runs
            while lgpio.tx_room(h, step_g, lgpio.TX_PWM) <= 0:
                if time.monotonic() > deadline:
                    raise DriveError(f"drive {p.name!r}: step queue stalled on GPIO{step_g}")
                time.sleep(0.0005)
            lgpio.tx_pulse(h, step_g, on_us, period - on_us, 0, count)
        while lgpio.tx_busy(h, step_g, lgpio.TX_PWM):
            if time.monotonic() > deadline:
                raise DriveError(f"drive {p.name!r}: step train on GPIO{step_g} did not finish")
            time.sleep(0.001)


def pulse_entries(intervals, on_us: int):
    """``[period_us, count]`` lgpio queue entries for step ``intervals`` (seconds): steps are
    grouped until an entry spans :data:`MIN_ENTRY_S`, at their mean period (the ramp is
    followed in 5 ms pieces), and never faster than ``on_us + 1``.  Counts add up exactly."""
    entries = []
    acc_s, n = 0.0, 0
    for dt in intervals:
        acc_s += float(dt)
        n += 1
        if acc_s >= MIN_ENTRY_S:
            entries.append([max(on_us + 1, int(round(acc_s / n * 1e6))), n])
            acc_s, n = 0.0, 0
    if n:
        entries.append([max(on_us + 1, int(round(acc_s / n * 1e6))), n])
    merged = []
    for period, count in entries:  # equal neighbours (the cruise) as one entry
        if merged and abs(merged[-1][0] - period) <= max(2, period // 200):
            merged[-1][1] += count
        else:
            merged.append([period, count])
    return merged


def _on_pi() -> bool:
    try:
        with open("/proc/device-tree/model", errors="ignore") as f:
            return "Raspberry Pi" in f.read()
    except OSError:
        return False
