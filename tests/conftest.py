"""Shared test setup.

* GPIO runs on gpiozero's mock pins everywhere (``GPIOZERO_PIN_FACTORY=mock``).
* ``@pytest.mark.hardware`` tests run only on a Raspberry Pi with ``--hardware``.
* ``shared_data`` points at ``../shared/data`` and skips when it is absent.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / "tests" / "data"
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--hardware", action="store_true", default=False,
                     help="run @pytest.mark.hardware tests (needs a Raspberry Pi with the camera/GPIO wired)")


def pytest_configure(config):
    config.addinivalue_line("markers", "hardware: needs a Raspberry Pi with camera/GPIO (run with --hardware)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def on_raspberry_pi() -> bool:
    """True on a Raspberry Pi (device-tree model)."""
    try:
        return "Raspberry Pi" in Path("/proc/device-tree/model").read_text(errors="ignore")
    except OSError:
        return False


def pytest_collection_modifyitems(config, items):
    if config.getoption("--hardware") and on_raspberry_pi():
        return
    skip = pytest.mark.skip(reason="hardware test: run on a Raspberry Pi with --hardware")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def shared_data():
    """Path of ../shared/data; skips the test when it is absent (a user's checkout)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_path():
    """A tiny real int8 .tflite focus model (hand-weighted, 16 px tiles) for pipeline tests."""
    return TEST_DATA / "tiny_focus_int8.tflite"


@pytest.fixture
def mock_factory():
    """A fresh gpiozero MockFactory with PWM-capable pins, closed after the test."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    factory = MockFactory(pin_class=MockPWMPin)
    old = Device.pin_factory
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = old
