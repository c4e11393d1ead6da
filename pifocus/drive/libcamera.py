"""Camera Module 3 (or any libcamera lens) through the ``LensPosition`` control
(drive string ``libcamera``).

The lens belongs to the camera, so this drive needs the running camera: give
:func:`~pifocus.drive.open_drive` the picamera2 frame source (``Picamera2Source``, whose
``camera`` attribute is the ``Picamera2`` object while open) or a ``Picamera2`` object
itself.  Nothing here imports picamera2: the camera object is handed in, and the only
libcamera knowledge needed is the control names (``AfMode`` = 0 manual, ``LensPosition``
in dioptres, range from ``camera_controls["LensPosition"]``).

Positions are dioptres (1/m): 0 = infinity, larger = closer; the Camera Module 3's range is
about 0..15.  There is no backlash (voice coil), no homing and nothing to de-energize
beyond handing focus back to the camera's default on ``close()``.  After a move the next
frame is requested fresh (``request_fresh``) and ``settle_frames`` (default 2 for this
drive via AF) lets the VCM settle.
"""

import logging
import time

from ..exc import DriveError
from . import DriveParams, FocusDrive

log = logging.getLogger(__name__)


class LibcameraDrive(FocusDrive):
    """The lens of a libcamera camera, in dioptres.

    Args:
        params: :class:`~pifocus.drive.DriveParams`.
        source: a ``Picamera2Source`` (opened or not; it is opened by :meth:`open`) or a
            Picamera2-like object with ``camera_controls`` and ``set_controls()``.
    """

    kind = "libcamera"
    units = "dioptres"
    resolution = 0.01
    integer_positions = False
    pipeline_frames = 1  # LensPosition lands a frame after the request that carries it
    persistent_by_default = False  # the camera reports its lens position itself

    def __init__(self, params: DriveParams = DriveParams(name="libcamera"), source=None):
        if source is None:
            raise DriveError("drive 'libcamera' needs the camera: use it with --source picamera2 "
                             "(the Camera Module 3's lens is driven through the camera)")
        self._src = source if hasattr(source, "request_fresh") or not hasattr(source, "camera_controls") else None
        self._cam_obj = None if self._src is not None else source
        super().__init__(params, (0.0, 1.0))  # real range known once the camera is open
        self.source = self._src
        self._range_known = False
        if self._cam_obj is not None or getattr(self._src, "camera", None) is not None:
            self._read_range()

    @property
    def limits(self):
        """Soft limits; the camera's LensPosition range is read (opening the camera) first."""
        if not self._range_known:
            self.open()
        return super().limits

    def _read_range(self) -> None:
        controls = getattr(self.camera, "camera_controls", {}) or {}
        lim = controls.get("LensPosition")
        if lim is None:
            raise DriveError("drive 'libcamera': this camera has no LensPosition control (fixed-focus "
                             "lens, e.g. HQ Camera); use a stepper or uln2003 drive on its focus ring")
        lo, hi = float(lim[0]), float(lim[1])
        if not hi > lo:
            raise DriveError(f"drive 'libcamera': the camera reports LensPosition limits {lo}..{hi}; "
                             "nothing to drive")
        self.native_range = (lo, hi)
        self._default = float(lim[2]) if len(lim) > 2 and lim[2] is not None else lo
        self._range_known = True

    @property
    def camera(self):
        """The Picamera2 object."""
        if self._cam_obj is not None:
            return self._cam_obj
        cam = getattr(self._src, "camera", None)
        if cam is None:
            raise DriveError(f"drive 'libcamera': the source {self._src!r} has no open camera; open it first")
        return cam

    def _open_hw(self) -> None:
        if self._src is not None and getattr(self._src, "closed", False):
            self._src.open()
        self._read_range()
        self._set({"AfMode": 0})  # manual focus: we own LensPosition now

    def default_position(self) -> float:
        return getattr(self, "_default", self.native_range[0])

    def _set(self, controls) -> None:
        if self._src is not None and hasattr(self._src, "set_controls"):
            self._src.set_controls(controls)
        else:
            self.camera.set_controls(controls)

    def _move_hw(self, start: float, target: float) -> None:
        self._set({"LensPosition": float(target)})
        if self._src is not None and hasattr(self._src, "request_fresh"):
            self._src.request_fresh()
        # The VCM moves in a few ms at most; the speed limit spaces big jumps.
        time.sleep(min(abs(target - start) / self.params.speed, 0.2))

    def _deenergize(self) -> None:
        pass  # the camera keeps the lens where it is; nothing to power down from here

    def _close_hw(self) -> None:
        pass  # the camera belongs to the source
