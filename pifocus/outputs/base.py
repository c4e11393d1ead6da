"""The :class:`Indicator` base class and the helpers every output module shares.

An indicator turns the per-frame :class:`~pifocus.focus.report.FocusReport` into something a
photographer can see, hear or wire to a camera: an LED, a PWM meter, an RGB LED, a buzzer, a
shutter-trigger pin.  Each wraps one real gpiozero device; the pin factory decides whether
that device drives real pins (on a Raspberry Pi) or mock pins (tests, desktop demo).
"""

import logging
import threading
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from ..exc import OutputError

log = logging.getLogger(__name__)


def pin_name(pin) -> str:
    """``17`` -> ``"GPIO17"`` (BCM numbering, as gpiozero names pins)."""
    return f"GPIO{pin}" if isinstance(pin, int) else str(pin)


class Indicator:
    """Base class of every pifocus output: one gpiozero device driven from focus reports.

    The public methods are thread-safe and idempotent; subclasses implement the hooks
    :meth:`_show`, :meth:`_show_error`, :meth:`_clear_error`, :meth:`_off` and
    :meth:`_close_devices`.

    While the error state is on (:meth:`set_error`), :meth:`update` is ignored and the
    indicator shows its error behaviour; after :meth:`close` every call is a no-op and the
    device is off.

    Attributes:
        label: human name used in :meth:`describe` and log lines (e.g. ``"in-focus LED"``).
        pins: the BCM GPIO numbers this indicator drives.
    """

    label = "indicator"

    def __init__(self, pins: Sequence[int]):
        self.pins: Tuple[int, ...] = tuple(pins)
        self._lock = threading.RLock()
        self._error = False
        self._closed = False

    # -- public API -------------------------------------------------------------------------
    def update(self, report) -> None:
        """Show one frame's :class:`~pifocus.focus.report.FocusReport`.

        Called once per analysed frame (typically 10-60 times a second); cheap when nothing
        changes.  Ignored while in the error state or after :meth:`close`.
        """
        with self._lock:
            if self._closed or self._error:
                return
            self._show(report)

    def set_error(self, on: bool) -> None:
        """Switch the error display on (``True``: e.g. the camera is lost) or off (``False``).

        Turning it off returns the indicator to its idle state until the next :meth:`update`.
        Repeated calls with the same value do nothing.
        """
        on = bool(on)
        with self._lock:
            if self._closed or on == self._error:
                return
            self._error = on
            if on:
                log.debug("%s: error pattern on", self.label)
                self._show_error()
            else:
                log.debug("%s: error pattern off", self.label)
                self._clear_error()

    @property
    def error(self) -> bool:
        """True while the error display is on."""
        return self._error

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def close(self) -> None:
        """Stop any background pattern, switch the device OFF and release its pins.

        Safe to call more than once.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._off()
            except Exception:  # never let a failing write keep the pins reserved
                log.exception("%s: could not switch off before closing", self.label)
            finally:
                self._close_devices()

    def describe(self, note: str = "") -> str:
        """One line saying what this indicator is, where it is wired and what it does, e.g.
        ``"in-focus LED on GPIO17 (mock pin: not on a Raspberry Pi)"``.

        Args:
            note: how the pins are driven (from the pin factory), shown in brackets.
        """
        pins = ", ".join(pin_name(p) for p in self.pins)
        line = f"{self.label} on {pins}"
        if note:
            line += f" ({note})"
        details = self.details()
        return f"{line}: {details}" if details else line

    def details(self) -> str:
        """Extra behaviour text for :meth:`describe` (empty by default)."""
        return ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}{' closed' if self._closed else ''}>"

    # -- hooks --------------------------------------------------------------------------------
    def _show(self, report) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _show_error(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _clear_error(self) -> None:
        """Leave the error state: by default, switch off until the next report."""
        self._off()

    def _off(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close_devices(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def open_device(label: str, key: str, pins: Sequence[int], make: Callable):
    """Create a gpiozero device with ``make()``, turning gpiozero's errors into
    :class:`~pifocus.exc.OutputError` that names the pin, the config key and the fix.

    Args:
        label: what is being opened, e.g. ``"in-focus LED"``.
        key: the ``[outputs]`` config key holding the pin(s), e.g. ``"led_pin"``.
        pins: the BCM pin number(s), for the message.
        make: a no-argument callable returning the device.

    Raises:
        OutputError: the pin is in use, does not exist on this board, cannot do PWM with
            this pin factory, or the GPIO chip cannot be opened.
    """
    from gpiozero.exc import (GPIOPinInUse, GPIOZeroError, PinInvalidPin,
                              PinPWMUnsupported)

    where = ",".join(pin_name(p) for p in pins)
    try:
        return make()
    except GPIOPinInUse as e:
        raise OutputError(
            f"{label} on {where}: pin already in use ({e}); give outputs.{key} a free pin, "
            "or stop the other device/program that holds it") from e
    except PinInvalidPin as e:
        raise OutputError(
            f"{label} on {where}: not a usable GPIO on this board ({e}); set outputs.{key} "
            "to a BCM GPIO number 0..27 (the GPIOn number, not the header pin number)") from e
    except PinPWMUnsupported as e:
        raise OutputError(
            f"{label} on {where}: this pin factory cannot do PWM ({e}); set "
            "outputs.pin_factory = 'lgpio' (Pi 5 / Bookworm) or 'rpigpio', or disable "
            f"outputs.{key}") from e
    except GPIOZeroError as e:
        raise OutputError(f"{label} on {where} could not be opened: {e}; check outputs.{key}") from e
    except (OSError, RuntimeError, ValueError) as e:
        raise OutputError(
            f"{label} on {where} could not be opened: {e}; check outputs.{key}, that no other "
            "program holds the pin, and that the user is in the 'gpio' group") from e
    except Exception as e:
        # lgpio.error passes through gpiozero's LGPIOFactory (LGPIOPin.__init__ claims the
        # line): 'GPIO busy' when another process holds it.
        from ..exc import is_lgpio_error, lgpio_busy_hint
        if not is_lgpio_error(e):
            raise
        if "busy" in str(e).lower():
            raise OutputError(f"{label} on {where}: pin in use by another program ({e}); "
                              f"{lgpio_busy_hint(where)}, or give outputs.{key} a free pin") from e
        raise OutputError(f"{label} on {where} could not be opened with lgpio: {e}; check "
                          f"outputs.{key} and that the user is in the 'gpio' group") from e


class PatternPlayer:
    """Plays a repeating sequence of ``(value, seconds)`` steps on a daemon thread.

    gpiozero's ``blink`` only knows one on/off period; this plays richer patterns (a
    double-blink, red-red-blue) through the device's own ``value`` setter, and stops
    promptly: :meth:`stop` wakes the thread at once and joins it.

    Args:
        write: called with each step's value (e.g. ``lambda v: setattr(led, "value", v)``).
        steps: the pattern, repeated until :meth:`stop`; durations in seconds (> 0).
        name: thread name (for debugging).
    """

    def __init__(self, write: Callable, steps: Iterable[Tuple[object, float]], name: str = "pattern"):
        self._write = write
        self.steps: List[Tuple[object, float]] = [(v, float(s)) for v, s in steps]
        if not self.steps or any(s <= 0 for _, s in self.steps):
            raise ValueError("a pattern needs at least one step, each longer than 0 s")
        self._name = name
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def running(self) -> bool:
        """True while the pattern thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start playing (restarts from the first step if already running)."""
        self.stop()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop playing and wait up to ``timeout`` seconds for the thread to end.  The device
        keeps whatever value the last step wrote: the caller sets the final state."""
        t, self._thread = self._thread, None
        self._stop.set()
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def _run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                for value, seconds in self.steps:
                    if stop.is_set():
                        return
                    self._write(value)
                    if stop.wait(seconds):
                        return
        except Exception:  # a closed device mid-pattern: stop quietly
            if not stop.is_set():
                log.exception("pattern %s stopped by an error", self._name)
