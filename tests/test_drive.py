"""Focus drives: one contract, run against every implementation (sim, replay, stepper and
ULN2003 on gpiozero's mock pins, libcamera with a fake Picamera2), plus per-drive checks."""

import json
import os

import numpy as np
import pytest

from pifocus.drive import (DriveParams, FocusDrive, RingWatch, atomic_write_json, curve_offset,
                           open_drive, read_state, step_intervals)
from pifocus.exc import ConfigError, DriveError, LimitError

KINDS = ["sim", "replay", "stepper", "uln2003", "libcamera"]


class FakePicamera2:
    """What the libcamera drive uses of a Picamera2: camera_controls and set_controls."""

    def __init__(self, lo=0.0, hi=15.0, default=1.0):
        self.camera_controls = {"LensPosition": (lo, hi, default), "AfMode": (0, 2, 0)}
        self.controls = []

    def set_controls(self, c):
        self.controls.append(dict(c))


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A small recorded sweep: 11 frames at positions 0, 10, ... 100 (sweep.csv)."""
    import cv2
    from pifocus.sources.simulated import SimulatedSource

    d = tmp_path_factory.mktemp("sweep")
    src = SimulatedSource(width=160, height=120, focus_position=50, range_steps=100, blur_px_per_step=0.2)
    src.open()
    rows = ["file,position"]
    for i, pos in enumerate(range(0, 101, 10)):
        src.lens_position = pos
        cv2.imwrite(str(d / f"f{i:02d}.png"), src.read().luma)
        rows.append(f"f{i:02d}.png,{pos}")
    (d / "sweep.csv").write_text("\n".join(rows) + "\n")
    return d


@pytest.fixture
def make(tmp_path, sweep_dir, mock_factory):
    """make(kind, **params) -> a drive of that kind with a state file in tmp_path.

    Every drive gets limits so that 'far outside' requests exist: sim 0..1000 (limits
    100..900), replay 0..100 (10..90), stepper/uln2003 0..400 (50..350), libcamera 0..15 (1..12).
    """
    made = []

    def _make(kind, state="state.json", **kw):
        kw.setdefault("state_file", str(tmp_path / f"{kind}-{state}"))
        if kind == "sim":
            kw.setdefault("min_position", 100.0)
            kw.setdefault("max_position", 900.0)
            d = open_drive("sim", width=160, height=120, **kw)
        elif kind == "replay":
            kw.setdefault("min_position", 10.0)
            kw.setdefault("max_position", 90.0)
            d = open_drive(f"replay:{sweep_dir}", **kw)
        elif kind in ("stepper", "uln2003"):
            kw.setdefault("min_position", 50.0)
            kw.setdefault("max_position", 350.0)
            kw.setdefault("travel_steps", 400)
            kw.setdefault("speed", 50000.0)
            kw.setdefault("acceleration", 0.0)
            kw.setdefault("assume_position", 50.0)  # a step counter cannot know it: the test says
            d = open_drive(kind, pin_factory=mock_factory, **kw)
        elif kind == "libcamera":
            kw.setdefault("min_position", 1.0)
            kw.setdefault("max_position", 12.0)
            kw.setdefault("speed", 1e6)
            d = open_drive("libcamera", source=kw.pop("camera", None) or FakePicamera2(), **kw)
        else:
            raise AssertionError(kind)
        made.append(d)
        return d

    yield _make
    for d in made:
        d.close()


def _die(d):
    """The process is gone: the OS releases its pins; nothing is saved."""
    d._close_hw()
    d._opened = False
    d.state_path = None  # the fixture's teardown close() must not write for a dead process


def _far(d):
    lo, hi = d.limits
    return lo - 10 * (hi - lo), hi + 10 * (hi - lo)


# -- the contract ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_limits_never_exceeded(make, kind):
    d = make(kind, backlash=0.0)
    legs = []
    d.on_move = lambda drv, a, b: legs.append(b)
    lo, hi = d.limits
    with d:
        below, above = _far(d)
        assert d.move_to(above) == pytest.approx(hi)
        assert d.move_to(below) == pytest.approx(lo)
        d.move_by(1e9)
        assert d.position == pytest.approx(hi)
        for bad in (float("nan"), float("inf")):
            with pytest.raises(LimitError, match="not a number"):
                d.move_to(bad)
    assert legs and all(lo - 1e-9 <= x <= hi + 1e-9 for x in legs)


@pytest.mark.parametrize("kind", KINDS)
def test_limit_error_mode_refuses_and_stays(make, kind):
    d = make(kind, on_limit="error")
    lo, hi = d.limits
    with d:
        mid = d.clamp((lo + hi) / 2)
        d.move_to(mid)
        with pytest.raises(LimitError, match="outside the soft limits"):
            d.move_to(_far(d)[1])
        assert d.position == pytest.approx(mid)


@pytest.mark.parametrize("kind", KINDS)
def test_backlash_overshoot_stays_inside_limits(make, kind):
    lo_hi = {"sim": 50.0, "replay": 20.0, "stepper": 30.0, "uln2003": 30.0, "libcamera": 3.0}
    d = make(kind, backlash=lo_hi[kind])
    legs = []
    d.on_move = lambda drv, a, b: legs.append(b)
    lo, hi = d.limits
    with d:
        d.move_to(hi)
        d.move_to(lo)            # would overshoot below lo: clamped
        d.move_to(d.clamp(lo + (hi - lo) * 0.1))
    assert all(lo - 1e-9 <= x <= hi + 1e-9 for x in legs)


@pytest.mark.parametrize("kind", KINDS)
def test_final_approach_always_from_the_same_side(make, kind):
    bl = {"sim": 20.0, "replay": 10.0, "stepper": 10.0, "uln2003": 10.0, "libcamera": 0.5}[kind]
    for approach, sign in (("up", 1), ("down", -1)):
        d = make(kind, state=f"{approach}.json", backlash=bl, approach=approach)
        legs = []
        d.on_move = lambda drv, a, b: legs.append((a, b))
        lo, hi = d.limits
        targets = [d.clamp(lo + f * (hi - lo)) for f in (0.5, 0.3, 0.7, 0.4, 0.6, 0.5)]
        with d:
            d.move_to(targets[0])
            for t in targets[1:]:
                legs.clear()
                d.move_to(t)
                assert d.position == pytest.approx(t)
                a, b = legs[-1]
                assert (b - a) * sign > 0, f"{kind}: last leg {a}->{b} not from the {approach} side"
        d.close()


@pytest.mark.parametrize("kind", KINDS)
def test_position_persisted_and_restored(make, kind):
    d = make(kind)
    lo, hi = d.limits
    target = d.clamp(lo + 0.37 * (hi - lo))
    with d:
        d.move_to(target)
    st = json.loads(open(d.state_path).read())
    assert st["position"] == pytest.approx(target) and st["moving"] is False
    d2 = make(kind)  # same state file: a new process
    with d2:
        assert d2.position == pytest.approx(target)
        assert not d2.position_uncertain


@pytest.mark.parametrize("kind", KINDS)
def test_kill_between_moves_restores_last_position(make, kind):
    d = make(kind)
    lo, hi = d.limits
    a, b = d.clamp(lo + 0.2 * (hi - lo)), d.clamp(lo + 0.6 * (hi - lo))
    d.open()
    d.move_to(a)
    d.move_to(b)

    class Killed(Exception):
        pass

    def die(*_):
        raise Killed()
    d.on_move = die
    with pytest.raises(Killed):
        d.move_to(a)           # dies before the move: nothing written, nothing moved
    _die(d)
    d2 = make(kind)            # no close() of d: the process is gone
    with d2:
        assert d2.position == pytest.approx(b)
        assert not d2.position_uncertain


@pytest.mark.parametrize("kind", KINDS)
def test_kill_during_move_marks_position_uncertain(make, kind):
    d = make(kind)
    lo, hi = d.limits
    d.open()
    d.move_to(d.clamp(lo + 0.2 * (hi - lo)))

    class Killed(Exception):
        pass

    def die(*_):
        raise Killed()
    d.on_moving = die
    with pytest.raises(Killed):
        d.move_to(d.clamp(lo + 0.8 * (hi - lo)))
    assert json.loads(open(d.state_path).read())["moving"] is True
    _die(d)
    d2 = make(kind)
    with d2:
        assert d2.position_uncertain


@pytest.mark.parametrize("kind", KINDS)
def test_atomic_state_write_survives_a_kill_mid_write(make, kind, monkeypatch):
    d = make(kind)
    lo, hi = d.limits
    first = d.clamp(lo + 0.25 * (hi - lo))
    with d:
        d.move_to(first)
    before = open(d.state_path).read()

    def killed(*a, **k):
        raise KeyboardInterrupt("killed before the rename")
    monkeypatch.setattr(os, "replace", killed)
    d2 = make(kind)
    d2.open()
    with pytest.raises(KeyboardInterrupt):
        d2.move_to(d2.clamp(lo + 0.75 * (hi - lo)))
    monkeypatch.undo()
    assert open(d.state_path).read() == before      # old file whole, never torn
    assert json.loads(before)["position"] == pytest.approx(first)
    leftovers = [n for n in os.listdir(os.path.dirname(d.state_path)) if n.startswith(".tmp-")]
    assert leftovers == []


@pytest.mark.parametrize("kind", KINDS)
def test_close_is_idempotent_and_context_manager(make, kind):
    d = make(kind)
    with d as same:
        assert same is d and not d.closed
    assert d.closed
    d.close()
    d.close()


def test_close_deenergizes_stepper(make, mock_factory):
    d = make("stepper", enable_pin="GPIO16", enable_active_low=True)
    levels = {}
    release = d._close_hw

    def snapshot():  # the levels the driver sees just before the pins are released
        levels.update({n: mock_factory.pin(n).state for n in (16, 20, 21)})
        release()
    d._close_hw = snapshot
    with d:
        d.move_to(200)
        assert d.energized and mock_factory.pin(16).state == 0   # EN active low: enabled
    assert levels == {16: 1, 20: 0, 21: 0}                          # disabled, STEP/DIR low
    assert not d.energized


def test_close_deenergizes_uln2003_all_coils(make, mock_factory):
    d = make("uln2003")
    with d:
        d.move_to(123)
        assert d.energized
    for n in (6, 13, 19, 26):
        assert mock_factory.pin(n).state in (0, False)
        # The last level driven before release was low.
        driven = [s.state for s in mock_factory.pin(n).states]
        assert driven[-1] in (0, False)


def test_uln2003_hold_false_deenergizes_after_each_move(make):
    d = make("uln2003", hold=False)
    with d:
        d.move_to(150)
        assert not d.energized


# -- stepper / ULN2003 specifics -------------------------------------------------------

def test_stepper_pulse_count_direction_and_microstep_pins(make, mock_factory):
    d = make("stepper", driver="drv8825", microsteps=32, ms_pins=("GPIO5", "GPIO6", "GPIO13"),
             min_position=0.0, max_position=400.0)
    with d:
        d.move_to(0)
        mock_factory.pin(20).clear_states()
        d.move_to(137)
        rises = sum(1 for a, b in zip(mock_factory.pin(20).states, mock_factory.pin(20).states[1:])
                    if not a.state and b.state)
        assert rises == 137 and d.pulses >= 137
        assert mock_factory.pin(21).state == 1          # DIR high = up
        # DRV8825 1/32: M0=1, M1=0, M2=1
        assert [mock_factory.pin(n).state for n in (5, 6, 13)] == [1, 0, 1]
        d.move_to(100)
        assert mock_factory.pin(21).state == 0


def test_stepper_pin_in_use_is_a_clear_error(make, mock_factory):
    from gpiozero import LED
    led = LED("GPIO20", pin_factory=mock_factory)
    d = make("stepper")
    with pytest.raises(DriveError, match=r"step_pin GPIO20 is already in use"):
        d.open()
    led.close()


def test_stepper_rejects_microsteps_the_driver_lacks():
    with pytest.raises(ConfigError, match="microsteps"):
        DriveParams(name="stepper", driver="a4988", microsteps=32)


def test_step_intervals_ramp():
    iv = step_intervals(400, max_rate=1000, accel=5000)
    rate = 1 / iv
    assert len(iv) == 400 and rate.max() <= 1000 + 1e-9
    assert np.all(np.diff(rate[:50]) >= -1e-9) and np.all(np.diff(rate[-50:]) <= 1e-9)
    assert np.allclose(rate, rate[::-1])
    assert np.allclose(step_intervals(10, 500, 0), 1 / 500)


def test_uln2003_phase_sequence_half_step(make, mock_factory):
    d = make("uln2003", half_step=True, min_position=0.0)
    with d:
        d.move_to(0)
        seen = []
        for x in range(1, 9):
            d.move_to(x)
            seen.append(tuple(int(mock_factory.pin(n).state) for n in (6, 13, 19, 26)))
        assert len(set(seen)) == 8 and all(1 <= sum(s) <= 2 for s in seen)


def test_homing_with_limit_switch(make, mock_factory):
    d = make("stepper", homing="switch", limit_pin="GPIO5", min_position=0.0)
    switch = mock_factory.pin(5)
    switch.drive_high()  # not made (pull-up, active low)
    with d:
        d.move_to(200)
        steps = []
        orig = d._raw_step

        def raw(direction, n):
            steps.append(direction * n)
            orig(direction, n)
            if len(steps) == 30:
                switch.drive_low()   # the switch closes after 30 steps down
        d._raw_step = raw
        d.home()
        assert d.position == 0 and len(steps) == 30 and all(s < 0 for s in steps)


def test_homing_switch_never_triggers_is_an_error(make, mock_factory):
    d = make("stepper", homing="switch", limit_pin="GPIO5", home_travel=20)
    mock_factory.pin(5).drive_high()
    with d:
        with pytest.raises(DriveError, match="never triggered"):
            d.home()


def test_sim_homing_finds_missed_step_drift(tmp_path):
    d = open_drive("sim", width=160, height=120, missed_step_rate=1.0, missed_step_max=3, homing="switch")
    with d:
        for t in (600, 200, 800, 300, 700, 400):
            d.move_to(t)
        lost = abs(d.position - d.ring.motor)
        assert lost > 0
        drift = d.home()
        assert abs(drift) == pytest.approx(lost, abs=0.01)
        assert d.position == pytest.approx(d.ring.motor, abs=3)


# -- factory / bad input ---------------------------------------------------------------

def test_unknown_drive_string():
    with pytest.raises(ConfigError, match="unknown drive 'zoom'.*sim, replay:DIR, stepper, uln2003"):
        open_drive("zoom")


def test_replay_folder_without_frames(tmp_path):
    with pytest.raises(DriveError, match="holds no images"):
        open_drive(f"replay:{tmp_path}")
    with pytest.raises(DriveError, match="no such folder"):
        open_drive(f"replay:{tmp_path / 'nope'}")
    with pytest.raises(ConfigError, match="give the recorded sweep folder"):
        open_drive("replay:")


def test_replay_folder_without_usable_positions(tmp_path):
    import cv2
    for n in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / n), np.zeros((32, 32), np.uint8))
    (tmp_path / "sweep.csv").write_text("file,position\na.png,5\nb.png,5\n")
    with pytest.raises(DriveError, match="distinct position"):
        open_drive(f"replay:{tmp_path}")


def test_replay_shows_the_nearest_recorded_frame(make):
    d = make("replay")
    with d:
        d.move_to(43)
        f = d.source.read()
        assert f.lens_position == 40.0 and d.source.read().lens_position == 40.0  # held
        d.move_to(47)
        assert d.source.read().lens_position == 50.0


def test_sweep_range_outside_limits(make):
    d = make("sim")
    with pytest.raises(LimitError, match="outside the soft limits 100..900"):
        d.check_range(0, 500, "sweep")
    d.check_range(100, 900, "sweep")


def test_libcamera_range_from_camera_controls(make):
    cam = FakePicamera2(lo=0.0, hi=10.0, default=2.0)
    d = make("libcamera", camera=cam, min_position=None, max_position=None, state_file="none")
    with d:
        assert d.limits == (0.0, 10.0) and d.position == 2.0
        d.move_to(99)
        assert cam.controls[0] == {"AfMode": 0} and cam.controls[-1] == {"LensPosition": 10.0}


def test_libcamera_without_lens_control():
    cam = FakePicamera2()
    del cam.camera_controls["LensPosition"]
    with pytest.raises(DriveError, match="no LensPosition control"):
        open_drive("libcamera", source=cam).open()
    with pytest.raises(DriveError, match="needs the camera"):
        open_drive("libcamera")


def test_drive_params_validation_and_config():
    from pifocus import config
    with pytest.raises(ConfigError, match="drive.approach"):
        DriveParams(approach="sideways")
    with pytest.raises(ConfigError, match="drive.homing"):
        DriveParams(homing="magic")
    cfg = config.from_dict({"drive": {"name": "stepper", "backlash": 12, "ms_pins": ["GPIO5", "GPIO6"]}})
    assert cfg.drive.backlash == 12.0 and cfg.drive.ms_pins == ("GPIO5", "GPIO6")
    with pytest.raises(ConfigError, match="did you mean 'backlash'"):
        config.from_dict({"drive": {"backlsh": 3}})


def test_atomic_write_and_read_state(tmp_path):
    p = tmp_path / "s.json"
    atomic_write_json(str(p), {"position": 12.5})
    assert read_state(str(p))["position"] == 12.5
    p.write_text("{torn")
    assert read_state(str(p)) is None


def test_manual_ring_turn_detected():
    from pifocus.autofocus import AutofocusParams, autofocus
    from pifocus.focus import AnalysisParams, FocusAnalyzer

    an = FocusAnalyzer(AnalysisParams(use_cnn=False))
    with open_drive("sim", width=320, height=240, focus_position=500, blur_px_per_step=0.04) as d:
        r = autofocus(d, an, AutofocusParams(strategy="sweep"))
        assert r.success
        watch = RingWatch(drop=0.5, frames=3, tolerance=10)
        watch.reset(r.curve, r.final_position)
        from pifocus.autofocus import _Run
        run = _Run(d, d.source, an, AutofocusParams())
        # Still focused: no alarm.
        assert not any(watch.update(run.here().score) for _ in range(5))
        d.ring.manual_turn(80)  # somebody turns the ring by hand
        fired = [watch.update(run.here().score) for _ in range(3)]
        assert fired[-1]
        probe = [[s.position, s.score] for s in
                 (run.measure(x, reuse=False) for x in np.arange(r.final_position - 150, r.final_position + 151, 25))]
        res = watch.locate(probe)
        assert res["manual_turn"] and res["offset"] == pytest.approx(-80, abs=15)


def test_curve_offset_recovers_a_shift():
    xs = np.arange(0, 200, 5.0)
    ref = [[x, np.exp(-((x - 100) / 20) ** 2) + 0.01] for x in xs]
    probe = [[x, np.exp(-((x - 130) / 20) ** 2) + 0.01] for x in xs[5:-5]]
    off, rms = curve_offset(ref, probe, max_shift=60, steps=121)
    assert off == pytest.approx(30, abs=1.5) and rms < 0.1


def test_base_class_is_abstract():
    d = FocusDrive(DriveParams(state_file="none"), (0, 10))
    d.open()
    with pytest.raises(NotImplementedError):
        d.move_to(5)


def test_endstop_homing_uln2003(make, mock_factory):
    d = make("uln2003", homing="endstop", home_travel=60, min_position=0.0, speed=50000.0)
    raw = []
    with d:
        d.move_to(200)
        orig = d._raw_step
        d._raw_step = lambda direction, n: (raw.append((direction, n)), orig(direction, n))
        d.home()
        assert raw == [(-1, 60)] and d.position == 0.0 and not d.position_uncertain


class FakeLgpio:
    """Just enough of lgpio to check the step trains the stepper queues on a Pi."""

    TX_PWM = 0

    def __init__(self):
        self.pulses = []      # (gpio, on_us, off_us, count)
        self.writes = []
        self.claimed = {}

    def gpiochip_open(self, chip):
        return 7

    def gpiochip_close(self, h):
        pass

    def gpio_claim_output(self, h, gpio, level=0):
        if gpio in self.claimed:
            raise RuntimeError("GPIO busy")
        self.claimed[gpio] = level

    def gpio_free(self, h, gpio):
        self.claimed.pop(gpio, None)

    def gpio_write(self, h, gpio, level):
        self.writes.append((gpio, level))

    def tx_room(self, h, gpio, kind):
        return 10

    def tx_busy(self, h, gpio, kind):
        return 0

    def tx_pulse(self, h, gpio, on_us, off_us, offset=0, cycles=0):
        self.pulses.append((gpio, on_us, off_us, cycles))
        return 0


def test_stepper_lgpio_step_trains_are_exact(monkeypatch, tmp_path):
    import sys
    fake = FakeLgpio()
    monkeypatch.setitem(sys.modules, "lgpio", fake)
    d = open_drive("stepper", backend="lgpio", state_file=str(tmp_path / "s.json"), speed=2000.0, assume_position=0.0,
                   acceleration=20000.0, travel_steps=4000)
    with d:
        d.move_to(1000)
        assert d.backend_used == "lgpio"
        assert sum(c for g, on, off, c in fake.pulses) == 1000 and all(g == 20 for g, *_ in fake.pulses)
        periods = [on + off for g, on, off, c in fake.pulses]
        assert min(periods) >= 500 - 10          # never faster than the 2000 steps/s top speed
        assert periods[0] > periods[len(periods) // 2] < periods[-1]  # ramp up, cruise, ramp down
        assert (21, 1) in fake.writes             # DIR up
    assert fake.writes[-3:] and (16, 1) in fake.writes[-3:]  # EN high (disabled) on close
    assert fake.claimed == {}                     # pins freed


def test_replay_positions_snap_to_recorded_ones(tmp_path):
    import cv2
    pos = [0.5, 1.25, 2.0, 3.4, 5.0, 7.5]          # a libcamera sweep in dioptres, uneven steps
    rows = ["file,position"]
    for i, p in enumerate(pos):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((32, 32), 20 * i, np.uint8))
        rows.append(f"{i}.png,{p}")
    (tmp_path / "sweep.csv").write_text("\n".join(rows) + "\n")
    with open_drive(f"replay:{tmp_path}", on_limit="error") as d:
        assert d.limits == (0.5, 7.5) and d.resolution == pytest.approx(0.75) and not d.integer_positions
        assert d.move_to(3.1) == 3.4 and d.source.read().lens_position == 3.4
        assert d.move_to(6.0) == 5.0
        with pytest.raises(LimitError):
            d.move_to(8.0)


def test_default_drive_pins_clear_of_default_outputs():
    from pifocus.outputs import OutputsParams
    o = OutputsParams()
    used = {f"GPIO{o.led_pin}"} | {"GPIO18", "GPIO27"}   # LED default; meter/buzzer as documented
    p = DriveParams()
    drive_pins = {p.step_pin, p.dir_pin, p.enable_pin, *p.coil_pins}
    assert not used & drive_pins
    assert len({p.step_pin, p.dir_pin, p.enable_pin} | set(p.coil_pins)) == 7
