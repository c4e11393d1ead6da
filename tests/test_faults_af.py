"""Issue 14: autofocus never hangs -- every search loop is bounded, whatever the drive's
limits or a replayed sweep's positions look like."""

import contextlib
import signal

import cv2
import pytest

from pifocus.autofocus import AutofocusParams, autofocus
from pifocus.autofocus.base import Strategy
from pifocus.autofocus.engine import _search
from pifocus.autofocus.run import _Run
from pifocus.drive import open_drive
from pifocus.focus import AnalysisParams, FocusAnalyzer


@pytest.fixture(scope="module")
def analyzer():
    return FocusAnalyzer(AnalysisParams(use_cnn=False))


@contextlib.contextmanager
def time_limit(seconds):
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""
    def boom(signum, frame):
        raise TimeoutError(f"did not finish within {seconds} s (an endless loop?)")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("strategy", ["model", "sweep", "continuous"])
def test_fractional_soft_limit_on_a_step_drive_does_not_hang(analyzer, strategy):
    with time_limit(10):
        with open_drive("sim", width=320, height=240, focus_position=321,
                        min_position=50, max_position=224.87) as d:
            r = autofocus(d, analyzer, AutofocusParams(strategy=strategy))
    assert r.frames_used <= 400
    assert all(50 <= p <= 224.87 for p, _ in r.curve)


def test_mistyped_position_in_a_replayed_sweep_does_not_hang(analyzer, tmp_path):
    from pifocus.sources.simulated import SimulatedSource
    src = SimulatedSource(width=240, height=180, focus_position=100, blur_px_per_step=0.05, seed=2)
    src.open()
    rows = ["file,position"]
    for i, pos in enumerate(range(0, 210, 10)):
        src.lens_position = pos
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), src.read().luma)
        rows.append(f"{i:02d}.png,{15000 if pos == 150 else pos}")   # one mistyped position
    (tmp_path / "sweep.csv").write_text("\n".join(rows) + "\n")
    with time_limit(10):
        with open_drive(f"replay:{tmp_path}") as d:
            r = autofocus(d, analyzer, AutofocusParams(strategy="model"))
    assert r.frames_used <= 60


class _Spinner(Strategy):
    """A strategy that asks for the same, already sampled position forever."""

    name = "spinner-test"

    def search(self, run):
        run.here()
        while True:
            run.measure(run.drive.position)


def test_a_search_loop_that_reads_no_frames_is_cut_off(analyzer):
    with time_limit(10):
        with open_drive("sim", width=240, height=180) as d:
            run = _Run(d, d.source, analyzer, AutofocusParams(), max_frames=40)
            fit, target = _search(run, _Spinner(None))
    assert (fit, target) == (None, None)
    assert run.steps == run.max_steps + 1   # cut off by the pass cap, not by frames
