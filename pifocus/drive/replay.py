"""A recorded focus sweep acting as a lens (drive string ``replay:DIR``).

Moving to a position makes the next frame the one recorded nearest that position (and
keeps returning it while the "lens" stands still), so autofocus can be tuned on the bench
on real frames.  The folder is the recorded-sweep format: images plus ``sweep.csv``
(``file,position``...), or images alone in natural order with position = index.

Positions are whatever ``sweep.csv`` recorded (steps, dioptres); the soft limits default
to the first..last recorded position and :attr:`ReplayDrive.resolution` is the smallest gap
between them.
"""

import logging
import os

from ..exc import DriveError, SourceError
from . import DriveParams, FocusDrive

log = logging.getLogger(__name__)


class ReplayDrive(FocusDrive):
    """Replay a recorded sweep as a lens.

    Args:
        folder: the sweep folder.
        params: :class:`~pifocus.drive.DriveParams`.
        **source_options: options for :class:`~pifocus.sources.recorded.RecordedSource`
            (e.g. ``width``/``height`` to resize frames).

    Raises:
        DriveError: the folder does not exist, holds no frames, or has no usable positions.
    """

    kind = "replay"
    persistent_by_default = False
    integer_positions = False
    absolute_positioning = True  # a move sets the position absolutely

    def __init__(self, folder: str, params: DriveParams = DriveParams(), **source_options):
        from ..sources.recorded import RecordedSource

        folder = os.path.expanduser(str(folder))
        if not os.path.isdir(folder):
            raise DriveError(f"drive 'replay:{folder}': no such folder; give a recorded sweep folder "
                             "(images + sweep.csv, e.g. from `pifocus record --drive ... --sweep ...`)")
        try:
            src = RecordedSource(folder, **source_options)
        except SourceError as e:
            raise DriveError(f"drive 'replay:{folder}': {e}") from e
        if src.is_video:
            raise DriveError(f"drive 'replay:{folder}': a video cannot be replayed as a lens; give a "
                             "folder of images (with sweep.csv)")
        positions = [float(p) for p in src.positions]
        distinct = sorted(set(positions))
        if len(distinct) < 2:
            raise DriveError(f"drive 'replay:{folder}': the sweep has {len(positions)} frame(s) at "
                             f"{len(distinct)} distinct position(s); a sweep needs at least two positions "
                             "(check the position column of sweep.csv)")
        self.positions = positions
        self._distinct = distinct
        self._unreadable: set = set()   # positions whose frames do not decode
        self.folder = folder
        gaps = [b - a for a, b in zip(distinct, distinct[1:])]
        self.resolution = float(min(gaps))
        # Integer positions when the sweep is in whole steps (natural-order folders: indices).
        self.integer_positions = all(float(p).is_integer() for p in distinct) and self.resolution >= 1
        super().__init__(params, (distinct[0], distinct[-1]))
        self.source = src

    def default_position(self) -> float:
        return self.positions[0]

    def clamp(self, target: float) -> float:
        """The recorded position nearest ``target`` within the soft limits: the "lens" only
        stops where a frame was recorded, so positions in curves are the frames' own.
        Positions whose frames turned out unreadable are not offered."""
        lo, hi = self.limits
        t = min(max(float(target), lo), hi)
        inside = [p for p in self._distinct if lo - 1e-9 <= p <= hi + 1e-9] or self._distinct
        good = [p for p in inside if p not in self._unreadable] or inside
        return min(good, key=lambda p: (abs(p - t), p))

    def move_to(self, target: float, approach=None, overshoot=None) -> float:
        """Move to the readable recorded frame nearest ``target`` (see
        :meth:`FocusDrive.move_to`): a frame that does not decode is found here, before the
        move, so the position reported -- and every AF sample labelled with it -- is the
        position of the frame actually shown, never that of a corrupt one."""
        if self._opened:
            for _ in range(len(self._distinct)):
                t = self.clamp(target)
                if self._position_readable(t):
                    break
                self._unreadable.add(t)
                log.warning("replay %s: the frame at position %g is unreadable; the lens stops at the "
                            "nearest readable one instead", self.folder, t)
        return super().move_to(target, approach=approach, overshoot=overshoot)

    def _position_readable(self, position: float) -> bool:
        """True when some frame recorded at ``position`` decodes."""
        idx = [i for i, p in enumerate(self.positions) if p == position]
        return any(self.source.readable(i) for i in idx)

    def nearest_index(self, position: float) -> int:
        """Index of the recorded frame nearest ``position``."""
        return self.source.index_nearest(position)

    def _open_hw(self) -> None:
        self.source.open()

    def _restore(self) -> None:
        super()._restore()
        # The "lens" shows the frame nearest the restored position.
        self.source.lens_position = self._position

    def _close_hw(self) -> None:
        self.source.close()

    def _move_hw(self, start: float, target: float) -> None:
        self.source.lens_position = target  # seek to the nearest frame and hold it
