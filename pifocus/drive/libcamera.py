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
beyond handing focus back to the camera's default on ``close()``.

When a move takes effect
    ``set_controls`` does not act at once.  picamera2 puts the controls on the next request
    it recycles (``Picamera2.recycle_request``), which joins the back of libcamera's queue
    behind the ``buffer_count - 1`` requests already in flight; the IPA applies
    ``LensPosition`` after that request's frame was exposed, yet reports the new position in
    that frame's metadata; and the lens slews at most ``max_slew`` per frame (1.5 D on the
    Camera Module 3, ``af.cpp`` ``Af::updateLensPosition``).  So after a move
    :meth:`LibcameraDrive.wait_settled` reads frames (through the caller, who counts them)
    until the metadata ``LensPosition`` equals the target, and then ``pipeline_frames`` (1:
    the frame that reported it was exposed before the lens moved) plus ``settle_frames`` more
    are dropped by the autofocus run before a frame is scored.
"""

import logging
import math
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
    absolute_positioning = True  # a move sets the position absolutely
    #: frames to drop after the metadata first reports the target: that frame was exposed
    #: before the IPA moved the lens (af.cpp Af::prepare reports the position it sets)
    pipeline_frames = 1
    persistent_by_default = False  # the camera reports its lens position itself
    #: most dioptres the lens moves per frame (imx708 tuning, rpi.af speeds.normal.max_slew)
    max_slew = 1.5

    def __init__(self, params: DriveParams = DriveParams(name="libcamera"), source=None):
        if source is None:
            raise DriveError("drive 'libcamera' needs the camera: use it with --source picamera2 "
                             "(the Camera Module 3's lens is driven through the camera)")
        self._src = source if hasattr(source, "request_fresh") or not hasattr(source, "camera_controls") else None
        self._cam_obj = None if self._src is not None else source
        super().__init__(params, (0.0, 1.0))  # real range known once the camera is open
        self.source = self._src
        self._range_known = False
        self._awaiting = None     # (start, target) of a move not yet waited for
        #: frames between a move and the first frame whose metadata showed it (measured)
        self.queue_depth = None
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
        self._hook(self._src)

    def open(self) -> "LibcameraDrive":
        """Open (see :meth:`FocusDrive.open`), then put the lens where the drive believes it
        is: a freshly opened camera has it at the tuning default."""
        was_open = not self.closed
        super().open()
        if not was_open:
            self._resend()
        return self

    def _hook(self, src) -> None:
        add = getattr(src, "add_open_hook", None)
        if add is not None:
            add(self._on_source_open)

    def _unhook(self, src) -> None:
        remove = getattr(src, "remove_open_hook", None)
        if remove is not None:
            remove(self._on_source_open)

    def _resend(self) -> None:
        """Manual focus and the drive's position, again (after a camera (re)open)."""
        if self._position is None:
            return
        self._set({"AfMode": 0, "LensPosition": float(self._position)})
        self._awaiting = (self.default_position(), float(self._position))

    def _on_source_open(self, src) -> None:
        """The camera was reopened (reconnect): its lens is back at the default."""
        if not self.closed:
            log.info("drive libcamera: camera reopened; lens back to %.3g D", self._position)
            self._resend()

    def rebind(self, source) -> None:
        """Drive the lens of ``source`` (an open ``Picamera2Source``) from now on -- after a
        config reload replaced the camera source -- and put the lens at the drive's position.

        Raises:
            DriveError: the new camera has no lens control.
        """
        if source is self._src:
            return
        self._unhook(self._src)
        self._src = self.source = source
        self._cam_obj = None
        self._read_range()
        self._hook(source)
        if not self.closed:
            self._resend()

    def default_position(self) -> float:
        return getattr(self, "_default", self.native_range[0])

    def _set(self, controls) -> None:
        if self._src is not None and hasattr(self._src, "set_controls"):
            self._src.set_controls(controls)
        else:
            self.camera.set_controls(controls)

    def _move_hw(self, start: float, target: float) -> None:
        self._set({"LensPosition": float(target)})
        first = start if self._awaiting is None else self._awaiting[0]
        self._awaiting = (float(first), float(target))
        if self._src is not None and hasattr(self._src, "request_fresh"):
            self._src.request_fresh()
        else:  # a bare Picamera2: no frames to watch; the speed limit spaces big jumps
            time.sleep(min(abs(target - start) / self.params.speed, 0.2))

    def _buffers(self) -> int:
        return int(getattr(self._src, "buffer_count", None) or 6)

    @property
    def wait_frames(self) -> int:
        """Most frames :meth:`wait_settled` reads for one move: the request queue, a slew over
        the whole range, and a margin."""
        lo, hi = self.native_range
        return self._buffers() + int(math.ceil((hi - lo) / self.max_slew)) + 4

    def wait_settled(self, read) -> int:
        """Read frames with ``read()`` until the camera's metadata reports the lens at the
        last move's target (see the module doc); returns the frames read (0 when no move is
        pending).  The caller counts them (autofocus charges them to its frame budget).

        A camera that reports no ``LensPosition`` gets ``buffer_count`` frames (its request
        queue) instead.

        Raises:
            DriveError: the metadata did not reach the target within the frames a move can
                take (queue + slew + margin).
        """
        pending, self._awaiting = self._awaiting, None
        if pending is None:
            return 0
        start, target = pending
        tol = max(self.resolution / 2, 1e-3)
        limit = self._buffers() + int(math.ceil(abs(target - start) / self.max_slew)) + 4
        n, changed = 0, None
        last = None
        while n < limit:
            frame = read()
            n += 1
            last = getattr(frame, "lens_position", None)
            if last is None:
                if n >= self._buffers():
                    return n
                continue
            if changed is None and abs(last - start) > tol:
                changed = n
            if abs(last - target) <= tol:
                self.queue_depth = changed if changed is not None else n
                return n
        raise DriveError(f"drive 'libcamera': the camera's LensPosition metadata is {last} after {n} "
                         f"frames, not the target {target:g} D; the lens is not following (AfMode "
                         "not manual, another program setting it, or a camera without a lens driver)")

    def _deenergize(self) -> None:
        pass  # the camera keeps the lens where it is; nothing to power down from here

    def _close_hw(self) -> None:
        self._unhook(self._src)  # the camera belongs to the source
