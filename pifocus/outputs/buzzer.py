"""The focus buzzer: beeps faster as focus gets closer (like a parking sensor)."""

import logging
import math
from typing import Tuple

from .base import Indicator, open_device

log = logging.getLogger(__name__)

#: Buzzer modes accepted by ``outputs.buzzer_mode``.
BUZZER_MODES = ("proximity", "acquire")


class FocusBuzzer(Indicator):
    """An active buzzer (it sounds when its pin is on) that tells focus by ear.

    Mode ``"proximity"``: silent below ``min_meter`` or when the frame is not judgeable;
    from ``min_meter`` up the meter is split into ``steps`` bands, each beeping faster
    (geometrically from ``slow_hz`` to ``fast_hz``); a steady tone while ``report.in_focus``.
    The beep rate changes only when the band changes (with a small hysteresis), so
    gpiozero's background beep thread is not restarted every frame.

    Mode ``"acquire"`` (quiet): one short chirp of ``chirp_s`` each time focus is acquired,
    silent otherwise.

    The buzzer is silent in the error state (the LED shows the error) and after close.

    Args:
        pin: BCM GPIO number.
        active_high: True when a high pin sounds the buzzer.
        mode: ``"proximity"`` or ``"acquire"``.
        min_meter: meter value (0..1) below which the buzzer is silent.
        slow_hz, fast_hz: beep rate of the lowest and highest band, beeps per second.
        steps: number of rate bands (>= 1).
        beep_s: length of each beep, seconds (shortened to half the period at high rates).
        chirp_s: length of the focus-acquired chirp (``"acquire"`` mode), seconds.
        pin_factory: gpiozero pin factory.
        key: config key named in error messages.

    Attributes:
        rate_hz: current beep rate (0 = silent, ``math.inf`` = steady tone).
        pattern_changes: how many times the sound pattern was (re)started - a diagnostic.
        chirps: focus-acquired chirps sounded.

    Raises:
        OutputError: the pin is in use or invalid.
    """

    label = "buzzer"

    #: Meter hysteresis (0..1) around band edges before the rate changes.
    HYSTERESIS = 0.02

    def __init__(self, pin: int, *, active_high: bool = True, mode: str = "proximity",
                 min_meter: float = 0.3, slow_hz: float = 1.5, fast_hz: float = 8.0, steps: int = 5,
                 beep_s: float = 0.04, chirp_s: float = 0.15, pin_factory=None,
                 key: str = "buzzer_pin"):
        from gpiozero import Buzzer
        if mode not in BUZZER_MODES:
            raise ValueError(f"buzzer mode {mode!r}; allowed: {', '.join(BUZZER_MODES)}")
        super().__init__([pin])
        self.mode = mode
        self.min_meter = float(min_meter)
        self.slow_hz = float(slow_hz)
        self.fast_hz = float(fast_hz)
        self.steps = int(steps)
        self.beep_s = float(beep_s)
        self.chirp_s = float(chirp_s)
        self.device = open_device(self.label, key, [pin], lambda: Buzzer(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory))
        self._state: Tuple = ("silent",)
        self._band = -1  # -1 = below min_meter
        self._prev_in_focus = False
        self.rate_hz = 0.0
        self.pattern_changes = 0
        self.chirps = 0

    # -- band logic ---------------------------------------------------------------------------
    def _band_width(self) -> float:
        return (1.0 - self.min_meter) / self.steps

    def _band_edges(self, band: int) -> Tuple[float, float]:
        if band < 0:
            return -math.inf, self.min_meter
        lo = self.min_meter + band * self._band_width()
        return lo, (math.inf if band == self.steps - 1 else lo + self._band_width())

    def band_for(self, meter: float) -> int:
        """The rate band (-1 = silent, 0 .. steps-1) for a meter value, without hysteresis."""
        if not meter >= self.min_meter:  # also NaN
            return -1
        return min(self.steps - 1, int((meter - self.min_meter) / self._band_width()))

    def rate_for_band(self, band: int) -> float:
        """Beeps per second of a band (0 for the silent band)."""
        if band < 0:
            return 0.0
        if self.steps == 1:
            return self.fast_hz
        return self.slow_hz * (self.fast_hz / self.slow_hz) ** (band / (self.steps - 1))

    def _next_band(self, meter: float) -> int:
        raw = self.band_for(meter)
        if raw == self._band:
            return raw
        lo, hi = self._band_edges(self._band)
        if lo - self.HYSTERESIS <= meter < hi + self.HYSTERESIS:
            return self._band  # still within the hysteresis margin of the current band
        return raw

    # -- sound ---------------------------------------------------------------------------------
    def _apply(self, state: Tuple) -> None:
        if state == self._state:
            return
        self._state = state
        self.pattern_changes += 1
        kind = state[0]
        if kind == "silent":
            self.rate_hz = 0.0
            self.device.off()
        elif kind == "steady":
            self.rate_hz = math.inf
            self.device.on()
        else:
            rate = self.rate_for_band(state[1])
            self.rate_hz = rate
            period = 1.0 / rate
            on_s = min(self.beep_s, period / 2)
            self.device.beep(on_time=on_s, off_time=period - on_s, n=None, background=True)

    def _show(self, report) -> None:
        in_focus = bool(report.in_focus)
        acquired = in_focus and not self._prev_in_focus
        self._prev_in_focus = in_focus
        if self.mode == "acquire":
            if acquired:
                self.chirps += 1
                self.pattern_changes += 1
                self.device.beep(on_time=self.chirp_s, off_time=0.001, n=1, background=True)
            return
        if not report.judgeable:
            self._band = -1
            self._apply(("silent",))
        elif in_focus:
            self._apply(("steady",))
        else:
            self._band = self._next_band(float(report.meter))
            self._apply(("silent",) if self._band < 0 else ("beep", self._band))

    def _show_error(self) -> None:
        self._off()

    def _off(self) -> None:
        self._state = ("silent",)
        self._band = -1
        self._prev_in_focus = False
        self.rate_hz = 0.0
        self.device.off()

    def _close_devices(self) -> None:
        self.device.close()

    def details(self) -> str:
        """What the buzzer does in its mode."""
        if self.mode == "proximity":
            return (f"beeps faster near focus ({self.slow_hz:g}..{self.fast_hz:g} beeps/s from meter "
                    f"{self.min_meter:g}), steady tone in focus")
        return "chirps once when focus is acquired"
