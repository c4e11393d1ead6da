"""Choosing a gpiozero pin factory: real pins on a Raspberry Pi, mock pins elsewhere.

Raspberry-Pi-only libraries (lgpio, RPi.GPIO, pigpio) are imported only inside
:func:`resolve_pin_factory`, and only for the factory asked for, so ``import pifocus.outputs``
works on any machine.
"""

import logging
import os
import threading
from typing import Dict, List, Optional

from ..exc import OutputError

log = logging.getLogger(__name__)

#: Names accepted by ``outputs.pin_factory``.
PIN_FACTORIES = ("auto", "mock", "lgpio", "rpigpio", "pigpio", "native")

#: Order tried by ``"auto"`` on a Raspberry Pi (gpiozero's own preference order).
AUTO_ORDER = ("lgpio", "rpigpio", "pigpio", "native")

#: Files holding the board model string (device tree).
MODEL_FILES = ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model")

_cache: Dict[str, object] = {}
_cache_lock = threading.Lock()


def board_model() -> Optional[str]:
    """The device-tree model string (e.g. ``"Raspberry Pi 5 Model B Rev 1.0"``), or None
    when the machine has no device tree (a PC)."""
    for path in MODEL_FILES:
        try:
            with open(path, "rb") as f:
                return f.read().rstrip(b"\x00\n").decode("ascii", "replace")
        except OSError:
            continue
    return None


def on_raspberry_pi() -> bool:
    """True when running on a Raspberry Pi (the device-tree model says so)."""
    model = board_model()
    return bool(model) and "Raspberry Pi" in model


def _mock_factory():
    """A :class:`gpiozero.pins.mock.MockFactory` whose pins support PWM (so the meter and
    RGB LED work), unless ``GPIOZERO_MOCK_PIN_CLASS`` names another class."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin
    if os.environ.get("GPIOZERO_MOCK_PIN_CLASS"):
        return MockFactory()
    return MockFactory(pin_class=MockPWMPin)


def _hardware_factory(name: str):
    """Import and construct one hardware factory by its gpiozero entry-point name."""
    if name == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory
        return LGPIOFactory()
    if name == "rpigpio":
        from gpiozero.pins.rpigpio import RPiGPIOFactory
        return RPiGPIOFactory()
    if name == "pigpio":
        from gpiozero.pins.pigpio import PiGPIOFactory
        return PiGPIOFactory()
    if name == "native":
        from gpiozero.pins.native import NativeFactory
        return NativeFactory()
    raise OutputError(f"outputs.pin_factory = {name!r} is not a known pin factory; "
                      f"allowed: {', '.join(PIN_FACTORIES)}")


_FIX = {
    "lgpio": "install it (sudo apt install python3-lgpio, or pip install 'pifocus[pi]')",
    "rpigpio": "install it (sudo apt install python3-rpi-lgpio or python3-rpi.gpio)",
    "pigpio": "install python3-pigpio and start the daemon (sudo systemctl enable --now pigpiod)",
    "native": "check that /dev/gpiomem is readable (user in the 'gpio' group)",
}


def _make(name: str):
    if name == "mock":
        return _mock_factory()
    if name != "auto":
        try:
            return _hardware_factory(name)
        except OutputError:
            raise
        except Exception as e:  # ImportError, BadPinFactory, lgpio.error, OSError...
            where = "" if on_raspberry_pi() else " (this machine is not a Raspberry Pi: use 'auto' or 'mock')"
            raise OutputError(f"outputs.pin_factory = {name!r} cannot be used: {e}{where}; "
                              f"{_FIX[name]}") from e
    env = os.environ.get("GPIOZERO_PIN_FACTORY", "").strip().lower()
    if env:
        if env not in PIN_FACTORIES or env == "auto":
            raise OutputError(f"GPIOZERO_PIN_FACTORY = {env!r} is not a pin factory pifocus knows; "
                              f"allowed: {', '.join(p for p in PIN_FACTORIES if p != 'auto')}")
        log.info("pin factory from GPIOZERO_PIN_FACTORY: %s", env)
        return _make(env)
    if not on_raspberry_pi():
        log.info("not on a Raspberry Pi: outputs drive mock pins")
        return _mock_factory()
    failures: List[str] = []
    for candidate in AUTO_ORDER:
        try:
            factory = _hardware_factory(candidate)
        except Exception as e:
            failures.append(f"{candidate}: {e}")
            log.debug("pin factory %s unavailable: %s", candidate, e)
            continue
        log.info("pin factory: %s", candidate)
        return factory
    raise OutputError("no GPIO pin factory works on this Raspberry Pi (" + "; ".join(failures) + "); "
                      f"{_FIX['lgpio']}, or set outputs.pin_factory = 'mock' to run without pins")


def _shared_hardware(name: str):
    """gpiozero's process-wide ``Device.pin_factory`` when it is a real (non-mock) factory
    of kind ``name`` (any kind for ``"auto"``), else None."""
    from gpiozero import Device
    current = Device.pin_factory
    if current is None or factory_kind(current) == "mock":
        return None
    return current if name == "auto" or factory_kind(current) == name else None


def _install_shared(factory) -> None:
    """Make a real factory gpiozero's process-wide default when none is set, so devices
    created elsewhere with ``pin_factory=None`` (e.g. the focus drives) share its pin
    reservations and chip handle."""
    from gpiozero import Device
    if factory_kind(factory) != "mock" and Device.pin_factory is None:
        Device.pin_factory = factory


def resolve_pin_factory(name: str = "auto"):
    """The gpiozero pin factory for ``outputs.pin_factory``.

    Args:
        name: ``"auto"`` (the ``GPIOZERO_PIN_FACTORY`` environment variable if set, else real
            pins on a Raspberry Pi - lgpio, RPi.GPIO, pigpio, native, in that order - and mock
            pins anywhere else), ``"mock"`` (``MockFactory(pin_class=MockPWMPin)``),
            ``"lgpio"``, ``"rpigpio"``, ``"pigpio"`` or ``"native"``.

    One factory is shared per name.  A real factory is also shared with gpiozero's
    process-wide default (``gpiozero.Device.pin_factory``): an existing one of the right kind
    is reused, and a new one becomes the default when none is set, so every part of pifocus
    that drives pins uses one factory and gpiozero detects two devices claiming one pin.
    Mock factories never become the process-wide default.

    Raises:
        OutputError: unknown name, or the factory's library is missing / cannot open the
            GPIO chip (the message says what to install).
    """
    if name not in PIN_FACTORIES:
        raise OutputError(f"outputs.pin_factory = {name!r} is not a known pin factory; "
                          f"allowed: {', '.join(PIN_FACTORIES)}")
    with _cache_lock:
        factory = _cache.get(name)
        if factory is None and name != "mock":
            factory = _shared_hardware(name)
        if factory is None:
            factory = _make(name)
            _install_shared(factory)
        _cache[name] = factory
        return factory


def forget_pin_factories() -> None:
    """Drop the cached factories, closing the mock ones (tests; or after every device is
    closed).  Real factories stay with gpiozero, which closes them at exit."""
    with _cache_lock:
        for factory in _cache.values():
            if factory_kind(factory) != "mock":
                continue
            try:
                factory.close()
            except Exception:  # pragma: no cover - best effort
                log.debug("closing pin factory %r failed", factory, exc_info=True)
        _cache.clear()


def factory_kind(factory) -> str:
    """Short name of a factory instance: ``"mock"``, ``"lgpio"``, ``"rpigpio"``, ..."""
    cls = type(factory).__name__
    return {"MockFactory": "mock", "LGPIOFactory": "lgpio", "RPiGPIOFactory": "rpigpio",
            "PiGPIOFactory": "pigpio", "NativeFactory": "native"}.get(cls, cls)


def factory_note(factory) -> str:
    """How the pins are driven, for log and status lines: ``"mock pin: not on a Raspberry
    Pi"``, ``"mock pin"`` (chosen on a Pi) or ``"lgpio"`` etc."""
    kind = factory_kind(factory)
    if kind == "mock":
        return "mock pin" if on_raspberry_pi() else "mock pin: not on a Raspberry Pi"
    return kind
