"""Autofocus: strategies on the simulated lens, the quality gate, continuous AF, the CLI,
calibration, and replay of real sweeps (skipped without ../shared/data)."""

import json
import os

import cv2
import numpy as np
import pytest

from pifocus import cli
from pifocus.autofocus import (AutofocusParams, ContinuousAF, SweepParams, autofocus, fit_peak)
from pifocus.drive import open_drive
from pifocus.exc import ConfigError, LimitError
from pifocus.focus import AnalysisParams, FocusAnalyzer

W, H = 480, 360


@pytest.fixture(scope="module")
def analyzer():
    return FocusAnalyzer(AnalysisParams(use_cnn=False))


def sim(**kw):
    kw.setdefault("width", W)
    kw.setdefault("height", H)
    return open_drive("sim", **kw)


def dof(drive):
    """Depth of focus half-width in steps: defocus blur radius <= 1 px."""
    return 1.0 / drive.sim.params.blur_px_per_step


def lens_error(drive):
    return drive.ring.lens + drive.ring.turned - drive.sim.params.focus_position


@pytest.mark.parametrize("strategy", ["model", "sweep"])
@pytest.mark.parametrize("focus,bpp,start,backlash,seed", [
    (300, 0.04, 900, 0, 1),
    (720, 0.07, 50, 25, 2),
    (150, 0.025, 600, 10, 3),
])
def test_af_lands_within_depth_of_focus(analyzer, strategy, focus, bpp, start, backlash, seed):
    with sim(focus_position=focus, blur_px_per_step=bpp, seed=seed, backlash_steps=backlash,
             backlash=backlash) as d:
        r = autofocus(d, analyzer, AutofocusParams(strategy=strategy), start=start)
        assert r.success, r.reason
        assert abs(lens_error(d)) <= dof(d)
        assert r.final_position == d.position
        assert r.frames_used == len(r.curve) and r.moves > 0 and r.time_s > 0
        if strategy == "model":
            assert r.frames_used <= 16


def test_model_guided_beats_the_sweep_on_frames(analyzer):
    # On the uniform score (centre_sigma 0) this scene takes the model strategy 13 frames and
    # the sweep 26; with the centre-weighted default (a noisier score on this small frame) 14.
    frames = {}
    for strategy in ("model", "sweep"):
        with sim(focus_position=640, seed=5) as d:
            frames[strategy] = autofocus(d, analyzer, AutofocusParams(strategy=strategy, centre_sigma=0.0),
                                         start=100).frames_used
    assert frames["model"] * 2 <= frames["sweep"]


def test_uncalibrated_backlash_still_lands(analyzer):
    # The ring has 30 steps of play the drive does not know about: AF approaches from one
    # side with its own overshoot, so the play drops out.
    with sim(focus_position=420, seed=7, backlash_steps=30) as d:
        r = autofocus(d, analyzer, AutofocusParams(), start=850)
        assert r.success and abs(lens_error(d)) <= dof(d)


def test_missed_steps_are_caught_by_closed_loop(analyzer):
    with sim(focus_position=520, seed=8, missed_step_rate=0.5, missed_step_max=4) as d:
        r = autofocus(d, analyzer, AutofocusParams(), start=80)
        assert d.ring.missed > 0
        assert not r.success or abs(lens_error(d)) <= dof(d)  # never a silent miss


# -- quality gate ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def flat_image(tmp_path_factory):
    p = tmp_path_factory.mktemp("flat") / "flat.png"
    cv2.imwrite(str(p), np.full((H, W), 128, np.uint8))
    return str(p)


@pytest.mark.parametrize("strategy", ["model", "sweep"])
def test_gate_flat_scene(analyzer, flat_image, strategy):
    with sim(image=flat_image, seed=1) as d:
        r = autofocus(d, analyzer, AutofocusParams(strategy=strategy), start=300)
        assert not r.success and "too little texture" in r.reason
        assert r.final_position == r.best_position   # back at the best position seen


def test_gate_too_little_light(analyzer):
    with sim(exposure=0.02) as d:
        r = autofocus(d, analyzer, AutofocusParams(), start=300)
        assert not r.success and "too little light" in r.reason
        assert r.final_position == r.best_position


def test_gate_peak_at_edge_of_range(analyzer):
    with sim(focus_position=990, min_position=0, max_position=900) as d:
        r = autofocus(d, analyzer, AutofocusParams(), start=300)
        assert not r.success and "edge of the range" in r.reason
        assert r.final_position == r.best_position == 900


def test_gate_poor_fit_on_a_jumbled_curve(analyzer, tmp_path):
    # A "lens" whose sharpness jumps around with position: no single peak to fit.
    from pifocus.sources.simulated import SimulatedSource
    src = SimulatedSource(width=320, height=240, focus_position=0, blur_px_per_step=0.5, seed=4)
    src.open()
    rng = np.random.default_rng(0)
    blurs = [0, 9, 1, 12, 3, 0.5, 10, 2, 11, 0, 8, 4, 13, 1, 9, 6, 0, 12, 5, 10, 2]
    rows = ["file,position"]
    for i, b in enumerate(blurs):
        src.lens_position = b / 0.5
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), src.read().luma)
        rows.append(f"{i:02d}.png,{i * 10}")
    (tmp_path / "sweep.csv").write_text("\n".join(rows) + "\n")
    del rng
    with open_drive(f"replay:{tmp_path}") as d:
        r = autofocus(d, analyzer, AutofocusParams(strategy="sweep",
                                                   sweep=SweepParams(coarse_points=21, fine_points=0)))
        assert not r.success and ("poor peak fit" in r.reason or "not peaked" in r.reason
                                  or "multi-peaked curve" in r.reason)
        assert r.final_position == r.best_position


def test_start_outside_limits(analyzer):
    with sim(on_limit="error", min_position=100, max_position=900) as d:
        with pytest.raises(LimitError, match="outside the soft limits"):
            autofocus(d, analyzer, AutofocusParams(), start=50)


# -- continuous AF -------------------------------------------------------------------------

def _focused_caf(analyzer, **params):
    d = sim(focus_position=500, seed=11, width=320, height=240)
    d.open()
    d.move_to(200)
    caf = ContinuousAF(d, analyzer, AutofocusParams(strategy="continuous", **params))
    assert caf.step() == "focus"            # the initial full AF
    assert abs(lens_error(d)) <= dof(d)
    return d, caf


def test_continuous_no_hunting_when_in_focus(analyzer):
    d, caf = _focused_caf(analyzer)
    moves = d.moves
    for _ in range(25):
        caf.step()
    assert caf.searches == 1 and d.moves == moves   # only the initial AF
    d.close()


def test_continuous_ignores_one_frame_flicker_and_scene_cuts(analyzer):
    d, caf = _focused_caf(analyzer)
    for _ in range(5):
        caf.step()
    ref = caf.reference
    assert caf.update(0.2 * ref, 100.0) in ("low", "cut")     # one bad frame
    for _ in range(5):
        caf.update(ref, 100.0)
    # A scene cut: brightness jumps, sharpness changes; no search, the reference is re-learnt.
    assert caf.update(0.1 * ref, 180.0) == "cut"
    for _ in range(6):
        caf.update(0.1 * ref, 180.0)
    assert caf.searches == 1 and caf.state == "watch"
    d.close()


def test_continuous_refocuses_after_a_sustained_drop(analyzer):
    import dataclasses
    d, caf = _focused_caf(analyzer)
    for _ in range(5):
        caf.step()
    # The subject moves: focus is now at 560.
    d.sim.params = dataclasses.replace(d.sim.params, focus_position=560.0)
    for _ in range(12):
        caf.step()
        if caf.searches > 1:
            break
    assert caf.searches == 2
    assert abs(d.ring.lens - 560) <= 1 / d.sim.params.blur_px_per_step
    assert caf.results[-1].frames_used <= 20
    d.close()


def test_continuous_reports_a_manual_ring_turn(analyzer):
    d, caf = _focused_caf(analyzer)
    for _ in range(5):
        caf.step()
    d.ring.manual_turn(-70)                 # somebody turns the focus ring by hand
    events = [caf.step() for _ in range(10)]
    assert "manual_turn" in events and caf.turns and abs(caf.turns[0] - 70) <= 15
    assert abs(lens_error(d)) <= dof(d)
    d.close()


# -- fits, params ----------------------------------------------------------------------------

def test_fit_peak_gaussian_and_parabola():
    xs = np.array([80.0, 100, 120, 140])
    ys = 1000 * np.exp(-((xs - 107) / 30) ** 2)
    f = fit_peak(xs, ys, "gaussian")
    assert f["peak"] == pytest.approx(107, abs=0.01) and f["r2"] > 0.999
    assert fit_peak([1, 2, 3], [3, 2, 3], "parabola") is None       # not concave
    assert fit_peak([1, 1, 2], [1, 2, 3]) is None                    # too few positions


def test_autofocus_params_and_config():
    from pifocus import config
    cfg = config.from_dict({"autofocus": {"strategy": "sweep", "sweep": {"coarse_points": 9},
                                          "gate": {"min_r2": 0.5}}})
    assert cfg.autofocus.strategy == "sweep" and cfg.autofocus.sweep.coarse_points == 9
    assert cfg.autofocus.gate.min_r2 == 0.5
    with pytest.raises(ConfigError, match="autofocus.strategy"):
        AutofocusParams(strategy="guess")
    with pytest.raises(ConfigError, match="autofocus.sweep.*coarse_pts|did you mean"):
        config.from_dict({"autofocus": {"sweep": {"coarse_pts": 9}}})
    from pifocus.autofocus import AutofocusParams as A2  # the import path other modules use
    assert A2 is AutofocusParams


# -- CLI ---------------------------------------------------------------------------------------

def test_cli_autofocus_json(capsys, tmp_path):
    png = tmp_path / "af.png"
    rc = cli.main(["autofocus", "--drive", "sim", "--size", "320x240", "--no-cnn", "--start", "100",
                   "--sim-focus", "600", "--json", "--plot", str(png)])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(out) == 1
    d = json.loads(out[0])
    for key in ("final_position", "frames_used", "moves", "success", "reason", "curve", "time_s"):
        assert key in d
    assert d["success"] is True and d["reason"] == "ok"
    assert all(len(p) == 2 for p in d["curve"]) and len(d["curve"]) == d["frames_used"]
    assert abs(d["final_position"] - 600) <= 25
    assert png.stat().st_size > 10_000


def test_cli_autofocus_gate_failure_exit_status(capsys, tmp_path, flat_image):
    rc = cli.main(["autofocus", "--drive", "sim", "--source", f"sim:{flat_image}", "--size", "320x240",
                   "--no-cnn", "--json"])
    cap = capsys.readouterr()
    assert rc == 3 and json.loads(cap.out)["success"] is False
    assert cap.err.strip().splitlines()[-1].startswith("pifocus: error: autofocus failed the quality gate: too little texture")


@pytest.mark.parametrize("argv,msg", [
    (["--drive", "zoom"], "unknown drive 'zoom'"),
    (["--drive", "replay:/nonexistent/sweep"], "no such folder"),
    (["--drive", "sim", "--limits", "900:100"], "max_position"),
    (["--drive", "sim", "--source", "opencv:0"], "drive 'sim' turns the simulated lens"),
])
def test_cli_bad_input_one_line_errors(capsys, argv, msg):
    rc = cli.main(["autofocus", "--no-cnn", "--size", "160x120"] + argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("pifocus: error:") and msg in err[0]


def test_cli_replay_folder_without_frames(capsys, tmp_path):
    rc = cli.main(["autofocus", "--no-cnn", "--drive", f"replay:{tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "holds no images" in err[0]


def test_cli_calibrate_measures_backlash(capsys):
    rc = cli.main(["calibrate", "--drive", "sim", "--size", "320x240", "--no-cnn", "--sim-backlash", "30",
                   "--points", "21", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and d["backlash"] == pytest.approx(30, abs=5)
    assert d["limits"] == [0, 1000] and d["detail_span"][0] < d["peak"] < d["detail_span"][1]
    assert "backlash = " in d["config"]


# -- replay of real sweeps ---------------------------------------------------------------------

def test_replay_real_sweeps_land_on_the_judged_frame(shared_data, analyzer, tmp_path):
    data = os.path.join(os.path.dirname(__file__), "data")
    with open(os.path.join(data, "af_sweep_judgements.json")) as f:
        judg = json.load(f)
    try:  # the model engineer's independent judgements take precedence where present
        with open(os.path.join(data, "sweep_judgements.json")) as f:
            for name, j in json.load(f).get("sweeps", {}).items():
                if j.get("file"):
                    judg["sweeps"].setdefault(name, {"exclude": []})["sharpest"] = j["file"]
    except (OSError, ValueError):
        pass
    an = FocusAnalyzer(AnalysisParams(use_cnn=False, roi=tuple(judg["region"])))
    for name in ("cmc-6", "pcb-7", "microscope-wbc-10"):
        j = judg["sweeps"][name]
        src = shared_data / "focus-sweeps" / name
        from pifocus.sources.recorded import _is_image, natural_sorted
        names = [n for n in natural_sorted(os.listdir(src))
                 if _is_image(n) and n not in j.get("exclude", []) and not n.startswith("expected")]
        folder = tmp_path / name
        folder.mkdir()
        (folder / "sweep.csv").write_text("file,position\n" + "".join(f"{src / n},{i}\n" for i, n in enumerate(names)))
        target = names.index(j["sharpest"])
        for strategy in ("model", "dfd"):
            for start in (0, len(names) - 1):
                with open_drive(f"replay:{folder}") as d:
                    r = autofocus(d, an, AutofocusParams(strategy=strategy), start=start)
                    off = abs(d.nearest_index(r.final_position) - target)
                # dfd does not scan the whole range: on pcb-7 from frame 0 it stops on the local
                # peak at frame 1 (the curve there is 44, 541, 292, 451, 579, ...) -- and says,
                # through its confidence, that most of the range was never looked at.
                assert off <= 1 or (strategy == "dfd" and r.confidence < 0.5), (name, strategy, start, r.reason)


class FakeCamModule3:
    """A picamera2-source stand-in for a Camera Module 3: LensPosition in dioptres (0..15)
    drives a simulated lens; the new position shows one frame late, unless fresh frames
    are requested (as Picamera2Source.request_fresh does) -- then also one frame late."""

    def __init__(self, focus_dioptres=7.3):
        from pifocus.sources.simulated import SimulatedSource

        self.sim = SimulatedSource(width=320, height=240, focus_position=focus_dioptres * 1000 / 15, seed=3)
        self.sim.lens_position = 1000 / 15
        self.camera = self
        self.camera_controls = {"LensPosition": (0.0, 15.0, 1.0)}
        self.pending = []
        self.fresh_requests = 0
        self.closed = True

    def open(self):
        self.sim.open()
        self.closed = False

    def close(self):
        self.closed = True

    def set_controls(self, c):
        if "LensPosition" in c:
            self.pending.append(c["LensPosition"])

    def request_fresh(self):
        self.fresh_requests += 1

    def read(self):
        import dataclasses
        frame = self.sim.read()          # this frame still shows the old position
        # the metadata reports dioptres (the camera's LensPosition), not the sim's steps
        frame = dataclasses.replace(frame, lens_position=self.sim.lens_position * 15 / 1000)
        if self.pending:
            self.sim.lens_position = self.pending.pop() * 1000 / 15
            self.pending.clear()
        return frame


def test_af_on_a_libcamera_lens_in_dioptres(analyzer):
    cam = FakeCamModule3(focus_dioptres=7.3)
    d = open_drive("libcamera", source=cam)
    with d:
        assert d.limits == (0.0, 15.0) and d.units == "dioptres"
        r = autofocus(d, analyzer, AutofocusParams(), source=cam)
    assert r.success, r.reason
    assert abs(r.final_position - 7.3) <= 1.0 / 0.04 * 15 / 1000   # depth of focus in dioptres
    assert cam.fresh_requests >= r.moves // 2


def test_cli_pin_in_use_one_line_error(capsys, mock_factory, tmp_path):
    from gpiozero import LED
    led = LED("GPIO20", pin_factory=mock_factory)   # e.g. the focus LED wired to the STEP pin
    rc = cli.main(["autofocus", "--drive", "stepper", "--no-cnn", "--size", "160x120",
                   "--state-file", str(tmp_path / "s.json")])
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("pifocus:")]
    assert rc == 2 and len(err) == 1
    assert "step_pin GPIO20 is already in use" in err[0] and "another pin" in err[0]
    led.close()


# -- record --drive --sweep ----------------------------------------------------------------------

def test_record_sweep_then_autofocus_on_the_replay(capsys, tmp_path):
    out = tmp_path / "lens"
    rc = cli.main(["record", "--drive", "sim", "--size", "320x240", "--sweep", "300:700:25",
                   "--out", str(out), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and res["frames"] == 17 and res["positions"] == [300, 700]
    rows = (out / "sweep.csv").read_text().strip().splitlines()
    assert rows[0].startswith("file,position") and len(rows) == 18
    assert [float(r.split(",")[1]) for r in rows[1:]] == [300 + 25 * i for i in range(17)]
    rc = cli.main(["autofocus", "--drive", f"replay:{out}", "--no-cnn", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and d["success"] and abs(d["final_position"] - 500) <= 25


@pytest.mark.parametrize("sweep,msg", [
    ("-100:500:50", "outside the soft limits 0..1000"),
    ("0:100:0", "STEP must be non-zero"),
    ("0:100:-10", "STEP must be non-zero"),
    ("zero:100:10", "give FROM:TO:STEP"),
])
def test_record_sweep_bad_ranges_one_line_errors(capsys, tmp_path, sweep, msg):
    out = tmp_path / "rec"
    rc = cli.main(["record", "--drive", "sim", "--size", "160x120", f"--sweep={sweep}", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("pifocus: error:") and msg in err[0]
    assert not out.exists()          # nothing created for a refused sweep


def test_record_drive_without_sweep(capsys, tmp_path):
    rc = cli.main(["record", "--drive", "sim", "--size", "160x120", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "needs --sweep FROM:TO:STEP" in err[0]


def test_fit_v_finds_the_centre_of_a_literal_v():
    from pifocus.autofocus import fit_v
    xs = [100.0, 180.0, 420.0, 500.0]
    blur = [0.3 + 0.02 * abs(x - 300.0) for x in xs]      # slope 0.02 px/step, focus at 300
    c, a, rms = fit_v(xs, blur, 0.3, 0.0, 1000.0, n_grid=1001)
    assert c == pytest.approx(300.0, abs=1.0) and a == pytest.approx(0.02, rel=0.02) and rms < 0.01
    # one side only: the fit puts the centre beyond the sharper sample
    c1, a1, _ = fit_v([100.0, 180.0, 250.0], [0.3 + 0.02 * (300 - x) for x in (100.0, 180.0, 250.0)],
                      0.3, 0.0, 1000.0, n_grid=1001)
    assert c1 == pytest.approx(300.0, abs=2.0)
    assert fit_v([1.0], [2.0], 0.3, 0, 10) is None
    assert fit_v([1.0, 2.0], [float("nan"), 1.0], 0.3, 0, 10) is None


def test_gate_subject_sharpest_at_the_range_end_is_a_success_with_a_note(shared_data):
    """cmc-6 is sharpest in its first frame: the curve turns over there -> success with a note
    (focus beyond the limit stays a failure: test_gate_peak_at_edge_of_range)."""
    from pifocus.focus import AnalysisParams, FocusAnalyzer
    an = FocusAnalyzer(AnalysisParams(use_cnn=False, roi=(0.35, 0.35, 0.3, 0.3)))
    folder = shared_data / "focus-sweeps" / "cmc-6"
    # The uniform score peaks at frame 0 (the centre-weighted default at frame 1, also judged
    # acceptable: that is checked below).
    for start in range(6):
        with open_drive(f"replay:{folder}") as d:
            r = autofocus(d, an, AutofocusParams(centre_sigma=0.0), start=start)
            assert r.success and "end of the range" in r.reason, (start, r.reason)
            assert d.nearest_index(r.final_position) in (0, 1)
        with open_drive(f"replay:{folder}") as d:
            r = autofocus(d, an, AutofocusParams(), start=start)
            assert r.success and d.nearest_index(r.final_position) in (0, 1), (start, r.reason)


def test_peaks_at_edge_literal():
    from pifocus.autofocus.gate import _peaks_at_edge
    from pifocus.autofocus.run import Sample

    def s(x, v):
        return Sample(position=x, score=v, coarse={}, coarse_floor={}, brightness=100, informative=1, p_in_focus=0)
    assert _peaks_at_edge([s(0, 2087), s(1, 2060), s(2, 1628)])        # cmc-6: flat top at the end
    assert not _peaks_at_edge([s(24, 514), s(23, 503), s(20, 456)])    # still climbing at the end
    assert not _peaks_at_edge([s(900, 100), s(850, 40), s(800, 10)])   # steep rise: focus beyond
    assert not _peaks_at_edge([s(0, 10), s(1, 20), s(2, 5)])           # not falling inwards
