"""Focus bracketing (pifocus.stack, ``pifocus stack``): the depth of focus from tile curves,
the plan, the coverage of a tilted scene on the simulated lens, the files written, fusion."""

import json
import math

import cv2
import numpy as np
import pytest

from pifocus.cli import main
from pifocus.drive import DriveParams
from pifocus.drive.simulated import SimulatedDrive
from pifocus.exc import ConfigError
from pifocus.focus import AnalysisParams, FocusAnalyzer
from pifocus.sources.simulated import SimulatedSource, defocus, sensor
from pifocus.stack import StackParams, curve_width, fuse, plan_positions, probe_dof, tile_dof

#: The sim lens's depth of focus: blur radius hypot(0.04 d, 0.6) <= 1 px (the CoC)  ->  |d| <= 20 steps.
DOF_STEPS = 40.0


def test_curve_width_literal():
    xs = [0, 10, 20, 30, 40]
    assert curve_width(xs, [1, 10, 100, 10, 1], 0.1) == pytest.approx(20.0)   # exactly at the 10 % samples
    assert curve_width(xs, [1, 10, 100, 10, 1], 0.5) == pytest.approx(2 * 10 * (math.log(2) / math.log(10)))
    assert curve_width(xs, [100, 10, 1, 1, 1], 0.1) is None                   # peak at the end
    assert curve_width(xs, [5, 5, 5, 5, 5], 0.2) is None                      # flat


def test_tile_dof_median_of_informative_tiles():
    xs = np.arange(0, 50, 10.0)
    curves = np.array([[1, 10, 100, 10, 1], [1, 1, 100, 1, 1], [1, 10, 100, 10, 1]], float).T
    assert tile_dof(xs, curves, np.array([True, False, True]), 0.1) == pytest.approx(20.0)
    assert tile_dof(xs, curves, np.array([False, False, False]), 0.1) is None


def test_plan_positions_cover_the_range_with_fewest_frames():
    pos = plan_positions(400, 600, 40, 0.0)
    assert pos == pytest.approx([420, 460, 500, 540, 580])
    pos = plan_positions(400, 600, 40, 0.1)              # step 36: 6 frames
    assert len(pos) == 6 and pos[0] - 400 <= 18 and 600 - pos[-1] <= 18
    gaps = np.diff(pos)
    assert np.allclose(gaps, gaps[0]) and gaps[0] <= 36


@pytest.mark.parametrize("kw, key", [(dict(near=5, far=5), "stack.near"), (dict(near=0, far=1, overlap=0.95), "overlap"),
                                     (dict(near=0, far=1, step=0), "stack.step"),
                                     (dict(near=0, far=1, edge_share=0), "edge_share")])
def test_stack_params_validated(kw, key):
    with pytest.raises(ConfigError, match=key):
        StackParams(**kw)


class TiltedSim(SimulatedSource):
    """The sim chart on a tilted plane: the position where it is sharp runs from
    ``near_focus`` (left edge) to ``far_focus`` (right edge), in vertical strips."""

    def __init__(self, near_focus: float, far_focus: float, strips: int = 40, **kw):
        super().__init__(**kw)
        self.near_focus, self.far_focus, self.strips = near_focus, far_focus, strips

    def focus_at(self, x_frac: float) -> float:
        return self.near_focus + (self.far_focus - self.near_focus) * x_frac

    def render(self, position):
        p, scene = self.params, self.scene
        h, w = scene.shape
        out = np.empty_like(scene)
        pad = int(p.max_blur_px) + 2
        for k in range(self.strips):
            x0, x1 = w * k // self.strips, w * (k + 1) // self.strips
            f = self.focus_at((x0 + x1) / 2 / w)
            r = math.hypot((position - f) * p.blur_px_per_step, p.lens_blur_px)
            a, b = max(0, x0 - pad), min(w, x1 + pad)
            out[:, x0:x1] = defocus(np.ascontiguousarray(scene[:, a:b]), min(r, p.max_blur_px))[:, x0 - a:x1 - a]
        return sensor(out, self._rng, exposure=p.exposure, analogue_gain=p.analogue_gain,
                      full_well_e=p.full_well_e, read_noise_e=p.read_noise_e)


def test_tilted_scene_every_point_in_focus_in_some_frame_with_few_frames():
    """Chart tilted from focus 420 (left of the ROI) to 580 (right): the measured depth of
    focus plans a bracket where every column of the ROI is within the true depth of focus in
    at least one frame, with at most 20 % more frames than the depth of focus demands."""
    sim = TiltedSim(near_focus=340, far_focus=660, width=640, height=480)   # ROI 20..80 %: 404..596
    drive = SimulatedDrive(DriveParams(name="sim", state_file="none"), source=sim)
    drive.open()
    an = FocusAnalyzer(AnalysisParams(use_cnn=False))
    try:
        near, far = sim.focus_at(0.2), sim.focus_at(0.8)
        sp = StackParams(near=near, far=far, overlap=0.1)
        dof, _, _ = probe_dof(drive, drive.source, an, sp)
        assert dof == pytest.approx(DOF_STEPS, rel=0.15), dof
        positions = plan_positions(near, far, dof, sp.overlap)
        demanded = math.ceil((far - near) / DOF_STEPS)
        assert len(positions) <= 1.2 * demanded, (positions, demanded)
        for x in np.linspace(0.2, 0.8, 61):          # every point of the subject
            f = sim.focus_at(x)
            assert min(abs(p - f) for p in positions) <= DOF_STEPS / 2, (x, f, positions)
    finally:
        drive.close()
        an.close()


def test_fuse_picks_the_sharp_half_of_each_frame():
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (128, 160)).astype(np.uint8)
    soft = cv2.GaussianBlur(sharp, (0, 0), 3)
    left = sharp.copy()
    left[:, 80:] = soft[:, 80:]
    right = sharp.copy()
    right[:, :80] = soft[:, :80]
    fused = fuse([left, right])
    err = np.abs(fused.astype(int) - sharp)[8:-8, 8:-8]
    assert err.mean() < 0.25 * np.abs(soft.astype(int) - sharp).mean()
    with pytest.raises(ValueError, match="same size"):
        fuse([left, right[:, :100]])


def test_stack_command_writes_frames_csv_sidecars_and_fused(tmp_path, capsys):
    out = tmp_path / "b"
    code = main(["stack", "--drive", "sim", "--source", "sim", "--size", "320x240", "--near", "440", "--far", "560",
                 "--out", str(out), "--fuse", str(tmp_path / "fused.png"), "--no-cnn", "--json"])
    assert code == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["frames"] == len(res["positions"]) >= 3 and res["depth_of_focus"] > 0
    rows = (out / "sweep.csv").read_text().strip().splitlines()
    assert rows[0].startswith("file,position") and len(rows) == res["frames"] + 1
    side = json.loads((out / "frame_00000.json").read_text())
    assert side["position"] == pytest.approx(res["positions"][0], abs=1e-3) and side["depth_of_focus"] > 0
    img = cv2.imread(str(out / "frame_00000.png"), cv2.IMREAD_UNCHANGED)
    assert img.shape == (240, 320)                          # full resolution of the source
    assert cv2.imread(str(tmp_path / "fused.png"), cv2.IMREAD_UNCHANGED).shape == (240, 320)
    # the frames read as a replay: the positions are in sweep.csv
    assert rows[1].split(",")[1] != ""


def test_stack_command_errors(tmp_path, capsys):
    assert main(["stack", "--drive", "sim", "--near", "600", "--far", "400", "--out", str(tmp_path / "x")]) != 0
    assert "stack.near" in capsys.readouterr().err
    assert main(["stack", "--drive", "sim", "--near", "-50", "--far", "400", "--out", str(tmp_path / "y")]) != 0
    assert "soft limits" in capsys.readouterr().err
