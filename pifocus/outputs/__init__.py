"""GPIO outputs: in-focus LED, PWM focus meter, RGB LED, buzzer, shutter trigger (gpiozero).

The ``[outputs]`` config table maps onto :class:`OutputsParams`; :func:`make_outputs` builds
the configured indicators into an :class:`OutputGroup`, which the pipeline calls once per
frame (``update``), when the camera is lost or back (``set_error``) and at the end
(``close``: everything off).

Pins are BCM GPIO numbers (``GPIO17`` = header pin 11).  Off a Raspberry Pi the default
pin factory (``"auto"``) drives gpiozero mock pins, so the demo and the tests run anywhere;
``import pifocus.outputs`` never imports a Pi-only library.

Modules: ``__init__`` (:class:`OutputsParams`, :func:`make_outputs`, :class:`OutputGroup`);
:mod:`.base` (the :class:`Indicator` base class and shared helpers); one module per output:
:mod:`.led` (in-focus LED), :mod:`.meter` (PWM focus meter), :mod:`.rgb` (RGB status LED),
:mod:`.buzzer` (focus buzzer), :mod:`.shutter` (shutter trigger / focus trap);
:mod:`.pins` (choosing the gpiozero pin factory: real pins on a Pi, mock pins elsewhere).
"""

import logging
import re
from dataclasses import dataclass, fields
from typing import List, Optional, Sequence, Tuple

from ..exc import OutputError
from ..validate import require
from .base import Indicator, PatternPlayer, open_device, pin_name
from .buzzer import BUZZER_MODES, FocusBuzzer
from .led import FocusLED
from .meter import FocusMeter
from .pins import (PIN_FACTORIES, factory_kind, factory_note, forget_pin_factories,
                   on_raspberry_pi, resolve_pin_factory)
from .rgb import FocusRGB
from .shutter import ShutterTrigger

log = logging.getLogger(__name__)

__all__ = [
    "Indicator", "OutputsParams", "OutputGroup", "make_outputs", "resolve_pin_factory",
    "on_raspberry_pi", "forget_pin_factories", "FocusLED", "FocusMeter", "FocusRGB",
    "FocusBuzzer", "ShutterTrigger", "GpioPin", "GpioPins", "PIN_FACTORIES", "BUZZER_MODES",
    "OutputError", "PatternPlayer", "open_device", "pin_name",
]

#: Highest BCM GPIO number on the 40-pin header (all Pi models with one, Pi 5 included).
MAX_GPIO = 27

#: Values that switch a pin-valued key off in TOML (which has no null).
_DISABLED = (None, False, "", "off", "none", "disabled")


class GpioPin(int):
    """Annotation for a pin-valued ``[outputs]`` key: a BCM GPIO number 0..27, or ``None``.

    TOML has no null, so the config file disables an output with ``false`` (or ``"off"``);
    :class:`OutputsParams` turns that into ``None`` and validates the rest itself (the
    strings ``"GPIO17"`` / ``"BCM17"`` / ``"17"`` are accepted as 17).  Values
    stored on the params are plain ``int`` or ``None``.
    """


class GpioPins(tuple):
    """Annotation for a key holding several BCM GPIO numbers (``rgb_pins``); ``false`` /
    ``"off"`` in TOML disables it (stored as ``None``)."""


def _is_disabled(value) -> bool:
    return any(value is d or (isinstance(value, str) and isinstance(d, str) and value.strip().lower() == d)
               for d in _DISABLED)


def _parse_pin(value):
    """``"GPIO17"`` / ``"BCM17"`` / ``"17"`` -> 17; anything else unchanged."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(?:gpio|bcm)?\s*(\d{1,2})\s*", value, re.IGNORECASE)
        if m:
            return int(m.group(1))
    return value


def _valid_pin(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_GPIO


@dataclass(frozen=True)
class OutputsParams:
    """Config table ``[outputs]``: which indicators are wired to which pins, and how they
    behave.  Every pin is a BCM GPIO number (0..27) or ``None`` / ``false`` to disable.

    Attributes:
        pin_factory: ``"auto"`` (real pins on a Raspberry Pi, mock pins elsewhere; honours
            ``GPIOZERO_PIN_FACTORY``), ``"mock"``, ``"lgpio"`` (Pi 5 / Bookworm), ``"rpigpio"``,
            ``"pigpio"``, ``"native"``.
        active_high: the LED, meter and buzzer are on when their pin is high (False: wired
            from 3V3 to the pin, on when low).
        led_pin: in-focus LED (on while in focus; double blink on error).  Default GPIO17
            (header pin 11).
        meter_pin: PWM focus meter (duty = peak-hold meter 0..1), e.g. GPIO18 (pin 12).
        meter_max_duty: duty cycle at full scale (0 < x <= 1), to calibrate a panel meter.
        pwm_frequency_hz: PWM frequency of the meter and the RGB LED, Hz (1..10000).
        rgb_pins: RGB LED ``[red, green, blue]``, e.g. ``[22, 23, 24]``.
        rgb_common_anode: the RGB LED is common-anode (channel on = pin low).
        rgb_amber_at: meter value (0..1) from which the RGB LED shows amber instead of red,
            for reports that do not carry the analyzer's ``near`` grading (the live loop's
            do: amber is its ``near``: the meter at ``[analysis] near_meter``, and with a blur
            head the blur within ``near_factor x coc_px`` too).
        rgb_brightness: brightness scale of the RGB LED (0 < x <= 1).
        rgb_overexposed_pct: the RGB LED blinks magenta while more than this share of the
            subject region (%, 0..100) is clipped highlight; ``false`` switches it off.
        buzzer_pin: active buzzer, e.g. GPIO27 (pin 13).
        buzzer_mode: ``"proximity"`` (beeps faster near focus, steady tone in focus) or
            ``"acquire"`` (quiet: one chirp when focus is acquired).
        buzzer_min_meter: meter value (0..1) below which the buzzer stays silent.
        buzzer_slow_hz, buzzer_fast_hz: slowest and fastest beep rate, beeps/s (0 < slow <= fast <= 20).
        buzzer_steps: number of beep-rate bands between them (1..10).
        buzzer_beep_s: length of one beep, seconds.
        buzzer_chirp_s: length of the focus-acquired chirp, seconds.
        shutter_pin: shutter trigger / focus trap output (pulses once when focus is acquired),
            e.g. GPIO5 (pin 29).
        shutter_active_high: the trigger pin is active high (pulse = high).
        shutter_pulse_s: pulse length, seconds (0.01..5).
        shutter_rearm_s: focus must be lost this long before the trigger can fire again,
            seconds (0..3600).
        shutter_rearm_on_scene_change: a scene change re-arms the trigger at once.
        error_on_s, error_off_s: on/off time of each flash of the error pattern, seconds.
        error_flashes: flashes per error cycle (1..5; 2 = double blink).
        error_pause_s: dark pause after each group of error flashes, seconds.
    """

    pin_factory: str = "auto"
    active_high: bool = True
    led_pin: Optional[GpioPin] = 17
    meter_pin: Optional[GpioPin] = None
    meter_max_duty: float = 1.0
    pwm_frequency_hz: float = 100.0
    rgb_pins: Optional[GpioPins] = None
    rgb_common_anode: bool = False
    rgb_amber_at: float = 0.8
    rgb_brightness: float = 1.0
    rgb_overexposed_pct: Optional[float] = 5.0
    buzzer_pin: Optional[GpioPin] = None
    buzzer_mode: str = "proximity"
    buzzer_min_meter: float = 0.3
    buzzer_slow_hz: float = 1.5
    buzzer_fast_hz: float = 8.0
    buzzer_steps: int = 5
    buzzer_beep_s: float = 0.04
    buzzer_chirp_s: float = 0.15
    shutter_pin: Optional[GpioPin] = None
    shutter_active_high: bool = True
    shutter_pulse_s: float = 0.2
    shutter_rearm_s: float = 1.0
    shutter_rearm_on_scene_change: bool = True
    error_on_s: float = 0.08
    error_off_s: float = 0.12
    error_flashes: int = 2
    error_pause_s: float = 0.7

    def __post_init__(self):
        S = "outputs"
        pin_allowed = f"a BCM GPIO number 0..{MAX_GPIO}, or false to disable"
        require(self.pin_factory in PIN_FACTORIES, S, "pin_factory", self.pin_factory,
                ", ".join(PIN_FACTORIES))
        for key in ("active_high", "rgb_common_anode", "shutter_active_high",
                    "shutter_rearm_on_scene_change"):
            require(isinstance(getattr(self, key), bool), S, key, getattr(self, key), "true or false")
        for key in ("led_pin", "meter_pin", "buzzer_pin", "shutter_pin"):
            value = getattr(self, key)
            if _is_disabled(value):
                object.__setattr__(self, key, None)
                continue
            value = _parse_pin(value)
            require(_valid_pin(value), S, key, getattr(self, key), pin_allowed,
                    "use the GPIOn number, not the physical header pin")
            object.__setattr__(self, key, int(value))
        rgb = self.rgb_pins
        if _is_disabled(rgb):
            object.__setattr__(self, "rgb_pins", None)
        else:
            if isinstance(rgb, (list, tuple)):
                rgb = [_parse_pin(p) for p in rgb]
            require(isinstance(rgb, (list, tuple)) and len(rgb) == 3 and all(_valid_pin(p) for p in rgb),
                    S, "rgb_pins", rgb, f"three BCM GPIO numbers [red, green, blue] in 0..{MAX_GPIO}, "
                    "or false to disable")
            require(len(set(rgb)) == 3, S, "rgb_pins", self.rgb_pins, "three different pins")
            object.__setattr__(self, "rgb_pins", tuple(int(p) for p in rgb))
        used = {}
        for key, pin in self._pin_keys():
            require(pin not in used, S, key, pin, f"a pin not already used by outputs.{used.get(pin)}",
                    "every output needs its own GPIO")
            used[pin] = key

        def num(key, lo, hi, lo_open=False, integer=False):
            v = getattr(self, key)
            ok = (isinstance(v, int) if integer else isinstance(v, (int, float))) and not isinstance(v, bool)
            ok = ok and v == v and ((lo < v) if lo_open else (lo <= v)) and v <= hi
            require(ok, S, key, v, f"{'an integer' if integer else 'a number'} "
                    f"{'>' if lo_open else '>='} {lo:g} and <= {hi:g}")

        num("meter_max_duty", 0, 1, lo_open=True)
        num("pwm_frequency_hz", 1, 10000)
        num("rgb_amber_at", 0, 1)
        num("rgb_brightness", 0, 1, lo_open=True)
        if _is_disabled(self.rgb_overexposed_pct):
            object.__setattr__(self, "rgb_overexposed_pct", None)
        else:
            v = self.rgb_overexposed_pct
            require(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 100, S,
                    "rgb_overexposed_pct", v, "a percentage 0..100 of clipped highlights in the ROI, "
                    "or false to switch the magenta overexposed blink off")
        require(self.buzzer_mode in BUZZER_MODES, S, "buzzer_mode", self.buzzer_mode, ", ".join(BUZZER_MODES))
        num("buzzer_min_meter", 0, 0.99)
        num("buzzer_slow_hz", 0, 20, lo_open=True)
        num("buzzer_fast_hz", 0, 20, lo_open=True)
        require(self.buzzer_fast_hz >= self.buzzer_slow_hz, S, "buzzer_fast_hz", self.buzzer_fast_hz,
                f">= buzzer_slow_hz ({self.buzzer_slow_hz:g})")
        num("buzzer_steps", 1, 10, integer=True)
        num("buzzer_beep_s", 0.005, 1)
        num("buzzer_chirp_s", 0.01, 2)
        num("shutter_pulse_s", 0.01, 5)
        num("shutter_rearm_s", 0, 3600)
        num("error_on_s", 0.01, 5)
        num("error_off_s", 0.01, 5)
        num("error_flashes", 1, 5, integer=True)
        num("error_pause_s", 0.01, 10)

    def _pin_keys(self) -> List[Tuple[str, int]]:
        """``(key, pin)`` for every enabled pin (``rgb_pins`` entries as ``rgb_pins``)."""
        out = [(k, getattr(self, k)) for k in ("led_pin", "meter_pin", "buzzer_pin", "shutter_pin")
               if getattr(self, k) is not None]
        if self.rgb_pins is not None:
            out += [("rgb_pins", p) for p in self.rgb_pins]
        return out

    @property
    def enabled(self) -> bool:
        """True when at least one output has a pin."""
        return bool(self._pin_keys())

    def to_dict(self) -> dict:
        """The parameters as a JSON/TOML-ready dict (disabled pins as ``None``)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        if d["rgb_pins"] is not None:
            d["rgb_pins"] = list(d["rgb_pins"])
        return d


class OutputGroup:
    """The configured indicators, driven together.

    Exposes the interface the pipeline uses (``update``, ``set_error``, ``close``) and
    isolates failures: an indicator that raises while updating is logged (once per kind of
    failure) and the others carry on, so a flaky wire never stops the focus loop.

    Args:
        indicators: the :class:`Indicator` objects (already open).
        note: how the pins are driven (e.g. ``"mock pin: not on a Raspberry Pi"``), shown by
            :meth:`describe`.
        pin_factory: the factory the indicators use (for reference).
    """

    def __init__(self, indicators: Sequence[Indicator], note: str = "", pin_factory=None):
        self.indicators: List[Indicator] = list(indicators)
        self.note = note
        self.pin_factory = pin_factory
        self._reported = set()

    def __iter__(self):
        return iter(self.indicators)

    def __len__(self) -> int:
        return len(self.indicators)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def mock(self) -> bool:
        """True when the pins are gpiozero mock pins (nothing physical is driven)."""
        return self.pin_factory is not None and factory_kind(self.pin_factory) == "mock"

    def _each(self, what: str, call) -> None:
        for ind in self.indicators:
            try:
                call(ind)
            except Exception as e:
                key = (what, ind.label, type(e).__name__)
                if key not in self._reported:
                    self._reported.add(key)
                    log.exception("%s: %s failed (further failures of this kind are not logged)",
                                  ind.label, what)

    def update(self, report) -> None:
        """Show one frame's :class:`~pifocus.focus.report.FocusReport` on every indicator."""
        self._each("update", lambda ind: ind.update(report))

    def set_error(self, on: bool) -> None:
        """Switch every indicator's error display on or off (e.g. camera lost / back)."""
        self._each("set_error", lambda ind: ind.set_error(on))

    def close(self) -> None:
        """Switch everything off and release the pins (idempotent)."""
        self._each("close", lambda ind: ind.close())

    def describe(self) -> List[str]:
        """One line per indicator, e.g. ``"in-focus LED on GPIO17 (mock pin: not on a
        Raspberry Pi)"`` or ``"buzzer on GPIO27 (lgpio): beeps faster near focus ..."``;
        ``["no outputs configured"]`` when none are."""
        if not self.indicators:
            return ["no outputs configured"]
        return [ind.describe(self.note) for ind in self.indicators]

    def find(self, cls):
        """The first indicator of class ``cls``, or None."""
        return next((i for i in self.indicators if isinstance(i, cls)), None)


def make_outputs(params: Optional[OutputsParams] = None, pin_factory=None, *, clock=None) -> OutputGroup:
    """Open every output configured in ``params``.

    Args:
        params: the ``[outputs]`` table (defaults: the in-focus LED on GPIO17 only).
        pin_factory: a gpiozero pin factory to use instead of ``params.pin_factory``
            (tests pass a ``MockFactory``).
        clock: monotonic seconds source for the shutter trigger's re-arm timer (tests).

    Returns:
        An :class:`OutputGroup` (possibly empty when every pin is disabled).

    Raises:
        OutputError: a pin is in use or invalid, or no pin factory can be opened; outputs
            opened before the failure are closed again.
    """
    p = params if params is not None else OutputsParams()
    indicators: List[Indicator] = []
    if not p.enabled:
        return OutputGroup([], note="", pin_factory=pin_factory)
    factory = pin_factory if pin_factory is not None else resolve_pin_factory(p.pin_factory)
    err = dict(error_on_s=p.error_on_s, error_off_s=p.error_off_s, error_flashes=p.error_flashes,
               error_pause_s=p.error_pause_s)
    try:
        if p.led_pin is not None:
            indicators.append(FocusLED(p.led_pin, active_high=p.active_high, pin_factory=factory, **err))
        if p.meter_pin is not None:
            indicators.append(FocusMeter(p.meter_pin, active_high=p.active_high,
                                         frequency_hz=p.pwm_frequency_hz, max_duty=p.meter_max_duty,
                                         pin_factory=factory))
        if p.rgb_pins is not None:
            indicators.append(FocusRGB(p.rgb_pins, common_anode=p.rgb_common_anode,
                                       amber_at=p.rgb_amber_at, brightness=p.rgb_brightness,
                                       overexposed_pct=p.rgb_overexposed_pct,
                                       frequency_hz=p.pwm_frequency_hz, pin_factory=factory, **err))
        if p.buzzer_pin is not None:
            indicators.append(FocusBuzzer(p.buzzer_pin, active_high=p.active_high, mode=p.buzzer_mode,
                                          min_meter=p.buzzer_min_meter, slow_hz=p.buzzer_slow_hz,
                                          fast_hz=p.buzzer_fast_hz, steps=p.buzzer_steps,
                                          beep_s=p.buzzer_beep_s, chirp_s=p.buzzer_chirp_s,
                                          pin_factory=factory))
        if p.shutter_pin is not None:
            extra = {"clock": clock} if clock is not None else {}
            indicators.append(ShutterTrigger(p.shutter_pin, active_high=p.shutter_active_high,
                                             pulse_s=p.shutter_pulse_s, rearm_s=p.shutter_rearm_s,
                                             rearm_on_scene_change=p.shutter_rearm_on_scene_change,
                                             pin_factory=factory, **extra))
    except BaseException:
        for ind in indicators:
            ind.close()
        raise
    group = OutputGroup(indicators, note=factory_note(factory), pin_factory=factory)
    for line in group.describe():
        log.info("output: %s", line)
    return group
