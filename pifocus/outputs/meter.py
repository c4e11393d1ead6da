"""The focus meter: a PWM output whose duty cycle follows the peak-hold meter.

Drive a moving-coil panel meter (through a series resistor chosen for full-scale deflection
at 3.3 V), an LED bar-graph driver's analogue input (through an RC filter), or simply a
PWM-dimmed LED that glows brighter near focus.
"""

import logging

from .base import Indicator, open_device

log = logging.getLogger(__name__)


class FocusMeter(Indicator):
    """PWM duty cycle = ``report.meter`` (0..1, sharpness relative to the best of this
    focusing pass, capped by the subject's closeness to focus: see the report) x ``max_duty``; 0 when the frame is not judgeable, in error, and closed.

    Args:
        pin: BCM GPIO number (any pin: software PWM with lgpio / RPi.GPIO).
        active_high: True when a high pin drives the meter/LED.
        frequency_hz: PWM frequency, Hz (100 Hz suits meters and LEDs).
        max_duty: duty cycle at meter = 1.0 (0 < x <= 1): calibrates full scale of a meter.
        pin_factory: gpiozero pin factory; it must support PWM.
        key: config key named in error messages.

    Raises:
        OutputError: the pin is in use or invalid, or the factory cannot do PWM.
    """

    label = "focus meter"

    #: Changes of the duty cycle smaller than this are not written (saves pin writes).
    RESOLUTION = 1.0 / 1000

    def __init__(self, pin: int, *, active_high: bool = True, frequency_hz: float = 100.0,
                 max_duty: float = 1.0, pin_factory=None, key: str = "meter_pin"):
        from gpiozero import PWMOutputDevice
        super().__init__([pin])
        self.frequency_hz = float(frequency_hz)
        self.max_duty = float(max_duty)
        self.device = open_device(self.label, key, [pin], lambda: PWMOutputDevice(
            pin, active_high=active_high, initial_value=0, frequency=self.frequency_hz,
            pin_factory=pin_factory))
        self._value = 0.0

    @property
    def value(self) -> float:
        """The duty cycle currently shown (0..1)."""
        return self._value

    def _set(self, value: float) -> None:
        if value != self._value and (value == 0.0 or abs(value - self._value) >= self.RESOLUTION):
            self._value = value
            self.device.value = value

    def _show(self, report) -> None:
        meter = float(report.meter) if report.judgeable else 0.0
        if not meter == meter:  # NaN
            meter = 0.0
        self._set(min(1.0, max(0.0, meter)) * self.max_duty)

    def _show_error(self) -> None:
        self._set(0.0)

    def _off(self) -> None:
        self._value = 0.0
        self.device.off()

    def _close_devices(self) -> None:
        self.device.close()

    def details(self) -> str:
        """E.g. ``"PWM 100 Hz, duty = focus meter"``."""
        full = "" if self.max_duty == 1.0 else f" (full scale at {self.max_duty:.0%} duty)"
        return f"PWM {self.frequency_hz:g} Hz, duty = focus meter{full}"
