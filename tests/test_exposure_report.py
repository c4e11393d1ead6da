"""Exposure readouts wired into the frame report: frame_exposure on synthetic exposures with
known clipping, the analyzer's report, ``--json`` of run and score, and the sim's metadata."""

import json
import math

import numpy as np
import pytest

from pifocus.cli import main
from pifocus.exc import ConfigError
from pifocus.focus import AnalysisParams, FocusAnalyzer
from pifocus.focus.exposure import ExposureParams, frame_exposure
from pifocus.frames import Frame
from pifocus.sources.simulated import SimulatedSource

ROI = (0.25, 0.25, 0.5, 0.5)


def _frame(**kw):
    """400x400 mid-grey frame; the left quarter of columns clipped white, the top tenth of
    rows (outside the ROI) crushed black."""
    a = np.full((400, 400), 118, np.uint8)
    a[:, :100] = 255
    a[:40, 100:] = 0
    return Frame(a, **kw)


def test_frame_exposure_known_clipping_frame_and_roi():
    fe = frame_exposure(_frame(exposure_us=8000, analogue_gain=4.0), ROI, noise_sigma=2.0)
    s = fe.stats
    assert s.clip_high_pct == pytest.approx(25.0, abs=0.5)
    assert s.clip_low_pct == pytest.approx(7.5, abs=0.5)            # 40 rows x 300 columns
    assert s.clip_high_pct_roi == 0.0 and s.clip_low_pct_roi == 0.0   # ROI is cols/rows 100..300
    assert s.mean_dn_roi == pytest.approx(118) and s.ev_offset_roi == pytest.approx(0.0, abs=1e-6)
    assert s.snr_db == pytest.approx(20 * math.log10(118 / 2.0), abs=0.01)
    assert fe.exposure_us == 8000 and fe.analogue_gain == 4.0 and fe.iso == 400
    assert fe.histogram.shape == (64,) and fe.histogram.sum() == pytest.approx(1.0)
    assert fe.histogram[-1] == pytest.approx(0.25, abs=0.01) and fe.histogram[0] == pytest.approx(0.075, abs=0.01)


def test_frame_exposure_roi_over_the_clipped_band():
    fe = frame_exposure(_frame(), (0.0, 0.5, 0.5, 0.5), noise_sigma=1.0)
    assert fe.stats.clip_high_pct_roi == pytest.approx(50.0, abs=1.0)
    assert fe.iso is None and fe.exposure_us is None


@pytest.mark.parametrize("stops", [-2, -1, 0, 1])
def test_ev_offset_follows_exposure(stops):
    a = np.full((300, 300), int(round(118 * 2.0 ** stops)) if stops < 1 else 236, np.uint8)
    fe = frame_exposure(Frame(a), ROI, noise_sigma=1.0)
    assert fe.stats.ev_offset == pytest.approx(stops, abs=0.03)


def test_sparse_sampling_of_a_large_frame_is_still_accurate():
    """A 4056x3040 frame is read at ~32k samples (bounded cost); the readouts stay within
    a fraction of a percent of the exact values."""
    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, (3040, 4056), dtype=np.uint8)
    fe = frame_exposure(Frame(big), ROI, noise_sigma=1.0)
    exact_hi = 100.0 * np.count_nonzero(big >= 250) / big.size      # ~2.34 %
    assert fe.stats.clip_high_pct == pytest.approx(exact_hi, abs=0.3)
    assert fe.stats.mean_dn == pytest.approx(float(big.mean()), abs=1.5)
    exact = frame_exposure(Frame(big), ROI, noise_sigma=1.0, params=ExposureParams(decimate_px=1, max_samples=1 << 24))
    assert exact.stats.clip_high_pct == pytest.approx(exact_hi)


@pytest.mark.parametrize("kw", [dict(decimate_px=0), dict(histogram_bins=48), dict(clip_high_dn=3, clip_low_dn=5),
                                dict(max_samples=10)])
def test_exposure_params_validated(kw):
    with pytest.raises(ConfigError, match="exposure\\."):
        ExposureParams(**kw)


def test_analyzer_report_carries_exposure_and_metadata():
    with SimulatedSource(width=320, height=240, exposure=4.0, analogue_gain=2.0) as src:
        frame = src.read()
    an = FocusAnalyzer(AnalysisParams(use_cnn=False))
    r = an.analyze(frame)
    assert r.exposure is not None
    assert r.exposure.stats.noise_sigma_dn == pytest.approx(r.noise_sigma_dn)
    assert r.exposure.stats.clip_high_pct > 5.0   # two stops over: the chart's whites clip
    assert r.exposure.analogue_gain == 2.0 and r.exposure.iso == 200
    assert r.exposure.exposure_us == frame.exposure_us
    d = r.to_dict(tiles=False)
    assert "histogram" not in d["exposure"] and d["exposure"]["iso"] == 200
    assert len(r.to_dict(tiles=True)["exposure"]["histogram"]) == 64
    json.dumps(r.to_dict())
    off = FocusAnalyzer(AnalysisParams(use_cnn=False, exposure=False)).analyze(frame)
    assert off.exposure is None and "exposure" not in off.to_dict()


def test_underexposed_sim_reads_negative_ev():
    with SimulatedSource(width=320, height=240, exposure=0.25) as src:
        frame = src.read()
    r = FocusAnalyzer(AnalysisParams(use_cnn=False)).analyze(frame)
    assert -2.6 < r.exposure.stats.ev_offset < -1.4


def test_run_and_score_json_carry_exposure(capsys, tmp_path):
    import cv2
    assert main(["run", "--source", "sim", "--size", "320x240", "--frames", "2", "--json", "--no-cnn"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert lines[0]["exposure"]["iso"] == 100 and "ev_offset_roi" in lines[0]["exposure"]
    cv2.imwrite(str(tmp_path / "a.png"), _frame().luma)
    assert main(["score", str(tmp_path / "a.png"), "--json", "--no-cnn"]) == 0
    obj = json.loads(capsys.readouterr().out.splitlines()[0])
    assert obj["exposure"]["clip_high_pct"] == pytest.approx(25.0, abs=0.5)
    assert len(obj["exposure"]["histogram"]) == 64
