"""The in-focus LED: on while the debounced verdict says "in focus", a double-blink on error."""

import logging
from typing import Optional

from .base import Indicator, PatternPlayer, open_device

log = logging.getLogger(__name__)


def error_steps(on_s: float, off_s: float, flashes: int, pause_s: float, on=1, off=0, pause=0):
    """The error pattern as ``(value, seconds)`` steps: ``flashes`` flashes of ``on_s``
    separated by ``off_s``, then ``pause_s`` of ``pause`` (e.g. 2 flashes = a double blink)."""
    steps = []
    for i in range(flashes):
        steps.append((on, on_s))
        steps.append((pause, pause_s) if i == flashes - 1 else (off, off_s))
    return steps


class FocusLED(Indicator):
    """An LED that is lit while ``report.in_focus`` (the debounced verdict) is true.

    In the error state (camera lost) it repeats a distinct pattern - by default a fast
    double blink - on a background thread, and goes dark again when the error clears.

    Args:
        pin: BCM GPIO number.
        active_high: True when the pin drives the LED's anode (pin high = LED on); False for
            an LED wired from 3V3 to the pin (pin low = on).
        error_on_s, error_off_s: on and off time of each error flash, seconds.
        error_flashes: flashes per error cycle (2 = double blink).
        error_pause_s: dark pause after each group of flashes, seconds.
        pin_factory: gpiozero pin factory (``None`` = gpiozero's default).
        key: config key named in error messages.

    Raises:
        OutputError: the pin is in use or invalid.
    """

    label = "in-focus LED"

    def __init__(self, pin: int, *, active_high: bool = True, error_on_s: float = 0.08,
                 error_off_s: float = 0.12, error_flashes: int = 2, error_pause_s: float = 0.7,
                 pin_factory=None, key: str = "led_pin"):
        from gpiozero import LED
        super().__init__([pin])
        self.led = open_device(self.label, key, [pin], lambda: LED(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory))
        self._lit: Optional[bool] = False
        self._pattern = PatternPlayer(self._write, error_steps(error_on_s, error_off_s, error_flashes,
                                                               error_pause_s), name=f"led-error-{pin}")

    def _write(self, value) -> None:
        self.led.value = value

    @property
    def lit(self) -> bool:
        """True while the LED shows "in focus" (not counting error flashes)."""
        return bool(self._lit)

    def _show(self, report) -> None:
        want = bool(report.in_focus)
        if want != self._lit:
            self._lit = want
            self.led.value = want

    def _show_error(self) -> None:
        self._lit = None
        self._pattern.start()

    def _clear_error(self) -> None:
        self._pattern.stop()
        self._off()

    def _off(self) -> None:
        self._pattern.stop()
        self._lit = False
        self.led.off()

    def _close_devices(self) -> None:
        self.led.close()
