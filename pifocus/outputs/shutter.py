"""The shutter trigger ("focus trap"): one pulse on a pin when focus is acquired.

Wire the pin through an optocoupler (or a transistor) to the camera's remote-release
socket, or to any device that should act when the subject snaps into focus.
"""

import logging
import time
from typing import Callable, Optional

from .base import Indicator, open_device

log = logging.getLogger(__name__)


class ShutterTrigger(Indicator):
    """Pulses its pin once for ``pulse_s`` when focus is *acquired* (``report.in_focus``
    goes from false to true) while armed.

    Re-arm rule: after firing, the trigger is disarmed.  It re-arms once focus has been lost
    (``in_focus`` false) continuously for at least ``rearm_s`` seconds, or at once when the
    analyser reports a new scene (``report.scene_changed``, if ``rearm_on_scene_change``).
    So holding focus, or focus flickering for a moment, never fires twice.

    It never fires in the error state; time spent in error does not count towards re-arming,
    and after the error clears focus must be (re)acquired from an out-of-focus frame.

    Args:
        pin: BCM GPIO number.
        active_high: True when a high pin releases the shutter (e.g. an optocoupler's LED
            driven from the pin).
        pulse_s: pulse length, seconds.
        rearm_s: seconds focus must stay lost before the trigger re-arms (0 = any
            out-of-focus frame re-arms it).
        rearm_on_scene_change: a scene change re-arms immediately.
        clock: monotonic time source in seconds (tests inject a fake one).
        pin_factory: gpiozero pin factory.
        key: config key named in error messages.

    Attributes:
        fired: number of pulses sent.

    Raises:
        OutputError: the pin is in use or invalid.
    """

    label = "shutter trigger"

    def __init__(self, pin: int, *, active_high: bool = True, pulse_s: float = 0.2,
                 rearm_s: float = 1.0, rearm_on_scene_change: bool = True,
                 clock: Callable[[], float] = time.monotonic, pin_factory=None,
                 key: str = "shutter_pin"):
        from gpiozero import DigitalOutputDevice
        super().__init__([pin])
        self.pulse_s = float(pulse_s)
        self.rearm_s = float(rearm_s)
        self.rearm_on_scene_change = bool(rearm_on_scene_change)
        self._clock = clock
        self.device = open_device(self.label, key, [pin], lambda: DigitalOutputDevice(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory))
        self._armed = True
        self._prev_in_focus = False
        self._lost_since: Optional[float] = None
        self.fired = 0

    @property
    def armed(self) -> bool:
        """True when the next acquisition of focus will fire."""
        return self._armed

    def _show(self, report) -> None:
        now = self._clock()
        in_focus = bool(report.in_focus)
        if report.scene_changed and self.rearm_on_scene_change and not self._armed:
            log.debug("shutter trigger re-armed: scene changed")
            self._armed = True
        if in_focus:
            self._lost_since = None
            if not self._prev_in_focus and self._armed:
                self._fire(report)
        else:
            if self._lost_since is None:
                self._lost_since = now
            if not self._armed and now - self._lost_since >= self.rearm_s:
                log.debug("shutter trigger re-armed: focus lost for %.2f s", now - self._lost_since)
                self._armed = True
        self._prev_in_focus = in_focus

    def _fire(self, report) -> None:
        self._armed = False
        self.fired += 1
        log.info("shutter trigger: focus acquired (frame %s), pulse %.3f s on GPIO%d",
                 getattr(report, "frame_index", "?"), self.pulse_s, self.pins[0])
        self.device.blink(on_time=self.pulse_s, off_time=0, n=1, background=True)

    def _show_error(self) -> None:
        # A pulse already under way completes (cutting a release short helps nobody).
        self._prev_in_focus = True  # focus must be re-acquired from an out-of-focus frame
        self._lost_since = None

    def _clear_error(self) -> None:
        self._lost_since = None

    def _off(self) -> None:
        self.device.off()

    def _close_devices(self) -> None:
        self.device.close()

    def details(self) -> str:
        """Pulse length and re-arm rule."""
        return (f"{self.pulse_s:g} s pulse when focus is acquired; re-arms after {self.rearm_s:g} s "
                "out of focus" + (" or a scene change" if self.rearm_on_scene_change else ""))
