"""Tests of pifocus.outputs on gpiozero mock pins: real devices, asserting pin states."""

import math
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from pifocus import config
from pifocus.exc import ConfigError, OutputError
from pifocus.focus.report import FocusReport
from pifocus.outputs import (FocusBuzzer, FocusLED, FocusMeter, FocusRGB, OutputGroup,
                             OutputsParams, ShutterTrigger, make_outputs, pins as pinsmod,
                             resolve_pin_factory)
from pifocus.outputs.rgb import AMBER, GREEN, RED


# -- helpers ---------------------------------------------------------------------------------
@pytest.fixture
def factory():
    """A fresh mock pin factory with PWM-capable pins, reset after the test."""
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.close()
    f.reset()


def report(in_focus=False, meter=0.0, judgeable=True, scene_changed=False, frame=0):
    """A minimal FocusReport with the fields the outputs read."""
    z = np.zeros((1, 1))
    return FocusReport(
        frame_index=frame, timestamp_ns=frame * 33_000_000, lens_position=None,
        roi=(0.25, 0.25, 0.5, 0.5), grid_px=(0, 0, 64, 64), tile_lap_var=z, tile_floor=z,
        tile_informative=np.ones((1, 1), bool), tile_p=z + meter, tile_weight=np.ones((1, 1)),
        noise_sigma_dn=1.0, sharpness=100.0 * meter, p_in_focus=float(in_focus),
        in_focus_fraction=float(in_focus), informative_fraction=1.0 if judgeable else 0.0,
        judgeable=judgeable, raw_in_focus=in_focus, in_focus=in_focus, meter=meter,
        scene_changed=scene_changed)


def wait_for(cond, timeout=1.5, step=0.003):
    """Poll ``cond()`` until true or ``timeout`` seconds pass; returns its last value."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def values(pin):
    """The pin's state history (values only)."""
    return [s.state for s in pin.states]


class FakeClock:
    """A settable monotonic clock for the shutter's re-arm timer."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t

    def advance(self, s):
        self.t += s


FAST_ERR = dict(error_on_s=0.02, error_off_s=0.04, error_flashes=2, error_pause_s=0.2)


# -- in-focus LED ----------------------------------------------------------------------------
def test_led_follows_in_focus(factory):
    led = FocusLED(17, pin_factory=factory)
    pin = factory.pin(17)
    assert pin.state == 0
    for r in (report(False), report(True), report(True), report(True), report(False), report(False)):
        led.update(r)
    assert values(pin) == [False, True, False]  # repeated frames cause no extra writes
    led.update(report(True))
    assert pin.state == 1
    led.close()
    assert pin.state == 0


def test_led_active_low(factory):
    led = FocusLED(4, active_high=False, pin_factory=factory)
    pin = factory.pin(4)
    assert pin.state == 1  # off = high
    led.update(report(True))
    assert pin.state == 0
    led.close()


def test_led_error_pattern_is_a_double_blink_and_stops(factory):
    led = FocusLED(17, pin_factory=factory, **FAST_ERR)
    pin = factory.pin(17)
    led.update(report(True))
    pin.clear_states()
    led.set_error(True)
    led.update(report(True))  # ignored while in error
    # two full cycles: (on off on pause) x 2 = 8 changes after the first rise
    assert wait_for(lambda: len(pin.states) >= 10, timeout=2.0)
    led.set_error(False)
    hist = list(pin.states)
    assert pin.state == 0
    n = len(pin.states)
    time.sleep(0.1)
    assert len(pin.states) == n, "pattern must stop after set_error(False)"
    # states[k].timestamp = time since the previous change: a rise ends a dark gap, a fall
    # ends a flash.
    lows = [hist[k].timestamp for k in range(1, len(hist)) if hist[k].state == 1]
    highs = [hist[k].timestamp for k in range(1, len(hist)) if hist[k].state == 0]
    assert highs and all(0.01 <= h < 0.1 for h in highs[:4]), highs
    # alternating short gaps (between the two flashes) and long pauses (between groups)
    assert len(lows) >= 3
    short, long_ = lows[0::2], lows[1::2]
    if lows[0] > 0.12:  # the history may begin with a pause
        short, long_ = long_, short
    assert all(g < 0.12 for g in short), lows
    assert all(g > 0.14 for g in long_), lows
    # normal behaviour resumes
    led.update(report(True))
    assert pin.state == 1
    led.close()
    assert pin.state == 0


def test_led_close_during_error_stops_pattern(factory):
    led = FocusLED(17, pin_factory=factory, **FAST_ERR)
    pin = factory.pin(17)
    led.set_error(True)
    assert wait_for(lambda: len(pin.states) >= 3)
    led.close()
    n = len(pin.states)
    assert pin.state == 0
    time.sleep(0.08)
    assert len(pin.states) == n
    assert not any(t.name.startswith("led-error") for t in threading.enumerate())
    led.close()  # idempotent
    led.update(report(True))  # no-op after close
    assert pin.state == 0


# -- PWM meter -------------------------------------------------------------------------------
def test_meter_duty_follows_meter(factory):
    meter = FocusMeter(18, frequency_hz=200, pin_factory=factory)
    pin = factory.pin(18)
    assert pin.frequency == 200
    for m in (0.0, 0.25, 0.5, 0.93, 1.0):
        meter.update(report(meter=m))
        assert pin.state == pytest.approx(m)
        assert meter.value == pytest.approx(m)
    meter.update(report(meter=1.7))
    assert pin.state == pytest.approx(1.0)  # clipped
    meter.update(report(meter=0.6, judgeable=False))
    assert pin.state == 0.0
    meter.update(report(meter=float("nan")))
    assert pin.state == 0.0
    meter.update(report(meter=0.6))
    meter.set_error(True)
    assert pin.state == 0.0
    meter.update(report(meter=0.9))
    assert pin.state == 0.0  # ignored in error
    meter.set_error(False)
    meter.update(report(meter=0.9))
    assert pin.state == pytest.approx(0.9)
    meter.close()
    assert pin.state == 0.0


def test_meter_max_duty_scales_full_scale(factory):
    meter = FocusMeter(18, max_duty=0.5, pin_factory=factory)
    meter.update(report(meter=1.0))
    assert factory.pin(18).state == pytest.approx(0.5)
    meter.update(report(meter=0.5))
    assert factory.pin(18).state == pytest.approx(0.25)
    meter.close()


def test_meter_needs_pwm():
    f = MockFactory(pin_class=MockPin)  # no PWM
    try:
        with pytest.raises(OutputError, match="PWM.*GPIO18|GPIO18.*PWM"):
            FocusMeter(18, pin_factory=f)
    finally:
        f.close()
        f.reset()


# -- RGB LED ---------------------------------------------------------------------------------
def rgb_state(factory, pins=(22, 23, 24)):
    return tuple(round(float(factory.pin(p).state), 3) for p in pins)


def test_rgb_colours(factory):
    rgb = FocusRGB((22, 23, 24), amber_at=0.8, pin_factory=factory)
    assert rgb_state(factory) == (0, 0, 0)
    rgb.update(report(meter=0.3))
    assert rgb_state(factory) == RED
    rgb.update(report(meter=0.85))
    assert rgb_state(factory) == AMBER
    rgb.update(report(in_focus=True, meter=1.0))
    assert rgb_state(factory) == GREEN
    rgb.update(report(meter=0.9, judgeable=False))
    assert rgb_state(factory) == (0, 0, 0)
    rgb.update(report(in_focus=True, meter=1.0))
    rgb.close()
    assert rgb_state(factory) == (0, 0, 0)


def test_rgb_common_anode_and_brightness(factory):
    rgb = FocusRGB((22, 23, 24), common_anode=True, brightness=0.5, pin_factory=factory)
    assert rgb_state(factory) == (1, 1, 1)  # off = all high
    rgb.update(report(in_focus=True, meter=1.0))
    assert rgb_state(factory) == (1, 0.5, 1)
    rgb.close()


def test_rgb_error_pattern_red_then_blue(factory):
    rgb = FocusRGB((22, 23, 24), pin_factory=factory, **FAST_ERR)
    red, blue = factory.pin(22), factory.pin(24)
    rgb.update(report(in_focus=True, meter=1.0))
    rgb.set_error(True)
    assert wait_for(lambda: sum(1 for s in red.states if s.state == 1.0) >= 3 and blue.state == 1.0)
    rgb.set_error(False)
    assert rgb_state(factory) == (0, 0, 0)
    n = len(red.states) + len(blue.states)
    time.sleep(0.08)
    assert len(red.states) + len(blue.states) == n
    rgb.close()


# -- buzzer ----------------------------------------------------------------------------------
def beep_period(pin, rises=3, timeout=2.0):
    """Shortest time between rising edges over ``rises`` periods, seconds (a loaded machine
    only ever makes a blink thread sleep longer, so the shortest period is the robust one)."""
    pin.clear_states()
    assert wait_for(lambda: sum(1 for s in pin.states if s.state) >= rises + 1, timeout=timeout)
    t, times = 0.0, []
    for s in pin.states:
        t += s.timestamp
        if s.state:
            times.append(t)
    return min(b - a for a, b in zip(times[:rises], times[1:rises + 1]))


def test_buzzer_beeps_faster_near_focus(factory):
    bz = FocusBuzzer(27, min_meter=0.3, slow_hz=6, fast_hz=24, steps=3, beep_s=0.01, pin_factory=factory)
    pin = factory.pin(27)
    rates = [bz.rate_for_band(b) for b in range(3)]
    assert rates == sorted(rates) and rates[0] == pytest.approx(6) and rates[-1] == pytest.approx(24)
    bz.update(report(meter=0.1))
    assert bz.rate_hz == 0 and pin.state == 0  # below min_meter: silent
    bz.update(report(meter=0.35))
    slow = beep_period(pin, rises=3)
    bz.update(report(meter=0.95))
    fast = beep_period(pin, rises=5)
    assert 0.8 / 6 <= slow <= 2.0 / 6
    assert 0.8 / 24 <= fast <= 2.5 / 24
    assert fast < slow / 2
    bz.update(report(in_focus=True, meter=1.0))
    assert bz.rate_hz == math.inf and pin.state == 1  # steady tone in focus
    bz.update(report(meter=0.8, judgeable=False))
    assert pin.state == 0 and bz.rate_hz == 0
    bz.close()
    assert pin.state == 0


def test_buzzer_does_not_restart_beeping_every_frame(factory):
    bz = FocusBuzzer(27, min_meter=0.3, steps=5, pin_factory=factory)
    bz.update(report(meter=0.5))
    changes, thread = bz.pattern_changes, bz.device._blink_thread
    assert thread is not None
    # jitter inside one band, and across a band edge (0.58) by less than the hysteresis
    for m in (0.5, 0.52, 0.49, 0.57, 0.59, 0.585, 0.56, 0.595):
        bz.update(report(meter=m))
    assert bz.pattern_changes == changes
    assert bz.device._blink_thread is thread
    bz.update(report(meter=0.9))  # a real change of band
    assert bz.pattern_changes == changes + 1
    bz.close()


def test_buzzer_silent_in_error(factory):
    bz = FocusBuzzer(27, pin_factory=factory)
    pin = factory.pin(27)
    bz.update(report(in_focus=True, meter=1.0))
    assert pin.state == 1
    bz.set_error(True)
    assert pin.state == 0
    bz.update(report(in_focus=True, meter=1.0))
    assert pin.state == 0
    bz.set_error(False)
    bz.update(report(in_focus=True, meter=1.0))
    assert pin.state == 1
    bz.close()
    assert pin.state == 0


def test_buzzer_acquire_mode_chirps_once(factory):
    bz = FocusBuzzer(27, mode="acquire", chirp_s=0.03, pin_factory=factory)
    pin = factory.pin(27)
    bz.update(report(meter=0.95))
    assert pin.state == 0  # quiet: no proximity beeps
    for _ in range(5):
        bz.update(report(in_focus=True, meter=1.0))
    assert wait_for(lambda: values(pin) == [False, True, False])
    assert pin.states[-1].timestamp == pytest.approx(0.03, abs=0.03)
    assert bz.chirps == 1
    bz.update(report(meter=0.5))
    bz.update(report(in_focus=True, meter=1.0))
    assert bz.chirps == 2
    bz.close()


# -- shutter trigger -------------------------------------------------------------------------
def test_shutter_fires_once_on_acquire_and_rearms(factory):
    clock = FakeClock()
    sh = ShutterTrigger(5, pulse_s=0.03, rearm_s=1.0, clock=clock, pin_factory=factory)
    pin = factory.pin(5)
    sh.update(report(False))
    assert sh.armed and sh.fired == 0
    sh.update(report(True))
    assert sh.fired == 1 and not sh.armed
    assert wait_for(lambda: values(pin) == [False, True, False])
    assert pin.states[-1].timestamp == pytest.approx(0.03, abs=0.03)  # pulse length
    for _ in range(20):  # holding focus: no more pulses
        clock.advance(0.5)
        sh.update(report(True))
    assert sh.fired == 1
    # focus lost briefly (< rearm_s) and back: still no pulse
    sh.update(report(False))
    clock.advance(0.5)
    sh.update(report(False))
    clock.advance(0.2)
    sh.update(report(True))
    assert sh.fired == 1
    # focus lost for >= rearm_s: re-armed, fires on the next acquisition
    sh.update(report(False))
    clock.advance(0.6)
    sh.update(report(False))
    assert not sh.armed
    clock.advance(0.5)
    sh.update(report(False))
    assert sh.armed
    sh.update(report(True))
    assert sh.fired == 2
    assert wait_for(lambda: values(pin) == [False, True, False, True, False])
    sh.close()
    assert pin.state == 0


def test_shutter_rearms_on_scene_change(factory):
    clock = FakeClock()
    sh = ShutterTrigger(5, pulse_s=0.01, rearm_s=60, clock=clock, pin_factory=factory)
    sh.update(report(True))
    assert sh.fired == 1
    sh.update(report(False, scene_changed=True))
    assert sh.armed
    sh.update(report(True))
    assert sh.fired == 2
    sh.close()


def test_shutter_never_fires_in_error(factory):
    clock = FakeClock()
    sh = ShutterTrigger(5, pulse_s=0.01, rearm_s=0.5, clock=clock, pin_factory=factory)
    pin = factory.pin(5)
    sh.set_error(True)
    sh.update(report(True))
    assert sh.fired == 0 and pin.state == 0
    sh.set_error(False)
    sh.update(report(True))  # focus held across the error: not an acquisition
    assert sh.fired == 0
    sh.update(report(False))
    sh.update(report(True))  # armed all along: a real acquisition fires
    assert sh.fired == 1
    sh.close()
    assert pin.state == 0


def test_shutter_close_mid_pulse_leaves_pin_low(factory):
    sh = ShutterTrigger(5, pulse_s=2.0, pin_factory=factory)
    sh.update(report(True))
    pin = factory.pin(5)
    assert wait_for(lambda: pin.state == 1)
    sh.close()
    assert pin.state == 0


# -- the group -------------------------------------------------------------------------------
ALL = dict(led_pin=17, meter_pin=18, rgb_pins=(22, 23, 24), buzzer_pin=27, shutter_pin=5,
           shutter_pulse_s=1.0, **FAST_ERR)


def test_make_outputs_builds_and_describes(factory):
    group = make_outputs(OutputsParams(**ALL), pin_factory=factory)
    assert len(group) == 5 and group.mock
    lines = group.describe()
    note = "(mock pin: not on a Raspberry Pi)" if not pinsmod.on_raspberry_pi() else "(mock pin)"
    assert lines[0] == f"in-focus LED on GPIO17 {note}"
    assert lines[1] == f"focus meter on GPIO18 {note}: PWM 100 Hz, duty = focus meter"
    assert lines[2].startswith(f"RGB LED on GPIO22, GPIO23, GPIO24 {note}: red/green/blue")
    assert lines[3].startswith(f"buzzer on GPIO27 {note}: beeps faster near focus")
    assert lines[4] == (f"shutter trigger on GPIO5 {note}: 1 s pulse when focus is acquired; "
                        "re-arms after 1 s out of focus or a scene change")
    group.close()


def test_close_leaves_everything_off(factory):
    group = make_outputs(OutputsParams(**ALL), pin_factory=factory)
    group.update(report(True, meter=1.0))
    pins = [17, 18, 22, 23, 24, 27, 5]
    assert factory.pin(17).state and factory.pin(18).state == 1.0 and factory.pin(23).state == 1.0
    assert factory.pin(27).state == 1
    assert wait_for(lambda: factory.pin(5).state == 1)  # shutter pulse under way
    group.close()
    assert [bool(factory.pin(p).state) for p in pins] == [False] * len(pins)
    group.close()  # idempotent
    # pins are released: a new group can claim them
    again = make_outputs(OutputsParams(**ALL), pin_factory=factory)
    again.set_error(True)
    again.close()
    assert [bool(factory.pin(p).state) for p in pins] == [False] * len(pins)


def test_group_error_on_and_off(factory):
    group = make_outputs(OutputsParams(led_pin=17, meter_pin=18, **FAST_ERR), pin_factory=factory)
    group.update(report(True, meter=0.7))
    group.set_error(True)
    led = factory.pin(17)
    led.clear_states()
    assert wait_for(lambda: len(led.states) >= 4)
    assert factory.pin(18).state == 0.0
    group.set_error(False)
    assert led.state == 0
    group.update(report(True, meter=0.7))
    assert led.state == 1 and factory.pin(18).state == pytest.approx(0.7)
    group.close()


def test_group_isolates_a_failing_indicator(factory, caplog):
    class Broken(FocusLED):
        def _show(self, report):
            raise RuntimeError("wire fell off")

    bad = Broken(4, pin_factory=factory)
    good = FocusLED(17, pin_factory=factory)
    group = OutputGroup([bad, good])
    for _ in range(3):
        group.update(report(True))
    assert factory.pin(17).state == 1
    assert sum("wire fell off" in r.getMessage() or (r.exc_info and "wire fell off" in str(r.exc_info[1]))
               for r in caplog.records) == 1  # logged once
    group.close()


def test_no_outputs_configured():
    group = make_outputs(OutputsParams(led_pin=None))
    assert len(group) == 0 and group.describe() == ["no outputs configured"]
    group.update(report(True))
    group.set_error(True)
    group.close()


# -- pin errors ------------------------------------------------------------------------------
def test_pin_in_use_is_an_output_error(factory):
    led = FocusLED(17, pin_factory=factory)
    with pytest.raises(OutputError, match=r"GPIO17.*in use.*outputs\.shutter_pin"):
        ShutterTrigger(17, pin_factory=factory, key="shutter_pin")
    led.close()


def test_invalid_pin_is_an_output_error(factory):
    with pytest.raises(OutputError, match=r"GPIO99.*outputs\.led_pin"):
        FocusLED(99, pin_factory=factory)


def test_make_outputs_cleans_up_after_a_failure(factory):
    blocker = FocusLED(27, pin_factory=factory)  # someone else holds the buzzer's pin
    with pytest.raises(OutputError, match="GPIO27"):
        make_outputs(OutputsParams(led_pin=17, meter_pin=18, buzzer_pin=27), pin_factory=factory)
    blocker.close()
    # the LED and meter opened before the failure were released again
    group = make_outputs(OutputsParams(led_pin=17, meter_pin=18), pin_factory=factory)
    group.close()


# -- parameters ------------------------------------------------------------------------------
@pytest.mark.parametrize("key,value", [
    ("led_pin", 40), ("led_pin", -1), ("led_pin", True), ("led_pin", 2.5), ("meter_pin", "pin 12"),
    ("rgb_pins", (1, 2)), ("rgb_pins", (5, 5, 6)), ("pin_factory", "gpiod"),
    ("buzzer_mode", "loud"), ("buzzer_slow_hz", 0), ("buzzer_steps", 0), ("shutter_pulse_s", 0.0),
    ("shutter_rearm_s", -1), ("pwm_frequency_hz", 0), ("meter_max_duty", 1.5),
    ("error_flashes", 0), ("rgb_amber_at", 2), ("active_high", "yes"),
])
def test_bad_params_raise_config_error_naming_key(key, value):
    with pytest.raises(ConfigError, match=rf"outputs\.{key}"):
        OutputsParams(**{key: value})


def test_duplicate_pins_rejected():
    with pytest.raises(ConfigError, match=r"outputs\.buzzer_pin = 17.*led_pin"):
        OutputsParams(led_pin=17, buzzer_pin=17)
    with pytest.raises(ConfigError, match=r"outputs\.rgb_pins"):
        OutputsParams(led_pin=17, rgb_pins=(17, 22, 23))


def test_fast_hz_below_slow_rejected():
    with pytest.raises(ConfigError, match=r"outputs\.buzzer_fast_hz"):
        OutputsParams(buzzer_slow_hz=5, buzzer_fast_hz=2)


def test_toml_table_round_trip():
    cfg = config.from_dict({"outputs": {"led_pin": False, "meter_pin": 18, "rgb_pins": [22, 23, 24],
                                        "buzzer_pin": "GPIO27", "shutter_pin": 5,
                                        "shutter_rearm_s": 2, "pin_factory": "mock"}})
    p = cfg.outputs
    assert p.led_pin is None and p.meter_pin == 18 and p.rgb_pins == (22, 23, 24)
    assert p.buzzer_pin == 27 and p.shutter_rearm_s == 2.0
    assert OutputsParams(**p.to_dict()) == p
    assert config.default().outputs == OutputsParams()
    with pytest.raises(ConfigError, match="did you mean 'led_pin'"):
        config.from_dict({"outputs": {"led_pins": 17}})
    with pytest.raises(ConfigError, match=r"outputs\.shutter_pulse_s"):
        config.from_dict({"outputs": {"shutter_pulse_s": "long"}})


# -- pin factories ---------------------------------------------------------------------------
@pytest.fixture
def no_factory_cache(monkeypatch):
    from gpiozero import Device
    monkeypatch.setattr(Device, "pin_factory", None)  # restored after the test
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.delenv("GPIOZERO_MOCK_PIN_CLASS", raising=False)
    pinsmod.forget_pin_factories()
    yield
    pinsmod.forget_pin_factories()


def test_auto_off_the_pi_is_mock_with_pwm(no_factory_cache, monkeypatch, tmp_path):
    model = tmp_path / "model"
    model.write_bytes(b"Generic x86 PC\x00")
    monkeypatch.setattr(pinsmod, "MODEL_FILES", (str(model),))
    f = resolve_pin_factory("auto")
    assert isinstance(f, MockFactory) and f.pin_class is MockPWMPin
    assert resolve_pin_factory("auto") is f  # shared
    group = make_outputs(OutputsParams(led_pin=17, meter_pin=18))  # uses params.pin_factory
    assert group.describe()[0] == "in-focus LED on GPIO17 (mock pin: not on a Raspberry Pi)"
    group.close()


def test_auto_on_a_pi_tries_real_factories_in_order(no_factory_cache, monkeypatch, tmp_path):
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    monkeypatch.setattr(pinsmod, "MODEL_FILES", (str(model),))
    tried = []

    def fake(name):
        tried.append(name)
        if name == "lgpio":
            raise ImportError("No module named 'lgpio'")
        return ("factory", name)

    monkeypatch.setattr(pinsmod, "_hardware_factory", fake)
    assert pinsmod.on_raspberry_pi()
    assert resolve_pin_factory("auto") == ("factory", "rpigpio")
    assert tried == ["lgpio", "rpigpio"]
    from gpiozero import Device
    assert Device.pin_factory == ("factory", "rpigpio")  # shared with gpiozero's default
    pinsmod._cache.clear()  # the fake factory cannot be closed


def test_existing_real_default_factory_is_shared(no_factory_cache, monkeypatch):
    from gpiozero import Device

    class LGPIOFactory:  # stands in for gpiozero.pins.lgpio.LGPIOFactory
        pass

    shared = LGPIOFactory()
    monkeypatch.setattr(Device, "pin_factory", shared)
    assert resolve_pin_factory("auto") is shared
    assert resolve_pin_factory("lgpio") is shared
    pinsmod._cache.clear()
    # a mock default (e.g. GPIOZERO_PIN_FACTORY=mock without PWM pins) is not reused
    monkeypatch.setattr(Device, "pin_factory", MockFactory(pin_class=MockPin))
    monkeypatch.setattr(pinsmod, "MODEL_FILES", ())
    f = resolve_pin_factory("auto")
    assert f is not Device.pin_factory and f.pin_class is MockPWMPin


def test_auto_on_a_pi_with_no_gpio_library_says_what_to_install(no_factory_cache, monkeypatch, tmp_path):
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    monkeypatch.setattr(pinsmod, "MODEL_FILES", (str(model),))

    def fake(name):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(pinsmod, "_hardware_factory", fake)
    with pytest.raises(OutputError, match="python3-lgpio"):
        resolve_pin_factory("auto")


def test_env_var_and_explicit_names(no_factory_cache, monkeypatch, tmp_path):
    monkeypatch.setattr(pinsmod, "MODEL_FILES", (str(tmp_path / "absent"),))
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    assert isinstance(resolve_pin_factory("auto"), MockFactory)
    with pytest.raises(OutputError, match="pin_factory = 'gpiod'"):
        resolve_pin_factory("gpiod")

    def fake(name):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(pinsmod, "_hardware_factory", fake)
    with pytest.raises(OutputError, match="'lgpio' cannot be used.*not a Raspberry Pi"):
        resolve_pin_factory("lgpio")


def test_import_needs_no_pi_library():
    code = ("import sys, pifocus.outputs, pifocus.outputs.pins; "
            "bad = [m for m in ('lgpio', 'RPi', 'RPi.GPIO', 'pigpio', 'gpiozero.pins.lgpio', "
            "'gpiozero.pins.rpigpio', 'gpiozero.pins.native') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- RGB LED: overexposed ---------------------------------------------------------------------
def _exposed(rep, clip_roi_pct):
    """``rep`` with exposure readouts whose ROI has ``clip_roi_pct`` % clipped highlights."""
    from dataclasses import replace

    from pifocus.focus.exposure import ExposureStats, FrameExposure
    stats = ExposureStats(mean_dn=120.0, ev_offset=0.0, clip_high_pct=clip_roi_pct / 2, clip_low_pct=0.0,
                          mean_dn_roi=200.0, ev_offset_roi=1.0, clip_high_pct_roi=clip_roi_pct,
                          clip_low_pct_roi=0.0, noise_sigma_dn=1.0, snr_db=40.0)
    return replace(rep, exposure=FrameExposure(stats=stats, histogram=np.zeros(64)))


def test_rgb_overexposed_blinks_magenta_then_shows_focus_again(factory):
    from pifocus.outputs.rgb import MAGENTA
    rgb = FocusRGB((22, 23, 24), overexposed_pct=5.0, overexposed_blink_s=0.02, pin_factory=factory)
    try:
        rgb.update(_exposed(report(in_focus=True, meter=1.0), 4.9))
        assert rgb_state(factory) == GREEN and not rgb.showing_overexposed  # at the limit: focus
        rgb.update(_exposed(report(in_focus=True, meter=1.0), 12.0))
        assert rgb.showing_overexposed and rgb.colour is None
        seen = set()
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            seen.add(rgb_state(factory))
            time.sleep(0.003)
        assert MAGENTA in seen and (0, 0, 0) in seen and GREEN not in seen  # a blink, distinct
        rgb.update(_exposed(report(meter=0.2), 1.0))
        assert not rgb.showing_overexposed and rgb_state(factory) == RED
        rgb.update(report(meter=0.2))  # no exposure readouts: no overexposed pattern
        assert rgb_state(factory) == RED
        rgb.update(_exposed(report(meter=0.2), 50.0))
        rgb.set_error(True)  # the error pattern wins
        assert not rgb.showing_overexposed
        rgb.set_error(False)
    finally:
        rgb.close()
    assert rgb_state(factory) == (0, 0, 0)


def test_rgb_overexposed_off_and_brightness(factory):
    rgb = FocusRGB((22, 23, 24), overexposed_pct=None, pin_factory=factory)
    rgb.update(_exposed(report(in_focus=True, meter=1.0), 90.0))
    assert rgb_state(factory) == GREEN and not rgb.showing_overexposed
    assert "magenta" not in rgb.details()
    rgb.close()
    dim = FocusRGB((22, 23, 24), overexposed_pct=1.0, brightness=0.5, overexposed_blink_s=0.05,
                   pin_factory=factory)
    dim.update(_exposed(report(), 2.0))
    assert wait_for(lambda: rgb_state(factory) == (0.5, 0.0, 0.5))
    assert "magenta blink above 1 % clipped" in dim.details()
    dim.close()


@pytest.mark.parametrize("value", [-1, 101, "lots", True, float("nan")])
def test_rgb_overexposed_pct_is_validated(value):
    from pifocus.outputs import OutputsParams
    with pytest.raises(ConfigError, match="rgb_overexposed_pct"):
        OutputsParams(rgb_pins=(22, 23, 24), rgb_overexposed_pct=value)
    assert OutputsParams(rgb_overexposed_pct=False).rgb_overexposed_pct is None
