"""The page's readouts between and during the loop's frames (pifocus.service.live):
``/api/status`` during an autofocus run shows the run's own frames, and the peak-hold meter
carries over an ROI or analysis-mode change instead of jumping to 100 %."""

import time

import pytest

from pifocus import config as cfgmod
from pifocus.focus import AnalysisParams, FocusAnalyzer
from pifocus.service import SdNotifier, Service
from pifocus.service.live import LiveReports, MeterCarry
from pifocus.sources.simulated import SimulatedSource
from service_toml import SIM_SERVICE_BASE


class _Lens:
    """The sim lens through the analyzer, frame by frame (as the live loop judges it)."""

    def __init__(self, analyzer):
        self.sim = SimulatedSource(width=640, height=480)
        self.sim.open()
        self.analyzer = analyzer
        self.frame = None

    def at(self, pos):
        self.sim.lens_position = pos
        self.frame = self.sim.read()
        return self.analyzer.analyze(self.frame)

    def pass_through_focus(self):
        for pos in range(400, 600, 10):
            self.at(pos)


@pytest.mark.parametrize("off", [10, 25, 50])
def test_roi_change_keeps_the_meter_low_when_soft(off):
    """On the sim lens a fresh pass read 1.0 / 0.49 / 0.16 after the change at 10 / 25 / 50
    steps off focus (0.52 / 0.15 / 0.05 before it); carried, it reads what it read before."""
    an = FocusAnalyzer(AnalysisParams(use_cnn=False))
    lens, carry = _Lens(an), MeterCarry()
    lens.pass_through_focus()
    before = lens.at(500 + off)
    assert before.meter < 0.6
    an.set_roi((0.3, 0.3, 0.4, 0.4))
    assert carry.arm(an, before, lens.frame) == pytest.approx(before.meter)
    after = [lens.at(500 + off) for _ in range(5)]
    for r in after:
        carry.frame(an, r)
    assert all(r.meter <= before.meter * 1.25 + 0.02 for r in after), ([r.meter for r in after], before.meter)
    assert carry.active
    # racking through focus and back: 100 % at the peak, the new pass owns its peak
    for pos in list(range(500 + off, 470, -5)) + [480, 490]:
        carry.frame(an, lens.at(pos))
    assert not carry.active
    assert lens.at(500).meter == pytest.approx(1.0, abs=0.05)  # (noise: the held peak was a lucky frame)
    assert lens.at(500 + off).meter < 0.6


def test_a_carried_seed_never_traps_a_sharp_new_subject():
    """The worst case of carrying: the new ROI's subject is at its focus although the old
    one read 30 %.  Rack away and back: the change's frame is a peak of its own: 100 %."""
    an = FocusAnalyzer(AnalysisParams(use_cnn=False))
    lens, carry = _Lens(an), MeterCarry()
    first = lens.at(500)
    # a report whose peak-hold meter read 30 % (sharpness / the pass's peak)
    fake_before = type(first)(**{**first.__dict__, "meter": 0.3, "peak_sharpness": first.sharpness / 0.3})
    an.set_roi((0.3, 0.3, 0.4, 0.4))
    carry.arm(an, fake_before, lens.frame)
    r = lens.at(500)
    assert r.meter < 0.4              # carried: reads low, as the old ROI did
    for pos in (530, 560, 530):      # rack away ...
        carry.frame(an, lens.at(pos))
    carry.frame(an, lens.at(500))     # ... and back to the sharpest frame
    assert not carry.active
    assert lens.at(500).meter == pytest.approx(1.0, abs=0.05)


def test_nothing_to_carry():
    an = FocusAnalyzer(AnalysisParams(use_cnn=False))
    lens, carry = _Lens(an), MeterCarry()
    r = lens.at(500)                  # the first frame of a pass: 100 %
    assert carry.arm(an, r, lens.frame) is None and not carry.active
    assert carry.arm(an, None, lens.frame) is None
    assert carry.arm(an, r, None) is None


def test_the_carry_seeds_from_the_peak_hold_not_the_capped_meter():
    """A report at its pass's peak whose meter the classifier's confidence capped (0.55):
    the new pass is not seeded at 55 % (that held the LED off after an ROI nudge: the seed
    needed 1.8x the sharpness); there is nothing to carry, as at 100 %."""
    an = FocusAnalyzer(AnalysisParams(use_cnn=False))
    lens, carry = _Lens(an), MeterCarry()
    r = lens.at(500)
    capped = type(r)(**{**r.__dict__, "meter": 0.55, "peak_sharpness": r.sharpness})
    an.set_roi((0.3, 0.3, 0.4, 0.4))
    assert carry.arm(an, capped, lens.frame) is None and not carry.active
    # below its peak it carries the peak-hold value, not the capped one
    lower = type(r)(**{**r.__dict__, "meter": 0.2, "peak_sharpness": r.sharpness / 0.6})
    assert carry.arm(an, lower, lens.frame) == pytest.approx(0.6)


def test_a_run_s_lower_meter_takes_near_back():
    """An autofocus run rates its frames against its own best: a frame the loop would call
    near by its meter is out_of_focus once the run's best makes its meter < near_meter."""
    import math
    an = FocusAnalyzer(AnalysisParams(use_cnn=False))
    lens = _Lens(an)
    live = LiveReports()
    live.start_run()
    best = lens.at(500)
    live._record(lens.frame, best)
    r = lens.at(530)
    near = type(r)(**{**r.__dict__, "verdict": "near", "meter": 0.9, "in_focus": False, "near_meter": 0.8})
    assert math.isnan(near.blur_px)
    live._record(lens.frame, near)
    assert live.report.meter < 0.8 and live.report.verdict == "out_of_focus"
    kept = type(r)(**{**r.__dict__, "verdict": "near", "meter": 0.9, "in_focus": False, "near_meter": 0.1})
    live._record(lens.frame, kept)
    assert live.report.verdict == "near"
    # with a blur head: under the classifier rule near needed the meter too, so it is taken
    # back; under the blur rule near is the blur's alone and stays (its meter is coc / blur)
    for needs, want in ((True, "out_of_focus"), (False, "near")):
        blurred = type(r)(**{**r.__dict__, "verdict": "near", "meter": 0.56, "in_focus": False,
                             "near_meter": 0.8, "blur_px": 1.8, "near_needs_meter": needs})
        live._record(lens.frame, blurred)
        assert live.report.verdict == want, needs
    # no near_meter given: nothing to take back by
    bare = type(r)(**{**r.__dict__, "verdict": "near", "meter": 0.5, "in_focus": False, "near_meter": math.nan})
    live._record(lens.frame, bare)
    assert live.report.verdict == "near"


def test_live_reports_prefer_the_newer_and_rate_the_run_s_own_best():
    an = FocusAnalyzer(AnalysisParams(use_cnn=False))
    lens = _Lens(an)
    loop = lens.at(450)
    seen = []
    live = LiveReports(offer=lambda f, r: seen.append(r))
    wrapped = live.wrap(an)
    assert live.wrap(an) is wrapped and wrapped.params is an.params
    assert live.latest(loop) == (loop, "loop")
    live.start_run()
    lens.sim.lens_position = 500
    best = wrapped.analyze(lens.sim.read(), track=False)
    lens.sim.lens_position = 540
    soft = wrapped.analyze(lens.sim.read(), track=False)
    report, origin = live.latest(loop)
    assert origin == "autofocus" and report.frame_index == soft.frame_index
    assert report.meter == pytest.approx(soft.sharpness / best.sharpness, rel=1e-6) and report.meter < 0.3
    assert len(seen) == 2 and seen[-1] is report  # and the preview got them


# -- the service ----------------------------------------------------------------------------

def _frames_at(c, pos, n=2, timeout_s=30.0):
    """Wait until the loop has judged ``n`` frames taken at lens ``pos`` (or none, for
    ``pos=None``: any ``n`` new frames).  Waits on the frame counter, not on the clock, so
    the test holds under qemu's arm64 emulation (~10x slower) as on a PC."""
    end = time.monotonic() + timeout_s
    seen = set()
    while time.monotonic() < end:
        st = c.status()
        if st.get("frame") is not None and (pos is None or st.get("lens_position") == pos):
            seen.add(st["frame"])
            if len(seen) > n:
                return st
        time.sleep(0.01)
    raise AssertionError(f"the loop judged fewer than {n} frames at lens {pos} in {timeout_s} s")


@pytest.fixture
def svc(tmp_path):
    toml = SIM_SERVICE_BASE + f'[web]\nport = 0\nmax_fps = 0\ncaptures_dir = "{tmp_path / "cap"}"\n'
    (tmp_path / "p.toml").write_text(toml)
    s = Service(cfgmod.load(tmp_path / "p.toml"), notifier=SdNotifier(""))
    s.start()
    assert s.wait_ready(20)
    time.sleep(0.3)
    yield s
    s.shutdown()


def test_status_during_an_autofocus_run_shows_its_frames(svc):
    c = svc.controls
    c.nudge(-int(svc.drive.position) + 150)   # far from focus (500)
    time.sleep(0.3)
    pre = c.status()
    assert pre["report_from"] == "loop"
    c.start_autofocus("sweep")                # the longest strategy: ~25 frames
    during = []
    end = time.monotonic() + 30
    while c.af_state.get("state") == "running" and time.monotonic() < end:
        during.append(c.status())
        time.sleep(0.01)
    live = [d for d in during if d["report_from"] == "autofocus"]
    assert live, "no status during the run showed the run's frames"
    assert max(d["frame"] for d in live) > pre["frame"]
    assert len({d["lens_position"] for d in live}) >= 3       # it follows the lens as it moves
    assert c.af_state["state"] == "done", c.af_state
    _frames_at(c, None, n=2)
    assert c.status()["report_from"] == "loop"                # the loop's frames again after it


def test_service_meter_survives_roi_and_mode_changes(svc):
    c = svc.controls
    for pos in range(400, 601, 20):                           # a pass through focus (500)
        svc.drive.move_to(pos)
        _frames_at(c, pos, n=1)
    svc.drive.move_to(525)
    before = _frames_at(c, 525, n=3)["meter"]
    assert before < 0.5
    c.set_roi((0.3, 0.3, 0.4, 0.4))
    assert _frames_at(c, 525, n=3)["meter"] <= before * 1.3 + 0.03, before
    before = c.status()["meter"]
    c.set_analysis_mode("cnn")
    _frames_at(c, 525, n=3)
    st = c.status()
    assert st["mode"] == "cnn" and st["meter"] <= before * 1.3 + 0.03, (before, st["meter"])
