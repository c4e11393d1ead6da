"""Validated drive parameters (config table ``[drive]``) and the per-driver constants they are
checked against.  Pure data: no hardware, no state files."""

import math
import re
from dataclasses import dataclass
from typing import Optional, Tuple

from ..validate import require

#: The drive kinds :func:`pifocus.drive.open_drive` knows (the part of a drive string before ``:``).
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
        assume_position: where the lens is when nothing is saved (no state file yet), drive
            units; ``None`` = unknown: stepper/uln2003 drives then home (when homing is
            configured) or refuse to move.  ``pifocus ... --assume-position POS``.
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
        gpiochip: lgpio chip number, -1 = auto: the chip labelled pinctrl-rp1 (Pi 5: 0 on
            current kernels, 4 on older ones), pinctrl-bcm2711 or pinctrl-bcm2835.
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
    assume_position: Optional[float] = None
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
        require(self.assume_position is None or (not isinstance(self.assume_position, bool)
                                                  and math.isfinite(float(self.assume_position))),
                s, "assume_position", self.assume_position, "a finite position in drive units, or unset")
        require(self.on_limit in ("clamp", "error"), s, "on_limit", self.on_limit, "clamp, error")
        require(0 < self.speed <= 1e6, s, "speed", self.speed, "0 < speed <= 1000000 units/s")
        require(0 <= self.acceleration <= 1e8, s, "acceleration", self.acceleration,
                "0..100000000 units/s² (0 = no ramp)")
        require(0 <= self.backlash <= 1e6, s, "backlash", self.backlash, "0..1000000 units")
        require(0 <= self.backlash_margin <= 1e6, s, "backlash_margin", self.backlash_margin, "0..1000000 units")
        require(self.approach in ("up", "down"), s, "approach", self.approach, "up, down")
        require(self.homing in ("none", "endstop", "switch"), s, "homing", self.homing,
                "none, endstop, switch")
        require(self.home_side in ("min", "max"), s, "home_side", self.home_side, "min, max")
        require(self.home_travel is None or 0 < self.home_travel <= 1e8, s, "home_travel", self.home_travel,
                "0 < home_travel <= 100000000 steps")
        require(self.home_speed is None or 0 < self.home_speed <= 1e6, s, "home_speed", self.home_speed,
                "0 < home_speed <= 1000000 units/s")
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
        self._check_pins(s)

    def _check_pins(self, s: str) -> None:
        """Pin names that gpiozero understands, and no pin twice among the ones the drive claims."""
        names = [(k, getattr(self, k)) for k in ("step_pin", "dir_pin", "enable_pin", "limit_pin")]
        names += [(f"{k}[{i}]", v) for k in ("ms_pins", "coil_pins") for i, v in enumerate(getattr(self, k))]
        for key, v in names:
            optional = key in ("enable_pin", "limit_pin")
            require((optional and v in ("", None)) or _pin_name_ok(v),
                    s, key, v, "a GPIO name such as 'GPIO20', 'BCM20' or 'BOARD38'" + (" (or '' for none)" if optional
                                                                                      else ""))
        kind = self.name.partition(":")[0].strip().lower()
        claimed = {"stepper": [n for n in names if not n[0].startswith("coil_pins")],
                   "uln2003": [n for n in names if n[0].startswith("coil_pins") or n[0] == "limit_pin"]}.get(kind, [])
        seen = {}
        for key, v in claimed:
            if v in ("", None):
                continue
            norm = v.strip().upper().replace("BCM", "GPIO")
            norm = norm if not norm.isdigit() else f"GPIO{norm}"
            require(norm not in seen, s, key, v, f"a pin not already used by drive.{seen.get(norm)}",
                    "each drive signal needs its own GPIO")
            seen[norm] = key

    @property
    def homing_speed(self) -> float:
        """Speed used while homing."""
        return self.home_speed if self.home_speed is not None else self.speed / 4

    @property
    def approach_sign(self) -> int:
        """+1 when the final approach runs towards higher positions, else -1."""
        return 1 if self.approach == "up" else -1


#: GPIO names the drives accept (gpiozero's forms): GPIO20, BCM20, 20 (BCM 0..57), BOARD38,
#: J8:38, P1:38 (header 1..40).
PIN_NAME = re.compile(r"(?i)(?:(GPIO|BCM)?|(BOARD|J8:|P1:))(\d{1,2})")


def _pin_name_ok(v) -> bool:
    """True for a pin name in one of the :data:`PIN_NAME` forms, within its range."""
    m = PIN_NAME.fullmatch(v.strip()) if isinstance(v, str) else None
    if m is None:
        return False
    n = int(m.group(3))
    return 1 <= n <= 40 if m.group(2) else 0 <= n <= 57

#: Microstep settings each driver supports (by its MS pins / jumpers).
MICROSTEPS = {
    "a4988": (1, 2, 4, 8, 16),
    "drv8825": (1, 2, 4, 8, 16, 32),
    "tmc2209": (8, 16, 32, 64),
}
