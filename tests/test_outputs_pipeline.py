"""The outputs driven by the real pipeline: simulated focus pull -> analyzer -> mock pins."""

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from pifocus.exc import SourceDisconnected
from pifocus.focus import AnalysisParams, FocusAnalyzer
from pifocus.outputs import OutputsParams, ShutterTrigger, make_outputs
from pifocus.pipeline import Pipeline, ReconnectParams
from pifocus.sources import FrameSource, open_source


@pytest.fixture
def factory():
    """A fresh mock pin factory with PWM-capable pins."""
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.close()
    f.reset()


def small_sim(**kw):
    return open_source("sim", width=480, height=360, pull_frames=60, **kw)


class DropOnce(FrameSource):
    """A simulated camera that drops out once, at frame ``drop_at``."""

    name = "drop-once"

    def __init__(self, drop_at: int):
        super().__init__()
        self.inner = small_sim()
        self.drop_at = drop_at
        self.dropped = False

    def _open(self):
        self.inner.open()

    def _read(self):
        if not self.dropped and self._index == self.drop_at:
            self.dropped = True
            raise SourceDisconnected("cable pulled (test)")
        return self.inner.read()

    def _close(self):
        pass  # keep the simulated lens where it was


def test_focus_pull_drives_led_meter_and_shutter(factory):
    params = OutputsParams(led_pin=17, meter_pin=18, shutter_pin=5, shutter_pulse_s=0.01,
                           shutter_rearm_s=0.0)
    outputs = make_outputs(params, pin_factory=factory)
    pipe = Pipeline(small_sim(), FocusAnalyzer(AnalysisParams(use_cnn=False)), outputs)
    try:
        assert pipe.run(max_frames=120) == 120  # two passes through focus
    finally:
        pipe.close()
    led = [s.state for s in factory.pin(17).states]
    assert led.count(1.0) >= 2, led  # on near focus, off away from it, twice
    meter = [s.state for s in factory.pin(18).states]
    assert max(meter) == pytest.approx(1.0) and min(meter[1:]) < 0.5
    assert outputs.find(ShutterTrigger).fired >= 2  # once per acquisition
    # pipeline.close() closed the outputs: everything off
    assert [factory.pin(p).state for p in (17, 18, 5)] == [0, 0, 0]


def test_camera_dropout_shows_led_error_pattern(factory):
    params = OutputsParams(led_pin=17, error_on_s=0.02, error_off_s=0.03, error_pause_s=0.05)
    outputs = make_outputs(params, pin_factory=factory)
    calls = []
    real = outputs.set_error
    outputs.set_error = lambda on: (calls.append(on), real(on))
    pipe = Pipeline(DropOnce(drop_at=5), FocusAnalyzer(AnalysisParams(use_cnn=False)), outputs,
                    reconnect=ReconnectParams(initial_s=0.25, max_s=0.25))
    led = factory.pin(17)
    try:
        assert pipe.run(max_frames=10) == 10
        # the LED flashed while the camera was away: >= 2 rising edges in ~0.25 s
        flashes = sum(1 for s in led.states if s.state == 1.0)
        assert calls == [True, False]
        assert flashes >= 2
        assert pipe.reconnects == 1 and not outputs.indicators[0].error
    finally:
        pipe.close()
    assert led.state == 0
