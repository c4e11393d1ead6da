"""Adapters against fakes that behave like the real libraries (issue 10, "hardware truth").

Each fake behaviour used here cites the real source it follows (in the fake's comments):
picamera2 (``picamera2/picamera2.py``, ``allocators/dmaallocator.py``, ``request.py``),
libcamera (``src/ipa/rpi/controller/rpi/af.cpp``, the imx708 tuning), gpiozero
(``gpiozero/pins/lgpio.py``, ``gpiozero/pins/pi.py``) and lgpio (``lgpio.py``, ``lgTx.c``).
"""

import numpy as np
import pytest

from pifocus.pipeline import Pipeline
from pifocus.sources.picamera2 import Picamera2Source

from test_sources_picamera2 import _fake


@pytest.fixture
def fake(monkeypatch):
    """The fake picamera2 module, installed in sys.modules for this test."""
    return _fake().install(monkeypatch)


def _until(cond, timeout=10.0):
    """Poll ``cond()`` until true (frames flow in another thread); False on timeout."""
    import time
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


class _Analyzer:
    mode = "test"

    def analyze(self, frame):
        return object()

    def close(self):
        pass


# -- 1. picamera2 closes its buffers on close() ------------------------------------------

def test_fake_close_leaks_buffers_while_a_view_lives(fake):
    """The fake does what DmaAllocator.close() does: a live view -> BufferError -> leak."""
    src = Picamera2Source(width=64, height=64, zero_copy=False)
    src.open()
    cam = src.camera
    req = cam.capture_request()
    view = req.buf
    req.release()
    src.close()
    assert cam.leaked_buffers > 0
    del view


def test_frame_kept_across_close_does_not_leak_the_camera_buffers(fake):
    src = Picamera2Source(width=64, height=64)
    src.open()
    cam = src.camera
    frame = src.read()
    before = frame.luma.copy()
    src.close()                          # the caller still holds frame (Pipeline.last_frame)
    assert cam.leaked_buffers == 0 and cam.allocator.fds_open == 0
    assert np.array_equal(frame.luma, before)  # still readable: now a copy


def test_pipeline_reconnect_and_close_free_every_buffer(fake):
    fake.Picamera2.fail_capture_after = 3
    src = Picamera2Source(width=64, height=64)
    p = Pipeline(src, _Analyzer())
    p.reconnect = type(p.reconnect)(initial_s=0.01, max_s=0.02)
    src.open()
    real_open = src._open

    def reopen():                        # the camera comes back healthy
        fake.Picamera2.fail_capture_after = None
        real_open()
    src._open = reopen
    assert p.run(max_frames=6) == 6 and p.reconnects == 1
    assert p.last_frame is not None
    p.close()
    cams = fake.Picamera2.instances
    assert len(cams) == 2 and all(c.closed for c in cams)
    assert [c.leaked_buffers for c in cams] == [0, 0]


# -- 2. LensPosition takes effect several frames late --------------------------------------

def _cm3(fake, focus_at=None):
    fake.Picamera2.lens = True
    fake.Picamera2.focus_at = focus_at
    from pifocus.drive import open_drive
    src = Picamera2Source(width=160, height=120, buffer_count=4)
    src.open()
    return src, open_drive("libcamera", source=src, state_file="none")


def test_af_scores_only_frames_exposed_at_the_sample_position(fake):
    from pifocus.autofocus import AutofocusParams
    from pifocus.autofocus.run import _Run
    from pifocus.focus import AnalysisParams, FocusAnalyzer

    src, drive = _cm3(fake)
    with src, drive:
        cam = src.camera
        run = _Run(drive, src, FocusAnalyzer(AnalysisParams(use_cnn=False)), AutofocusParams(),
                   max_frames=300)
        for x in (9.0, 3.0, 3.5, 12.0, 0.5):     # big jumps slew over several frames
            s = run.measure(x, reuse=False)
            assert s.position == pytest.approx(x)
            assert cam.exposed[s.frame_index] == pytest.approx(x), cam.exposed
        assert run.frames == cam.captures        # every frame waited for is charged to AF


def test_libcamera_wait_is_bounded_when_the_lens_never_arrives(fake):
    from pifocus.exc import DriveError
    src, drive = _cm3(fake)
    with src, drive:
        src.camera.max_slew = 0.0                  # a lens that never moves
        drive.move_to(6.0)
        with pytest.raises(DriveError, match="LensPosition"):
            drive.wait_settled(src.read)


def test_libcamera_autofocus_finds_the_peak_on_a_pipelined_camera(fake):
    from pifocus.autofocus import AutofocusParams, autofocus
    from pifocus.focus import AnalysisParams, FocusAnalyzer

    src, drive = _cm3(fake, focus_at=7.3)
    with src, drive:
        r = autofocus(drive, FocusAnalyzer(AnalysisParams(use_cnn=False)), AutofocusParams(),
                      source=src, start=1.0)
        assert r.success, r.reason
        assert abs(r.final_position - 7.3) < 0.75
        assert r.frames_used == src.camera.captures


# -- 3. a camera reopen resets the lens ----------------------------------------------------

def _drain(src, n=8):
    return [src.read().lens_position for _ in range(n)]


def test_fake_reopened_camera_starts_at_the_tuning_default(fake):
    fake.Picamera2.lens = True
    src = Picamera2Source(width=64, height=64)
    with src:
        src.set_controls({"LensPosition": 6.0})
        assert _drain(src)[-1] == 6.0
    with src:
        assert src.read().lens_position == 1.0    # af.cpp ranges.normal.default


def test_drive_position_is_resent_after_a_camera_reconnect(fake):
    src, drive = _cm3(fake)
    with drive:
        drive.move_to(6.0)
        drive.wait_settled(src.read)
        fake.Picamera2.fail_capture_after = src.camera.captures + 2
        p = Pipeline(src, _Analyzer())
        p.reconnect = type(p.reconnect)(initial_s=0.01, max_s=0.02)
        real_open = src._open

        def reopen():
            fake.Picamera2.fail_capture_after = None
            real_open()
        src._open = reopen
        assert p.run(max_frames=12) == 12 and p.reconnects == 1
        new = src.camera
        assert new is not fake.Picamera2.instances[0]
        assert new.af_mode == 0 and new.ftarget == 6.0 and new.fsmooth == 6.0
        assert drive.position == 6.0 and p.last_frame.lens_position == 6.0
    p.close()


PICAM_TOML = """\
[source]
name = "picamera2"
width = {w}
height = 120

[analysis]
use_cnn = false

[drive]
name = "libcamera"
state_file = "none"
"""


def test_reload_with_a_new_source_rebinds_the_libcamera_drive(fake, tmp_path, monkeypatch):
    import time
    from pifocus import config as cfgmod
    from pifocus.service import Service
    from pifocus.service.sdnotify import SdNotifier

    fake.Picamera2.lens = True
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "pifocus.toml"
    path.write_text(PICAM_TOML.format(w=160))
    svc = Service(cfgmod.load(path), notifier=SdNotifier(""), web_enabled=False, outputs_enabled=False)
    svc.start()
    try:
        assert svc.wait_ready(20) and svc.drive is not None, svc.drive_error
        svc.nudge(5)                                   # 1.0 -> 6.0 D
        old = svc.source.inner
        path.write_text(PICAM_TOML.format(w=192))
        assert svc.reload()
        new = svc.source.inner
        assert new is not old and new.camera is not None and old.camera is None
        assert svc.drive.source is new
        cam = new.camera
        assert _until(lambda: cam.ftarget == 6.0) and cam.af_mode == 0  # the lens went back
        svc.nudge(-2)                                   # drives the new camera
        assert _until(lambda: cam.ftarget == 4.0)
    finally:
        svc.shutdown()


# -- 4. Pi 5 GPIO chip ------------------------------------------------------------------------

import fake_lgpio  # noqa: E402  (tests/ is on sys.path)


def _stepper(tmp_path, **kw):
    from pifocus.drive import open_drive
    kw.setdefault("speed", 2000.0)
    kw.setdefault("acceleration", 0.0)
    kw.setdefault("assume_position", 0.0)   # a fresh state file: the position is known to be 0
    return open_drive("stepper", backend="lgpio", state_file=str(tmp_path / "s.json"),
                      travel_steps=4000, **kw)


@pytest.mark.parametrize("board, chip", [("pi5-old-kernel", 4), ("pi5", 0), ("pi4", 0)])
def test_stepper_claims_the_header_pins_on_the_gpio_chip_by_label(monkeypatch, tmp_path, board, chip):
    lg = fake_lgpio.install(monkeypatch, board=board, start_latency_s=0.0)
    monkeypatch.setattr("os.path.exists", fake_lgpio.dev_exists_for(board))
    with _stepper(tmp_path) as d:
        d.move_to(10)
        assert {c for c, _ in lg.claimed} == {chip}      # STEP, DIR, EN all on the header chip
        assert d.gpiochip_used == chip


def test_stepper_chip_without_chip_info_follows_gpiozero(monkeypatch, tmp_path):
    """An lgpio without gpio_get_chip_info: chip 4 when /dev/gpiochip4 exists (Pi 5)."""
    lg = fake_lgpio.install(monkeypatch, board="pi5-old-kernel", start_latency_s=0.0)
    del lg.gpio_get_chip_info
    monkeypatch.setattr("os.path.exists", fake_lgpio.dev_exists_for("pi5-old-kernel"))
    with _stepper(tmp_path) as d:
        assert d.gpiochip_used == 4


# -- 5. a pin held by another process ------------------------------------------------------

def test_stepper_pin_busy_in_another_process_is_a_drive_error(monkeypatch, tmp_path):
    from pifocus.exc import DriveError
    fake_lgpio.install(monkeypatch, board="pi4", busy={(0, 21)})
    monkeypatch.setattr("os.path.exists", fake_lgpio.dev_exists_for("pi4"))
    with pytest.raises(DriveError) as e:
        _stepper(tmp_path).open()
    msg = str(e.value)
    assert "dir_pin" in msg and "GPIO21" in msg and "another program" in msg and "gpioinfo" in msg


def test_gpiozero_device_on_a_busy_lgpio_line_is_a_drive_error():
    """gpiozero's LGPIOPin.__init__ calls lgpio.gpio_claim_input: a busy line raises
    lgpio.error('GPIO busy') straight through gpiozero (gpiozero/pins/lgpio.py)."""
    from pifocus.drive._gpio import _make
    from pifocus.exc import DriveError

    def busy_device(pin, pin_factory=None, **kw):
        raise fake_lgpio.error("GPIO busy")
    with pytest.raises(DriveError, match="GPIO20.*in use by another program"):
        _make(busy_device, "GPIO20", "step_pin", "uln2003", None)


def test_output_on_a_busy_lgpio_line_is_an_output_error():
    from pifocus.exc import OutputError
    from pifocus.outputs.base import open_device

    def busy():
        raise fake_lgpio.error("GPIO busy")
    with pytest.raises(OutputError, match="GPIO17.*in use by another program.*led_pin"):
        open_device("in-focus LED", "led_pin", [17], busy)


def test_service_runs_without_a_drive_whose_pin_is_busy(monkeypatch, tmp_path):
    from pifocus import config as cfgmod
    from pifocus.service import Service
    from pifocus.service.sdnotify import SdNotifier

    import gpiozero

    def lgpio_pin_busy(pin, **kw):  # LGPIOFactory: LGPIOPin.__init__ -> gpio_claim_input
        raise fake_lgpio.error("GPIO busy")
    monkeypatch.setattr(gpiozero, "OutputDevice", lgpio_pin_busy)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "pifocus.toml"
    path.write_text('[source]\nname = "sim"\nwidth = 160\nheight = 120\n\n[analysis]\nuse_cnn = false\n\n'
                    f'[drive]\nname = "uln2003"\nstate_file = "{tmp_path / "s.json"}"\n')
    svc = Service(cfgmod.load(path), notifier=SdNotifier(""), web_enabled=False, outputs_enabled=False)
    svc.start()
    try:
        assert svc.wait_ready(20)
        assert svc.drive is None and "in use by another program" in svc.drive_error
    finally:
        svc.shutdown()


# -- 6. lgpio's pulse queue: 10 entries, a user-space thread ---------------------------------

def _sim_stepper(monkeypatch, tmp_path, **kw):
    import pifocus.drive.stepper as stepper_mod
    clock = fake_lgpio.SimClock()
    lg = fake_lgpio.install(monkeypatch, board="pi4", clock=clock.now)
    monkeypatch.setattr("os.path.exists", fake_lgpio.dev_exists_for("pi4"))
    monkeypatch.setattr(stepper_mod, "time", clock)
    return lg, clock, _stepper(tmp_path, **kw)


def test_lgpio_move_entries_buffer_the_queue_and_count_exactly(monkeypatch, tmp_path):
    lg, clock, d = _sim_stepper(monkeypatch, tmp_path, speed=2000.0, acceleration=20000.0)
    with d:
        t0 = clock.t
        d.move_to(1500)
        entries = [p for p in lg.pulses if p[0] == 20]
        assert sum(p[3] for p in entries) == 1500
        assert fake_lgpio.steps_done(lg, 20, 21, clock.t) == 1500   # every pulse went out
        durations = [p[3] * (p[1] + p[2]) * 1e-6 for p in entries]
        assert min(durations[:-1]) >= 0.0049    # 10 queued entries hold >= 50 ms of pulses
        assert len([c for c in lg.cold_starts if c[1] >= t0]) == 1  # the queue never ran dry
        periods = [p[1] + p[2] for p in entries]
        assert min(periods) >= 500 - 10 and periods[0] > min(periods) < periods[-1]  # the ramp


def test_switch_homing_on_lgpio_moves_in_trains(monkeypatch, tmp_path):
    lg, clock, d = _sim_stepper(monkeypatch, tmp_path, homing="switch", limit_pin="GPIO5",
                                home_side="min", home_speed=400.0, min_position=0.0)
    switch_at = -737                     # shaft steps from where the drive opened
    with d:
        d._switch_active = lambda: fake_lgpio.steps_done(lg, 20, 21, clock.t) <= switch_at
        t0, calls0 = clock.t, lg.calls["tx_pulse"]
        d.home()
        assert d.position == 0.0 and not d.position_uncertain
        homing_calls = lg.calls["tx_pulse"] - calls0
        assert homing_calls < 80                  # trains, not one call per step (~740)
        assert clock.t - t0 < 5.0                 # ~2 s at 400 steps/s, not 740 x 20 ms starts
        # the reference is exact: the shaft stands where the switch closed (then moved to 0)
        assert fake_lgpio.steps_done(lg, 20, 21, clock.t) == switch_at


# -- 7. homing before READY=1 counts against TimeoutStartSec ---------------------------------

def test_homing_at_start_extends_the_start_timeout(monkeypatch, tmp_path):
    import time
    from pifocus import config as cfgmod
    from pifocus.service import Service, parts, sdnotify

    class Recorder(sdnotify.SdNotifier):
        def __init__(self):
            super().__init__("", watchdog_usec=0)
            self.log = []

        @property
        def enabled(self):
            return True

        def notify(self, *fields):
            self.log.append((time.monotonic(), fields))
            return True

    real_open = parts.open_drive

    def slow_homing(cfg, source):       # homing a long lead screw: the drive opens slowly
        time.sleep(0.5)
        return real_open(cfg, source)
    monkeypatch.setattr(parts, "open_drive", slow_homing)
    monkeypatch.setattr(sdnotify, "EXTEND_STEP_S", 0.1, raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "pifocus.toml"
    path.write_text('[source]\nname = "sim"\nwidth = 160\nheight = 120\n\n[analysis]\nuse_cnn = false\n\n'
                    f'[drive]\nname = "sim"\nstate_file = "{tmp_path / "s.json"}"\n')
    n = Recorder()
    svc = Service(cfgmod.load(path), notifier=n, web_enabled=False, outputs_enabled=False)
    svc.start()
    try:
        assert svc.wait_ready(20)
        time.sleep(0.1)
        ext = [t for t, f in n.log if any(x.startswith("EXTEND_TIMEOUT_USEC=") for x in f)]
        ready = [t for t, f in n.log if "READY=1" in f]
        assert len(ext) >= 3 and ready and max(ext) < ready[0]   # kept alive while homing
        usec = [int(x.split("=")[1]) for _, f in n.log for x in f if x.startswith("EXTEND_TIMEOUT_USEC=")]
        assert all(u >= 2 * 0.1 * 1e6 for u in usec)           # always ahead of the next one
    finally:
        svc.shutdown()


# -- 8. ScalerCropMaximum is zero until the camera is configured -----------------------------

def test_scaler_crop_uses_the_crop_maximum_of_the_configured_camera(fake):
    fake.Picamera2.raw_modes = False          # no raw modes listed: no crop_limits to go by
    with Picamera2Source(width=1014, height=540, scaler_crop=(0.25, 0.25, 0.5, 0.5)) as src:
        cam = src.camera
        scm = cam.camera_properties["ScalerCropMaximum"]
        assert scm == (0, 440, 4056, 2160)
        crop = cam.controls_set["ScalerCrop"]
        assert crop == (1014, 440 + 540, 2028, 1080) == src.scaler_crop
        src.read()


def test_full_field_ignores_an_unconfigured_crop_maximum():
    from pifocus.sources.picamera2_config import full_field
    assert full_field({"ScalerCropMaximum": (0, 0, 0, 0), "PixelArraySize": (4056, 3040)}) == (0, 0, 4056, 3040)


# -- 9. picamera2's video configuration denoises; a raw stream nobody reads ------------------

def test_focus_stream_has_denoising_off_and_no_raw_stream(fake):
    with Picamera2Source(width=640, height=480) as src:
        cfg = src.camera.camera_config
        assert cfg["controls"]["NoiseReductionMode"] == 0      # not picamera2's Fast
        assert cfg["raw"] is None                              # no raw buffers allocated


def test_noise_reduction_is_configurable_in_the_source_table(fake, tmp_path):
    from pifocus import config as cfgmod
    from pifocus.commands._common import make_source
    from pifocus.exc import ConfigError
    path = tmp_path / "p.toml"
    path.write_text('[source]\nname = "picamera2"\nnoise_reduction = "fast"\n')
    src = make_source(cfgmod.load(path))
    with src:
        assert src.camera.camera_config["controls"]["NoiseReductionMode"] == 1
    with pytest.raises(ConfigError, match="noise_reduction"):
        Picamera2Source(noise_reduction="strong")


# -- 10. a hung close() and a camera that no longer enumerates ------------------------------

def test_watchdog_stops_when_a_camera_close_hangs(fake, tmp_path, monkeypatch):
    import threading
    import time
    from pifocus import config as cfgmod
    from pifocus.service import Service
    from pifocus.service.sdnotify import SdNotifier

    pings = []

    class Recorder(SdNotifier):
        @property
        def enabled(self):
            return True

        def notify(self, *fields):
            if "WATCHDOG=1" in fields:
                pings.append(time.monotonic())
            return True

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "p.toml"
    path.write_text('[source]\nname = "sim"\n\n[analysis]\nuse_cnn = false\n')
    release = threading.Event()
    fake.Picamera2.stop_blocks = release
    fake.Picamera2.fail_capture_after = 20        # then the camera fails; closing it hangs
    src = Picamera2Source(width=160, height=120)
    svc = Service(cfgmod.load(path), source=src, web_enabled=False, outputs_enabled=False,
                  notifier=Recorder("", watchdog_usec=400_000))
    svc.start()
    try:
        assert svc.wait_ready(20)
        deadline = time.monotonic() + 5
        cam = fake.Picamera2.instances[0]
        while not getattr(cam, "in_stop", False) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cam.in_stop                            # the frame loop is stuck in close()
        time.sleep(0.5)
        n = len(pings)
        time.sleep(1.2)                               # three watchdog intervals
        assert len(pings) == n, "a hung close() must stop the watchdog pings"
    finally:
        release.set()
        svc.shutdown()


def test_camera_that_no_longer_enumerates_is_retried_in_minutes(fake):
    fake.Picamera2.fail_capture_after = 3
    src = Picamera2Source(width=64, height=64)
    p = Pipeline(src, _Analyzer())
    delays = []

    class Clock:  # Pipeline waits with self._stop.wait(delay): record, return at once
        def wait(self, d):
            delays.append(d)
            return len(delays) >= 8

        def is_set(self):
            return len(delays) >= 8

        def set(self):
            pass
    src.open()
    fake.Picamera2.n_cameras = 0                  # unplugged: no longer in the camera list
    p._stop = Clock()
    p.run()
    attempts = fake.Picamera2.failed_inits
    assert attempts == 7 and delays[0] < 1        # one quick retry (a glitch), then ...
    assert min(delays[1:]) >= 60 and max(delays) <= 600   # ... minutes between attempts
