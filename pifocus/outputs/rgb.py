"""The RGB status LED: red (far) -> amber (close) -> green (in focus); magenta blinks while
the subject's highlights clip."""

import logging
import math
from typing import Optional, Tuple

from .base import Indicator, PatternPlayer, open_device
from .led import error_steps

log = logging.getLogger(__name__)

Colour = Tuple[float, float, float]

OFF: Colour = (0.0, 0.0, 0.0)
RED: Colour = (1.0, 0.0, 0.0)
AMBER: Colour = (1.0, 0.35, 0.0)
GREEN: Colour = (0.0, 1.0, 0.0)
BLUE: Colour = (0.0, 0.0, 1.0)
MAGENTA: Colour = (1.0, 0.0, 1.0)


class FocusRGB(Indicator):
    """An RGB LED (PWM on each channel) showing how close focus is.

    * green  - ``report.in_focus`` (the debounced verdict);
    * amber  - not in focus but close: the verdict is ``near`` (without a blur model by the
      meter, ``[analysis] near_meter``; with one by the blur and, under the classifier rule,
      the meter too); ``amber_at`` only applies
      to a report without the analyzer's ``near_meter`` (amber from that meter value);
    * red    - judgeable but far from focus (``out_of_focus``, ``motion_blur``);
    * off    - nothing to judge in the subject region (flat or noise-only).

    * magenta blinking (``overexposed_blink_s`` on, the same off) - *overexposed*: more than
      ``overexposed_pct`` % of the subject region (ROI) is clipped highlight
      (``report.exposure``: ``clip_high_pct_roi``), whatever the focus; focus shows again
      once the clipping is below the limit.  Needs the exposure readouts (``[analysis]
      exposure``); ``overexposed_pct=None`` switches it off.

    In the error state it repeats red flashes followed by a blue pause (the same rhythm as
    the in-focus LED's error pattern), and goes dark when the error clears.

    Args:
        pins: ``(red, green, blue)`` BCM GPIO numbers.
        common_anode: True for a common-anode LED (channel on = pin low).
        amber_at: meter value (0..1) from which the LED turns amber.
        brightness: scale of every colour (0 < x <= 1), for night use.
        overexposed_pct: clipped-highlight share of the ROI (%, 0..100) above which the LED
            blinks magenta; ``None``: never.
        overexposed_blink_s: on (and off) time of the magenta blink, seconds.
        frequency_hz: PWM frequency, Hz (applied after opening when the factory allows).
        error_on_s, error_off_s, error_flashes, error_pause_s: error pattern timing, seconds.
        pin_factory: gpiozero pin factory; it must support PWM.
        key: config key named in error messages.

    Raises:
        OutputError: a pin is in use or invalid, or the factory cannot do PWM.
    """

    label = "RGB LED"

    def __init__(self, pins: Tuple[int, int, int], *, common_anode: bool = False,
                 amber_at: float = 0.8, brightness: float = 1.0, frequency_hz: float = 100.0,
                 error_on_s: float = 0.08, error_off_s: float = 0.12, error_flashes: int = 2,
                 error_pause_s: float = 0.7, overexposed_pct: Optional[float] = 5.0,
                 overexposed_blink_s: float = 0.25, pin_factory=None, key: str = "rgb_pins"):
        from gpiozero import RGBLED
        super().__init__(pins)
        r, g, b = pins
        self.amber_at = float(amber_at)
        self.common_anode = bool(common_anode)
        self.brightness = float(brightness)
        self.overexposed_pct = None if overexposed_pct is None else float(overexposed_pct)
        self.device = open_device(self.label, key, pins, lambda: RGBLED(
            r, g, b, active_high=not common_anode, initial_value=OFF, pwm=True,
            pin_factory=pin_factory))
        for channel in getattr(self.device, "_leds", ()):
            try:
                channel.frequency = float(frequency_hz)
            except Exception:  # pragma: no cover - hardware PWM without frequency control
                log.debug("RGB LED: PWM frequency not settable on %r", channel)
        self._colour: Optional[Colour] = OFF
        self._pattern = PatternPlayer(
            self._write,
            error_steps(error_on_s, error_off_s, error_flashes, error_pause_s,
                        on=self._scale(RED), off=OFF, pause=self._scale(BLUE)),
            name=f"rgb-error-{r}")
        self._over = PatternPlayer(self._write, [(self._scale(MAGENTA), overexposed_blink_s), (OFF, overexposed_blink_s)],
                                   name=f"rgb-overexposed-{r}")

    def _scale(self, colour: Colour) -> Colour:
        return tuple(c * self.brightness for c in colour)

    def _write(self, colour: Colour) -> None:
        self.device.value = colour

    def overexposed(self, report) -> bool:
        """True when more than ``overexposed_pct`` % of the report's ROI is clipped highlight
        (False without exposure readouts or with the limit off)."""
        exp = getattr(report, "exposure", None)
        if self.overexposed_pct is None or exp is None:
            return False
        return float(exp.stats.clip_high_pct_roi) > self.overexposed_pct

    def colour_for(self, report) -> Colour:
        """The (unscaled) colour a report should show."""
        if not report.judgeable:
            return OFF
        if report.in_focus:
            return GREEN
        verdict = getattr(report, "verdict", "")
        if verdict == "near":
            return AMBER  # the same story as the JSON and the page: close, not yet sharp
        near_meter = float(getattr(report, "near_meter", math.nan))
        if verdict in ("out_of_focus", "motion_blur") and (report.blur_px == report.blur_px
                                                           or near_meter == near_meter):
            # the blur model, or the analyzer's near_meter, has said "not close": the
            # meter cannot make it amber (the JSON, the page and the LED tell one story)
            return RED
        meter = float(report.meter)      # a report from elsewhere: the meter rule
        return AMBER if meter >= self.amber_at else RED

    @property
    def colour(self) -> Optional[Colour]:
        """The colour being shown, brightness applied (None while the error or the
        overexposed pattern plays)."""
        return self._colour

    @property
    def showing_overexposed(self) -> bool:
        """True while the magenta overexposed blink plays."""
        return self._over.running

    def _show(self, report) -> None:
        if self.overexposed(report):
            if not self._over.running:
                self._colour = None
                self._over.start()
            return
        if self._over.running:
            self._over.stop()
            self._colour = None  # whatever the blink left: write the focus colour below
        want = self._scale(self.colour_for(report))
        if want != self._colour:
            self._colour = want
            self.device.value = want

    def _show_error(self) -> None:
        self._over.stop()
        self._colour = None
        self._pattern.start()

    def _off(self) -> None:
        self._over.stop()
        self._pattern.stop()
        self._colour = OFF
        self.device.off()

    def _close_devices(self) -> None:
        self.device.close()

    def details(self) -> str:
        """Pin roles and colour meaning."""
        over = (f", magenta blink above {self.overexposed_pct:g} % clipped highlights"
                if self.overexposed_pct is not None else "")
        return (f"red/green/blue{' (common anode)' if self.common_anode else ''}; red far, "
                f"amber from meter {self.amber_at:g}, green in focus{over}")
