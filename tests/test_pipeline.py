"""The live loop: listeners, end of recordings, camera dropout and recovery."""

import threading
import time

import numpy as np
import pytest

from pifocus.exc import SourceDisconnected, SourceError
from pifocus.focus import AnalysisParams, FocusAnalyzer
from pifocus.frames import Frame
from pifocus.pipeline import Pipeline, ReconnectParams
from pifocus.sources import FrameSource
from pifocus.sources.simulated import SimulatedSource


class FlakySource(FrameSource):
    """Gives frames, drops out after ``drop_after``, refuses ``failed_opens`` reopens, then recovers."""

    name = "flaky"

    def __init__(self, drop_after=3, failed_opens=2):
        super().__init__()
        self.drop_after, self.failed_opens = drop_after, failed_opens
        self.opens = 0
        self.dropped = False
        self.sim = SimulatedSource(width=160, height=120)

    def _open(self):
        self.opens += 1
        if self.dropped and self.failed_opens > 0:
            self.failed_opens -= 1
            raise SourceError("camera not found")

    def _read(self):
        if not self.dropped and self._index == self.drop_after:
            self.dropped = True
            raise SourceDisconnected("frame timeout")
        self.sim.lens_position = 500
        return Frame(self.sim.render(500), index=self._index)


class Recorder:
    """Stands in for an OutputGroup: records what the pipeline asked of the outputs."""

    def __init__(self):
        self.updates, self.errors, self.closed = 0, [], False

    def update(self, report):
        self.updates += 1

    def set_error(self, on):
        self.errors.append(on)

    def close(self):
        self.closed = True


def analyzer():
    return FocusAnalyzer(AnalysisParams(use_cnn=False))


def test_camera_dropout_is_reopened_with_backoff_and_resumes():
    src, out = FlakySource(drop_after=3, failed_opens=2), Recorder()
    p = Pipeline(src, analyzer(), out, ReconnectParams(initial_s=0.01, max_s=0.05, factor=2.0))
    t0 = time.monotonic()
    done = p.run(max_frames=8)
    assert done == 8 and out.updates == 8
    assert src.opens == 1 + 3  # first open, two refused, one that worked
    assert p.reconnects == 1 and p.error is None
    assert out.errors == [True, False]  # error pattern while lost, cleared after
    assert time.monotonic() - t0 >= 0.01 + 0.02 + 0.04 - 0.005  # backoff grew
    p.close()
    assert out.closed


def test_gives_up_after_max_attempts():
    src = FlakySource(drop_after=1, failed_opens=100)
    p = Pipeline(src, analyzer(), Recorder(), ReconnectParams(initial_s=0.001, max_s=0.002, max_attempts=3))
    with pytest.raises(SourceError, match="did not come back"):
        p.run(max_frames=5)


def test_stop_from_another_thread_interrupts_backoff():
    src = FlakySource(drop_after=1, failed_opens=10 ** 6)
    p = Pipeline(src, analyzer(), Recorder(), ReconnectParams(initial_s=5.0, max_s=5.0))
    threading.Timer(0.2, p.stop).start()
    t0 = time.monotonic()
    p.run()
    assert time.monotonic() - t0 < 2.0


def test_listeners_see_every_frame_and_a_broken_one_does_not_stop_the_loop():
    seen = []
    p = Pipeline(SimulatedSource(width=160, height=120), analyzer())
    p.add_listener(lambda f, r: seen.append((f.index, r.frame_index)))
    p.add_listener(lambda f, r: 1 / 0)
    assert p.run(max_frames=4) == 4
    assert seen == [(i, i) for i in range(4)]
    assert p.last_report is not None and p.fps > 0


def test_finite_source_ends_the_run(tmp_path):
    import cv2
    from pifocus.sources.recorded import RecordedSource
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((64, 64), 100 + i, np.uint8))
    p = Pipeline(RecordedSource(str(tmp_path)), analyzer())
    assert p.run() == 3
