"""Continuous AF in the live loop (pifocus.service.follow.FollowFocus over ContinuousAF), on
the simulated lens: a subject moving in depth, a hand passing through the frame, five
minutes of a subject holding still within the depth of focus; ``run --af-mode continuous``;
the page's mode switch in ``serve``."""

import dataclasses
import json
import time
import urllib.request

import numpy as np
import pytest

from pifocus import config as cfgmod
from pifocus.autofocus import AutofocusParams, ContinuousParams
from pifocus.cli import main
from pifocus.drive import DriveParams
from pifocus.drive.simulated import SimulatedDrive
from pifocus.exc import ConfigError
from pifocus.focus import AnalysisParams, FocusAnalyzer
from pifocus.service import SdNotifier, Service
from pifocus.service.follow import FollowFocus
from pifocus.sources.simulated import SimulatedSource
from service_toml import SIM_SERVICE_BASE

#: Depth of focus of the sim lens in steps: blur radius hypot(0.04 * d, 0.6) <= 1 px  ->  |d| <= 20.
DOF_STEPS = 20


class _Rig:
    """Sim lens + drive + analyzer + FollowFocus, stepped frame by frame."""

    def __init__(self, focus=500.0, start=500.0, size=(320, 240), blur_head=False, **continuous):
        self.sim = SimulatedSource(width=size[0], height=size[1], focus_position=focus)
        self.drive = SimulatedDrive(DriveParams(name="sim", state_file="none"), source=self.sim)
        self.drive.open()
        self.drive.move_to(start)
        self.analyzer = FocusAnalyzer(AnalysisParams(use_cnn=False))
        self.follow = FollowFocus(AutofocusParams(mode="continuous", continuous=ContinuousParams(**continuous)),
                                  enabled=True)
        self.blur_head = blur_head
        self.events = []
        self.hand = None

    def set_focus(self, pos):
        self.sim.params = dataclasses.replace(self.sim.params, focus_position=float(pos))

    def step(self):
        frame = self.drive.source.read()
        if self.hand is not None:   # a hand in front of the lens: a dark blob over most of the ROI
            luma = frame.luma.copy()
            h, w = luma.shape
            luma[int(h * 0.1):int(h * 0.9), int(w * self.hand):int(w * (self.hand + 0.5))] = 25
            frame = frame.with_luma(luma)
        report = self.analyzer.analyze(frame)
        if self.blur_head:
            # a model with a perfect blur head: the subject's true defocus radius (the sim knows it);
            # a hand in front is out of focus too
            report.blur_px = 8.0 if self.hand is not None else float(frame.extra["blur_px"])
        ev = self.follow.on_frame(frame, report, self.drive, self.analyzer, self.drive.source)
        self.events.append(ev)
        return ev, report

    def close(self):
        self.drive.close()
        self.analyzer.close()


def test_first_frame_focuses_then_watches():
    rig = _Rig(focus=560, start=400)
    try:
        ev, _ = rig.step()
        assert ev == "focus" and abs(rig.drive.position - 560) <= DOF_STEPS / 2
        for _ in range(10):
            rig.step()
        assert rig.follow.state == "watch" and rig.follow.searches == 1
    finally:
        rig.close()


@pytest.mark.parametrize("kw", [dict(blur_head=True), dict(), dict(sharpness_drop_ratio=0.3)],
                         ids=["blur-head-default", "laplacian-default", "laplacian-0.3"])
def test_subject_moving_in_depth_is_followed_within_six_frames_of_settling(kw):
    rig = _Rig(focus=500, start=500, **kw)
    try:
        for _ in range(8):
            rig.step()                      # initial focus + learn
        searches0 = rig.follow.searches
        for i in range(1, 31):              # the subject walks 90 steps away: 3 steps a frame
            rig.set_focus(500 + 3 * i)
            rig.step()
        settled = len(rig.events)
        for _ in range(40):
            rig.step()
        after = rig.events[settled:]
        moving = [i for i, e in enumerate(after) if e in ("search", "manual_turn")]
        # refocus within 6 frames of settling (or already back in focus when it settled)
        assert moving and moving[0] < 6 or rig.follow.searches > searches0 and \
            abs(rig.drive.position - 590) <= DOF_STEPS, rig.events
        assert abs(rig.drive.position - 590) <= DOF_STEPS, (rig.drive.position, rig.events)
        # and then it holds: no more moves once in focus
        last_move = max(i for i, e in enumerate(rig.events) if e in ("search", "manual_turn", "focus"))
        assert all(e in ("ok", "learn", "low") for e in rig.events[last_move + 1:]), rig.events
    finally:
        rig.close()


@pytest.mark.parametrize("kw", [dict(blur_head=True), dict()], ids=["blur-head", "laplacian"])
def test_a_hand_passing_through_does_not_refocus(kw):
    rig = _Rig(focus=500, start=500, **kw)
    try:
        for _ in range(10):
            rig.step()
        pos, searches = rig.drive.position, rig.follow.searches
        for x in np.linspace(0.0, 0.5, 8):   # the hand sweeps across for 8 frames
            rig.hand = float(x)
            rig.step()
        rig.hand = None
        for _ in range(15):
            rig.step()
        assert rig.follow.searches == searches, rig.events
        assert rig.drive.position == pos
        assert "cut" in rig.events
    finally:
        rig.close()


@pytest.mark.parametrize("kw", [dict(blur_head=True), dict()], ids=["blur-head-default", "laplacian-default"])
def test_no_refocus_in_five_minutes_within_the_depth_of_focus(kw):
    """9000 frames (5 minutes at 30 fps) of a subject swaying inside the depth of focus
    (+-60 % of it), at the default settings: with a blur estimate (``drop_ratio`` 0.6 of the
    blur score) and with the Laplacian sharpness (``sharpness_drop_ratio`` 0.15, the depth of
    focus's edge on this lens; ``drop_ratio`` 0.6 there hunted: 4 searches in 600 frames).

    The sway is rendered for real (sim + analyzer) for 600 frames; the reports of those
    frames then play through FollowFocus 14 more times (the lens never moves when
    FollowFocus is right, so the recorded frames stay valid).  Zero refocus moves."""
    rig = _Rig(focus=500, start=500, **kw)
    rng = np.random.default_rng(7)
    try:
        for _ in range(8):
            rig.step()
        focused = rig.drive.position          # where the initial search left the lens
        assert abs(focused - 500) <= DOF_STEPS / 4
        recorded = []
        caf_reports = []
        sway = 0.0
        for _ in range(600):
            sway = float(np.clip(sway + rng.normal(0, 1.5), -DOF_STEPS * 0.6, DOF_STEPS * 0.6))
            rig.set_focus(500 + sway)
            ev, report = rig.step()
            recorded.append(ev)
            caf_reports.append(report)
        assert rig.follow.searches == 1, [e for e in recorded if e not in ("ok", "low")]
        frame = rig.drive.source.read()
        for _ in range(14):
            for report in caf_reports:
                ev = rig.follow.on_frame(frame, report, rig.drive, rig.analyzer, rig.drive.source)
                assert ev in ("ok", "low", "learn"), ev
        assert rig.follow.searches == 1 and rig.drive.position == focused
        assert len(recorded) + 14 * len(caf_reports) == 9000
    finally:
        rig.close()


def test_score_kind_picks_its_threshold_and_a_kind_change_relearns():
    """A blur score uses drop_ratio, the Laplacian sharpness sharpness_drop_ratio; switching
    kind re-learns the reference instead of comparing 1.0 with a sharpness of hundreds."""
    from types import SimpleNamespace

    from pifocus.service.follow import follow_score, score_kind
    blur = SimpleNamespace(blur_px=0.8, coc_px=1.0, sharpness=300.0, mode="laplacian", p_in_focus=0.0,
                           exposure=None, roi=(0.2, 0.2, 0.6, 0.6))
    lap = SimpleNamespace(blur_px=float("nan"), coc_px=1.0, sharpness=300.0, mode="laplacian", p_in_focus=0.0,
                          exposure=None, roi=(0.2, 0.2, 0.6, 0.6))
    assert score_kind(blur) == "blur" and follow_score(blur) == 1.0
    assert score_kind(lap) == "sharpness" and follow_score(lap) == 300.0
    f = FollowFocus(AutofocusParams(continuous=ContinuousParams(initial_search=False, relearn_frames=2)),
                    enabled=True)
    frame = SimpleNamespace(luma=np.full((40, 40), 100, np.uint8))
    drive = SimpleNamespace(source=None)  # never moved: no search is due in this test
    for _ in range(3):
        f.on_frame(frame, lap, drive, None, None)
    assert f.state == "watch" and f._caf.reference == 300.0
    lap_low = SimpleNamespace(**dict(vars(lap), sharpness=0.2 * 300.0))  # 20 %: inside the DoF
    assert f.on_frame(frame, lap_low, drive, None, None) == "ok"          # 0.2 > 0.15
    assert f.on_frame(frame, blur, drive, None, None) == "learn"           # other kind: re-learn
    f.on_frame(frame, blur, drive, None, None)
    assert f._caf.reference == 1.0
    blur_low = SimpleNamespace(**dict(vars(blur), blur_px=1.4))            # (1/1.4)^2 = 0.51 < 0.6
    assert f.on_frame(frame, blur_low, drive, None, None) == "low"


def test_follow_off_does_nothing():
    f = FollowFocus(AutofocusParams(), enabled=False)
    assert f.on_frame(None, None, object(), None, None) is None
    assert f.status() == {"enabled": False, "state": None, "last_event": None, "searches": 0}


def test_af_mode_validated():
    with pytest.raises(ConfigError, match="autofocus.mode"):
        AutofocusParams(mode="hunting")


def test_run_continuous_on_the_sim(capsys):
    code = main(["run", "--source", "sim", "--size", "320x240", "--drive", "sim", "--af-mode", "continuous",
                 "--sim-focus", "620", "--frames", "12", "--json", "--no-outputs"])
    out = capsys.readouterr().out
    assert code == 0
    objs = [json.loads(x) for x in out.splitlines() if x.strip()]
    assert objs[-1]["af_searches"] == 1
    assert abs(objs[-2]["lens_position"] - 620) <= DOF_STEPS


def test_run_af_mode_errors(capsys, tmp_path):
    # the sim drive cannot turn the lens of a recording
    assert main(["run", "--source", str(tmp_path), "--drive", "sim", "--af-mode", "continuous", "--frames", "2"]) != 0
    assert "drive 'sim' turns the simulated lens" in capsys.readouterr().err
    # a drive without continuous AF does nothing in run: said, not ignored
    assert main(["run", "--source", "sim", "--size", "320x240", "--drive", "sim", "--frames", "2"]) != 0
    assert "--af-mode continuous" in capsys.readouterr().err


TOML = SIM_SERVICE_BASE + """\
[autofocus]
mode = "{mode}"

[web]
port = 0
"""


def _post(svc, path, body):
    req = urllib.request.Request(svc.web.url.rstrip("/") + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_serve_continuous_mode_and_page_switch(tmp_path):
    p = tmp_path / "pifocus.toml"
    p.write_text(TOML.format(mode="continuous"))
    svc = Service(cfgmod.load(p), notifier=SdNotifier(""), outputs_enabled=False)
    svc.start()
    try:
        assert svc.wait_ready(20)
        deadline = time.monotonic() + 20
        while svc.controls.follow.searches < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        st = svc.status()
        assert st["af_mode"] == "continuous" and st["follow"]["searches"] >= 1
        assert abs(svc.drive.position - 500) <= DOF_STEPS
        code, d = _post(svc, "/api/mode", {"af_mode": "single"})
        assert code == 200 and d["af_mode"] == "single" and svc.status()["af_mode"] == "single"
        code, d = _post(svc, "/api/mode", {"af_mode": "sometimes"})
        assert code == 400 and "af_mode" in d["error"]
        # single: the lens moved away stays away
        svc.drive.move_to(300)
        time.sleep(0.6)
        assert svc.drive.position == 300
        code, d = _post(svc, "/api/mode", {"af_mode": "continuous"})
        assert code == 200
        deadline = time.monotonic() + 20
        while abs(svc.drive.position - 500) > DOF_STEPS and time.monotonic() < deadline:
            time.sleep(0.1)
        assert abs(svc.drive.position - 500) <= DOF_STEPS
    finally:
        svc.shutdown()
