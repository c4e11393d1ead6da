"""The simulated focus ring: a drive over the ``sim`` frame source.

The *hardware* -- :class:`SimRing`: motor step count, lens position, play (backlash),
missed steps, settle frames, hard stops, a home switch and manual turns -- lives on the
:class:`~pifocus.sources.simulated.SimulatedSource` object, so it survives the drive object
being thrown away (the bench's "process kill between moves": a new drive restores its
position from the state file and is checked against :attr:`SimRing.motor`).

Physical model:

* the motor turns ``0 .. range_steps`` (hard stops: a motor driven past them slips, the
  steps are lost, as on a real lens against its end stop);
* the lens follows the motor with ``backlash_steps`` of play: moving up the lens sits
  ``backlash/2`` below the motor, moving down ``backlash/2`` above it;
* a move loses steps with probability ``missed_step_rate`` (up to ``missed_step_max`` of
  them; the motor then stops short of the target -- the drive does not know);
* for ``settle_frames`` frames after a move the camera still shows the lens where it
  was (pipelined frames, ringing);
* the home switch is made while the motor is at or below ``switch_at``;
* :meth:`SimRing.manual_turn` turns the ring by hand (the lens moves, the motor does not).
"""

import logging

import numpy as np

from ..exc import ConfigError
from ..frames import Frame
from ..sources import FrameSource
from . import DriveParams, FocusDrive

log = logging.getLogger(__name__)


class SimRing:
    """The simulated focus mechanics (see the module doc)."""

    def __init__(self, sim, backlash_steps: float = 0.0, missed_step_rate: float = 0.0,
                 missed_step_max: int = 0, settle_frames: int = 0, switch_at: float = 0.0,
                 seed: int = 0):
        if backlash_steps < 0:
            raise ConfigError(f"sim drive: backlash_steps = {backlash_steps!r} is invalid; allowed: >= 0")
        if not 0 <= missed_step_rate <= 1:
            raise ConfigError(f"sim drive: missed_step_rate = {missed_step_rate!r} is invalid; allowed: 0..1")
        if missed_step_max < 0:
            raise ConfigError(f"sim drive: missed_step_max = {missed_step_max!r} is invalid; allowed: >= 0")
        self.sim = sim
        self.range = float(sim.params.range_steps)
        self.backlash = float(backlash_steps)
        self.missed_step_rate = float(missed_step_rate)
        self.missed_step_max = int(missed_step_max)
        self.settle_frames = int(settle_frames)
        self.switch_at = float(switch_at)
        self.rng = np.random.default_rng(seed + 7919)
        self.motor = float(sim.lens_position)
        self.lens = float(sim.lens_position)
        self.turned = 0.0          # manual turns (lens offset the motor knows nothing of)
        self.missed = 0            # steps lost so far
        self.commands = []         # every motor target asked for (for limit checks)
        self._pending = 0          # frames still showing the old lens position
        self._shown = self.lens

    def move(self, target: float, allow_miss: bool = True) -> None:
        """Drive the motor to ``target`` (steps), with play, lost steps and hard stops."""
        self.commands.append(float(target))
        start = self.motor
        delta = float(target) - start
        if allow_miss and delta != 0 and self.missed_step_rate > 0 and self.missed_step_max > 0 \
                and self.rng.random() < self.missed_step_rate:
            lost = int(self.rng.integers(1, self.missed_step_max + 1))
            lost = min(lost, int(abs(delta)))
            self.missed += lost
            delta -= np.sign(delta) * lost
        motor = min(max(start + delta, 0.0), self.range)   # hard stops: the rest slips
        self.motor = motor
        half = self.backlash / 2.0
        if motor > start:
            self.lens = max(self.lens, motor - half)
        elif motor < start:
            self.lens = min(self.lens, motor + half)
        self.lens = min(max(self.lens, 0.0), self.range)
        self._pending = self.settle_frames
        self.sim.lens_position = min(max(self.lens + self.turned, 0.0), self.range)

    def manual_turn(self, delta: float) -> None:
        """Turn the ring by hand by ``delta`` steps (the motor count does not change)."""
        self.turned += float(delta)
        self.sim.lens_position = min(max(self.lens + self.turned, 0.0), self.range)
        self._shown = self.sim.lens_position

    @property
    def switch_active(self) -> bool:
        """The home switch is made (motor at or below ``switch_at``)."""
        return self.motor <= self.switch_at + 1e-9

    def frame_position(self) -> float:
        """Lens position the next frame is taken at (lags for ``settle_frames`` after a move)."""
        if self._pending > 0:
            self._pending -= 1
            return self._shown
        self._shown = float(self.sim.lens_position)
        return self._shown


class SimLensSource(FrameSource):
    """The sim source as seen through the simulated ring (honours settle frames)."""

    def __init__(self, sim, ring: SimRing):
        super().__init__()
        self.sim = sim
        self.ring = ring
        self.name = sim.name

    @property
    def lens_position(self) -> float:
        return float(self.sim.lens_position)

    @property
    def params(self):
        return self.sim.params

    @property
    def still_kinds(self) -> tuple:
        """What the sim can add to a frame (:meth:`request_still`)."""
        return self.sim.still_kinds

    def request_still(self, kind) -> None:
        """Colour stills from the sim behind the ring (:meth:`FrameSource.request_still`)."""
        super().request_still(kind)
        self.sim.request_still(kind)

    def _open(self) -> None:
        self.sim.open()

    def _read(self) -> Frame:
        pos = self.ring.frame_position()
        want = float(self.sim.lens_position)
        if pos != want:
            self.sim.lens_position = pos
            try:
                frame = self.sim.read()
            finally:
                self.sim.lens_position = want
            return frame
        return self.sim.read()

    def _close(self) -> None:
        pass  # the sim belongs to whoever made it (or to the drive)


class SimulatedDrive(FocusDrive):
    """A focus drive over the simulated lens (drive string ``sim``).

    Args:
        params: :class:`~pifocus.drive.DriveParams` (soft limits, backlash compensation,
            approach side, state file ...: the *drive's* idea of the mechanics).
        source: the :class:`~pifocus.sources.simulated.SimulatedSource` to turn; made from
            ``sim_options`` when omitted.
        backlash_steps, missed_step_rate, missed_step_max, switch_at, seed: the simulated
            *hardware* (see :class:`SimRing`); only used the first time a ring is fitted to
            that source.  The ring's settle frames are ``params.settle_frames``.
        **sim_options: :class:`~pifocus.sources.simulated.SimParams` fields for a new source.
    """

    kind = "sim"
    persistent_by_default = False

    def __init__(self, params: DriveParams = DriveParams(), source=None, backlash_steps: float = 0.0,
                 missed_step_rate: float = 0.0, missed_step_max: int = 0, switch_at: float = 0.0,
                 seed: int = 0, **sim_options):
        from ..sources.simulated import SimulatedSource

        if isinstance(source, SimLensSource):
            source = source.sim
        if source is None:
            source = SimulatedSource(**sim_options)
            self._own_source = True
        else:
            if not isinstance(source, SimulatedSource):
                raise ConfigError(f"drive 'sim' turns the simulated lens; the source is {source!r}, use "
                                  "--source sim (or another drive for a real camera)")
            if sim_options:
                raise ConfigError(f"drive 'sim': options {sorted(sim_options)} are for a new sim source, "
                                  "but a source was given")
            self._own_source = False
        ring = getattr(source, "_focus_ring", None)
        if ring is None:
            ring = SimRing(source, backlash_steps=backlash_steps, missed_step_rate=missed_step_rate,
                           missed_step_max=missed_step_max, settle_frames=params.settle_frames,
                           switch_at=switch_at, seed=seed)
            source._focus_ring = ring
            source.lens_position = ring.lens  # stop the automatic focus pull
        self.ring = ring
        self.sim = source
        super().__init__(params, (0.0, float(source.params.range_steps)))
        self.source = SimLensSource(source, ring)

    def default_position(self) -> float:
        return self.ring.motor

    def _open_hw(self) -> None:
        self.source.open()

    def _close_hw(self) -> None:
        if self._own_source:
            self.sim.close()

    def _move_hw(self, start: float, target: float) -> None:
        # The ring's motor may differ from ``start`` (missed steps): a step/dir driver sends
        # target - start pulses, whatever the motor really did.
        self.ring.move(self.ring.motor + (target - start))

    def _raw_step(self, direction: int, steps: int) -> None:
        self.ring.move(self.ring.motor + direction * steps, allow_miss=False)

    def _switch_active(self) -> bool:
        return self.ring.switch_active
