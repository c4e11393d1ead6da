"""Raspberry Pi cameras (HQ Camera IMX477, Camera Module 3 IMX708, ...) through picamera2.

``picamera2`` is imported only inside :meth:`Picamera2Source._open` (it comes from apt, not
pip, and does not exist on a PC): importing this module always works; opening the source
without picamera2 raises :class:`~pifocus.exc.SourceError` with the install hint.

How frames are taken
--------------------
* A *video* configuration with one ``YUV420`` main stream (no preview, no encoder).  In
  YUV420 the Y plane comes first: the mapped buffer is an array of shape
  ``(h * 3 // 2, stride)`` and the luma is the view ``buf[:h, :w]`` -- no conversion.
* :meth:`Picamera2.capture_request` gives the frame together with its metadata
  (``SensorTimestamp``, ``LensPosition``, ``ExposureTime``, ``AnalogueGain``, ``FocusFoM``...).
  The pixels are mapped with ``picamera2.MappedArray`` (a view of the dma-buf).  Note that
  ``request.make_array("main")`` / ``capture_array`` would *copy the whole* YUV buffer
  (``make_buffer`` is ``np.array(mmap)``), which is what this source avoids.

Zero copy and buffer lifetime (``zero_copy``)
    A view into a camera buffer is valid only while its request is held: once released the
    camera refills that buffer.  Zero copy also needs picamera2's ``DmaAllocator`` (current
    Raspberry Pi OS), which keeps the buffers mapped; with older picamera2 versions, which
    unmap on leaving ``MappedArray``, the source falls back to copying (logged once).  With ``zero_copy=True`` (default) the source keeps the request
    of the frame it returned and releases it at the start of the *next* ``read()`` (or on
    ``close()``).  So ``Frame.luma`` is valid until the next ``read()`` -- exactly the
    contract of :class:`~pifocus.frames.Frame` ("copy it if you keep it").  Cost: one of the
    ``buffer_count`` buffers is always out of the camera's queue (hence ``buffer_count >= 3``).
    With ``zero_copy=False`` the Y plane of the (ROI-cropped) frame is copied (``w*h`` bytes,
    about 3 MB / ~1 ms for 2028x1520 on a Pi 4) and the request released at once; use it when
    frames are handed to another thread that keeps them.

    On ``close()`` picamera2 closes every buffer's mmap (``Picamera2.close()`` -> ``del
    self.allocator`` -> ``DmaAllocator.close()``); a numpy view still alive then makes
    ``mmap.close()`` raise ``BufferError`` inside ``__del__`` and the dma-buf fds stay open
    for good (one camera's worth per reconnect).  So before closing the camera the source
    replaces the luma of the last frame it lent out (the one ``Pipeline.last_frame`` keeps) by
    a copy: a frame kept across ``close()`` stays readable and owns its pixels.

Sensor mode and frame rate
    :func:`choose_sensor_mode` picks a mode from ``Picamera2.sensor_modes``: an explicit
    ``sensor_mode`` (index, ``"WxH"`` or ``(w, h)``), else the mode that reaches ``fps`` and
    covers ``width x height`` with the widest field of view, and among those the smallest (the
    binned one: faster readout, less noise).  HQ Camera: 2028x1080 @ 50, 2028x1520 @ 40,
    1332x990 @ 120, 4056x3040 @ 10 fps.  ``fps`` sets ``FrameDurationLimits`` to a fixed
    frame duration; without it picamera2's video default (30 fps, or the mode's maximum if
    lower) applies.

High-resolution ROI (``scaler_crop``)
    A normalized ``(x, y, w, h)`` rectangle of the field of view is turned into the
    ``ScalerCrop`` control in sensor pixels (within the mode's crop limits, else
    ``ScalerCropMaximum`` / ``PixelArraySize`` from ``camera_properties``).  Without
    ``width``/``height`` the output size is the crop at the mode's own pixel scale, so e.g. a
    4056x3040 mode with ``scaler_crop=(0.375, 0.375, 0.25, 0.25)`` gives 1014x760 frames of
    native sensor pixels -- the detail focusing needs, at a fraction of the full-frame cost.

Colour and DNG stills
    After :meth:`~pifocus.sources.FrameSource.request_still` each frame also carries its colour
    image (``Frame.color_bgr``: ``request.make_array("main")`` -- a copy of the whole YUV420
    buffer -- converted with the matrix and range of the configured colour space: picamera2's
    video default is Rec709, limited range, from 1280x720 up and SMPTE170M (BT.601, limited)
    below; :func:`~.picamera2_config.yuv420_to_bgr`) and, with ``"dng"`` and a raw
    stream (``raw=True``), its DNG bytes (``request.save_dng`` into a ``BytesIO``), both taken
    before the request is released (:func:`~.picamera2_stills.still_of`).  A failed still is logged and noted
    in ``Frame.extra["StillError"]``; the live frame is not lost.

Luma range
    picamera2's video default colour space (Rec709 from 1280x720 up, SMPTE170M below) is
    *limited* range: the Y plane would run 16..235, a clipped highlight reading about 235 DN,
    so the exposure readouts (clipping at 250 DN) and the RGB LED's "overexposed" pattern
    would never fire on the rig.  The video configuration therefore asks for
    ``libcamera.ColorSpace.Sycc()`` (full-range BT.601, what picamera2's still and preview
    configurations use: the main stream is never H.264-encoded here), and reads back the
    colour space libcamera validated (``camera_config["colour_space"]``).  If libcamera kept
    a limited range anyway, every frame's luma is expanded to 0..255
    (:data:`~.picamera2_config.LIMITED_TO_FULL`; a copy per frame, so no zero copy then).

The lens (``AfMode``, ``LensPosition``) is left to the focus drive (``drive/libcamera.py``),
which uses :meth:`Picamera2Source.set_controls`.

Mode choice, ``ScalerCrop``, output size, control mapping and option checks are pure functions
in :mod:`pifocus.sources.picamera2_config` (re-exported here: :func:`choose_sensor_mode`,
:func:`describe_modes`, :func:`scaler_crop_rect`); what is taken from a held request for a
colour or DNG still, and the colour space asked of libcamera, in
:mod:`pifocus.sources.picamera2_stills`; this module is the adapter that talks to picamera2:
open, configure, capture, buffer lifetime, close.
"""

import inspect
import logging
import time
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..exc import ConfigError, SourceDisconnected, SourceError, SourceNotFound
from ..frames import Frame
from . import FrameSource
from .picamera2_config import (Rect, camera_controls, check_options, check_roi, choose_sensor_mode,
                               configured_crop, describe_modes, full_field, noise_reduction_mode,
                               plan_output, read_timeout, round_even, scaler_crop_rect,
                               video_config_kwargs)
from .picamera2_stills import full_range, full_range_colour_space, kept_limited_range, still_or_error

log = logging.getLogger(__name__)

__all__ = ["Picamera2Source", "INSTALL_HINT", "EXTRA_METADATA", "Rect", "choose_sensor_mode",
           "describe_modes", "scaler_crop_rect"]

INSTALL_HINT = ("picamera2 is not importable: on Raspberry Pi OS install it with "
                "`sudo apt install python3-picamera2` and run pifocus from the system Python or a "
                "venv made with `python3 -m venv --system-site-packages` (picamera2 cannot be "
                "pip-installed on a PC; use --source sim, a folder or opencv:0 there)")

#: metadata keys copied into ``Frame.extra`` when the camera reports them
EXTRA_METADATA = ("FocusFoM", "DigitalGain", "Lux", "FrameDuration", "ColourTemperature",
                  "SensorTemperature", "AfState", "LensPosition")


class _NoMap:
    """Stands in for a MappedArray that was never entered (nothing to unmap)."""

    def __exit__(self, *exc):
        return None


def _safe_close(cam) -> None:
    """Stop and close a camera that failed to configure or start; errors only logged."""
    for step in ("stop", "close"):
        try:
            getattr(cam, step)()
        except Exception:
            log.debug("picamera2 %s failed while cleaning up", step, exc_info=True)


class Picamera2Source(FrameSource):
    """Luma frames and per-frame metadata from a Raspberry Pi camera (``picamera2[:N]``).

    Args:
        camera: camera number (0 = first; see ``rpicam-hello --list-cameras``).
        width, height: output size in pixels (default: the sensor mode's size, or the
            ``scaler_crop`` at the mode's pixel scale).  Rounded to even numbers.
        sensor_mode: force a sensor mode: index into ``Picamera2.sensor_modes``, ``"WxH"`` or
            ``(w, h)``.  Default: chosen by :func:`choose_sensor_mode`.
        fps: fixed frame rate (frames/s) via ``FrameDurationLimits``.
        exposure_us: fixed exposure time in microseconds (``ExposureTime``); default auto.
        analogue_gain: fixed analogue gain (``AnalogueGain``, 1.0 = base ISO); default auto.
            With both fixed, auto exposure is switched off.
        scaler_crop: high-resolution ROI ``(x, y, w, h)`` in normalized coordinates of the
            mode's field of view -> ``ScalerCrop``.
        buffer_count: camera buffers (3..32; one stays with the last frame when ``zero_copy``).
        zero_copy: return the Y plane as a view into the camera buffer, valid until the next
            ``read()`` (see the module doc); ``False`` copies it and releases the buffer at once.
        queue: let picamera2 keep a completed frame ready (lower latency, but that frame may
            predate a lens move); default ``False``: each read waits for a new frame.
        timeout_s: how long a read waits for a frame before the camera counts as lost
            (:class:`SourceDisconnected`); default: 2 s or 4 frame times, whichever is longer.
        controls: further libcamera controls to set at start (e.g. ``{"AfMode": 0}``).
        noise_reduction: the ISP's denoising (``NoiseReductionMode``): ``"off"`` (default:
            picamera2's video default ``"fast"`` smooths the fine detail focus is judged on),
            ``"fast"``, ``"high_quality"``, ``"minimal"``, ``"zsl"``.
        raw: also configure a ``"raw"`` stream for DNG stills (see the module doc); ``[web]
            capture_format = "dng"`` turns it on for the service.

    Raises:
        ConfigError: an invalid parameter (at construction), or a sensor mode / frame rate the
            camera cannot do (on open).
        SourceError: (on open) picamera2 missing (with the install hint) or the camera cannot
            be opened / configured.
    """

    def __init__(self, camera: int = 0, width: Optional[int] = None, height: Optional[int] = None,
                 sensor_mode: Union[None, int, str, Sequence[int]] = None, fps: Optional[float] = None,
                 exposure_us: Optional[int] = None, analogue_gain: Optional[float] = None,
                 scaler_crop: Optional[Sequence[float]] = None, buffer_count: int = 4,
                 zero_copy: bool = True, queue: bool = False, timeout_s: Optional[float] = None,
                 controls: Optional[Dict[str, Any]] = None, noise_reduction: str = "off",
                 raw: bool = False):
        super().__init__()
        self.raw = raw
        self.still_kinds = ("color", "dng") if raw else ("color",)
        check_options(camera, width, height, fps, exposure_us, analogue_gain, buffer_count, zero_copy,
                      timeout_s, controls, raw)
        self.camera_num = camera
        self.name = f"picamera2:{camera}"
        self.width, self.height = ((round_even(width), round_even(height)) if width is not None
                                   else (None, None))
        self.sensor_mode_request = sensor_mode
        self.fps = float(fps) if fps is not None else None
        self.exposure_us = int(exposure_us) if exposure_us is not None else None
        self.analogue_gain = float(analogue_gain) if analogue_gain is not None else None
        self.roi = check_roi(scaler_crop) if scaler_crop is not None else None
        self.buffer_count = buffer_count
        self.zero_copy = bool(zero_copy)
        self.queue = bool(queue)
        self.timeout_s = float(timeout_s) if timeout_s is not None else None
        self.extra_controls = dict(controls or {})
        self.noise_reduction = noise_reduction_mode(noise_reduction)
        #: the picamera2.Picamera2 object while open (for drives that need it), else None
        self.camera = None
        #: the chosen sensor mode (dict from Picamera2.sensor_modes), after open
        self.sensor_mode: Optional[Dict] = None
        #: output (w, h) actually configured, after open
        self.output_size: Optional[Tuple[int, int]] = None
        #: ScalerCrop rectangle in sensor pixels, when scaler_crop is used
        self.scaler_crop: Optional[Rect] = None
        #: metadata dict of the last frame
        self.last_metadata: Dict[str, Any] = {}
        self._held = None        # (request, mapped) of the last zero-copy frame
        self._lent = None        # the last Frame returned with a zero-copy luma
        self._flush_next = False
        self._capture_kwargs: Dict[str, bool] = {}
        self._mapped_array = None
        self._zero_copy_active = False
        self._limited_range = False
        self._open_hooks = []

    # -- public extras ------------------------------------------------------------------
    @property
    def lens_position(self) -> Optional[float]:
        """Lens position (dioptres) the camera reported with the last frame, or None.

        Setting it (Camera Module 3 and other libcamera lenses) switches autofocus to manual
        (``AfMode`` 0) and sets ``LensPosition`` in dioptres; the next read then waits for a frame
        exposed after the call (:meth:`request_fresh`).  The lens needs a few frames to settle:
        the drive decides how many to drop.
        """
        return self.last_metadata.get("LensPosition")

    @lens_position.setter
    def lens_position(self, dioptres: float) -> None:
        self.set_controls({"AfMode": 0, "LensPosition": float(dioptres)})
        self.request_fresh()

    def set_controls(self, controls: Dict[str, Any]) -> None:
        """Set libcamera controls on the running camera (``AfMode``, ``LensPosition``...).

        Raises:
            SourceError: the camera is not open.
        """
        if self.camera is None:
            raise SourceError(f"{self.name}: not open; open the source before setting controls")
        self.camera.set_controls(dict(controls))

    def add_open_hook(self, fn) -> None:
        """Call ``fn(source)`` after every (re)open, once the camera runs.  A reopened camera
        starts from its defaults (the Camera Module 3's lens at the tuning default, 1.0 D):
        the libcamera drive uses this to put its lens position back."""
        if fn not in self._open_hooks:
            self._open_hooks.append(fn)

    def remove_open_hook(self, fn) -> None:
        """Undo :meth:`add_open_hook` (no error when ``fn`` is not registered)."""
        if fn in self._open_hooks:
            self._open_hooks.remove(fn)

    def request_fresh(self) -> None:
        """Make the next :meth:`read` return a frame whose exposure started after this call
        (``capture_request(flush=True)``) -- call it after moving the lens."""
        self._flush_next = True

    # -- FrameSource ---------------------------------------------------------------------
    def _open(self) -> None:
        try:
            import picamera2
        except ImportError as e:
            raise SourceError(f"{self.name}: {INSTALL_HINT} ({e})") from e
        self._mapped_array = getattr(picamera2, "MappedArray", None)
        if self._mapped_array is None:
            raise SourceError(f"{self.name}: this picamera2 has no MappedArray; upgrade it "
                              "(`sudo apt install --only-upgrade python3-picamera2`)")
        try:
            cam = picamera2.Picamera2(self.camera_num)
        except IndexError:
            raise SourceNotFound(f"{self.name}: there is no camera number {self.camera_num}; list the "
                              "cameras with `rpicam-hello --list-cameras` and check the ribbon cable "
                              "(and camera_auto_detect=1 in /boot/firmware/config.txt)") from None
        except Exception as e:
            raise SourceError(f"{self.name}: cannot open the camera ({e}); is another program "
                              "(rpicam-*, libcamera-*, another pifocus) using it? Check "
                              "`rpicam-hello --list-cameras`") from e
        try:
            self._configure(cam)
            cam.start()
        except ConfigError:
            _safe_close(cam)
            raise
        except Exception as e:
            _safe_close(cam)
            raise SourceError(f"{self.name}: cannot configure/start the camera: {e}") from e
        self.camera = cam
        self._flush_next = False
        for fn in list(self._open_hooks):
            try:
                fn(self)
            except Exception as e:  # the camera is fine; the hook's owner says what failed
                log.warning("%s: after-open hook %r failed: %s", self.name, fn, e)
        log.info("%s open: sensor mode %s, output %dx%d YUV420%s%s", self.name,
                 "x".join(map(str, self.sensor_mode["size"])) if self.sensor_mode else "auto",
                 *self.output_size,
                 f", ScalerCrop {self.scaler_crop}" if self.scaler_crop else "",
                 f", {self.fps:g} fps" if self.fps else "")

    def _configure(self, cam) -> None:
        modes = list(cam.sensor_modes or [])
        # ScalerCropMaximum is zero before a configuration (and the last listed mode's after
        # sensor_modes): only a fallback until configure() below sets the real one.
        full = full_field(dict(getattr(cam, "camera_properties", {}) or {}))
        mode = choose_sensor_mode(modes, self.width, self.height, self.fps, self.sensor_mode_request, full)
        self.sensor_mode = mode
        sensor_size, self.scaler_crop, size = plan_output(mode, full, self.width, self.height, self.roi)
        controls = camera_controls(self.scaler_crop, self.fps, self.exposure_us, self.analogue_gain,
                                   self.extra_controls, self.noise_reduction)
        params = inspect.signature(cam.create_video_configuration).parameters
        config = cam.create_video_configuration(**video_config_kwargs(
            params, mode, sensor_size, size, self.buffer_count, controls, self.queue, self.raw,
            full_range_colour_space()))
        cam.configure(config)
        self._limited_range = kept_limited_range(cam, self.name)

        self._fix_crop(cam, mode)
        main = cam.camera_config["main"]
        self.output_size = (int(main["size"][0]), int(main["size"][1]))
        if self.output_size != size:
            log.info("%s: picamera2 aligned the output %dx%d -> %dx%d", self.name, *size, *self.output_size)
        # Zero copy needs mappings that outlive the MappedArray context: picamera2's
        # DmaAllocator keeps every buffer mapped while configured.  Older picamera2 maps per
        # access and closes the mmap on exit (BufferError / stale view while a frame is still
        # referenced), so there the Y plane is copied instead.
        allocator = type(getattr(cam, "allocator", None)).__name__
        self._zero_copy_active = self.zero_copy and allocator == "DmaAllocator" and not self._limited_range
        if self.zero_copy and not self._zero_copy_active:
            log.info("%s: picamera2 allocator %s does not keep buffers mapped; copying the Y plane "
                     "(upgrade python3-picamera2 for zero copy)", self.name, allocator)
        cparams = inspect.signature(cam.capture_request).parameters
        self._capture_kwargs = {"wait": "wait" in cparams, "flush": "flush" in cparams}
        self._timeout = read_timeout(self.timeout_s, self.fps, self.exposure_us)

    def _fix_crop(self, cam, mode) -> None:
        """``ScalerCrop`` again from the configured camera's ``ScalerCropMaximum``."""
        crop = configured_crop(self.roi, mode, getattr(cam, "camera_properties", None), self.scaler_crop)
        if crop is not None:
            log.info("%s: ScalerCrop %s from the configured ScalerCropMaximum", self.name, crop)
            self.scaler_crop = crop
            cam.set_controls({"ScalerCrop": crop})

    def _release_held(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        request, mapped = held
        try:
            mapped.__exit__(None, None, None)
        except Exception:  # e.g. BufferError if a caller still holds a view of the old frame
            log.debug("%s: unmapping the previous frame failed", self.name, exc_info=True)
        try:
            request.release()
        except Exception:
            log.debug("%s: releasing the previous request failed", self.name, exc_info=True)

    def _read(self) -> Frame:
        cam = self.camera
        self._release_held()  # the previous frame's buffer goes back to the camera now
        kwargs: Dict[str, Any] = {}
        if self._capture_kwargs.get("wait"):
            kwargs["wait"] = self._timeout
        if self._flush_next and self._capture_kwargs.get("flush"):
            kwargs["flush"] = True
        self._flush_next = False
        try:
            request = cam.capture_request(**kwargs)
        except TimeoutError as e:  # concurrent.futures.TimeoutError is TimeoutError on 3.11+
            _cancel_jobs(cam)
            raise SourceDisconnected(f"{self.name}: no frame for {self._timeout:.1f} s (camera "
                                     "stalled or ribbon cable loose?)") from e
        except Exception as e:
            if type(e).__name__ == "TimeoutError":  # concurrent.futures on Python < 3.11
                _cancel_jobs(cam)
            raise SourceDisconnected(f"{self.name}: capture failed: {e}") from e
        mapped = None
        entered = False
        try:
            md = request.get_metadata()
            try:
                mapped = self._mapped_array(request, "main", write=False)
            except TypeError:  # older picamera2: no write argument
                mapped = self._mapped_array(request, "main")
            buf = mapped.__enter__().array
            entered = True
            w, h = self.output_size
            luma = buf[:h, :w]  # Y plane of YUV420: the first h rows; stride padding dropped
            if not self._zero_copy_active:
                luma = full_range(luma) if self._limited_range else luma.copy()
            buf = None  # no reference of ours may outlive the mapping
        except Exception as e:
            self._held = (request, mapped) if entered else (request, _NoMap())
            self._release_held()  # cleans up and never raises
            raise SourceDisconnected(f"{self.name}: bad frame from the camera: {e}") from e
        self._held = (request, mapped)
        still, md = still_or_error(self, request, md) if self.still_wanted else ({}, md)
        if not self._zero_copy_active:
            self._release_held()  # the copy is ours: the buffer goes back to the camera now
        self.last_metadata = md
        ts = md.get("SensorTimestamp")
        exposure = md.get("ExposureTime")
        gain = md.get("AnalogueGain")
        lens = md.get("LensPosition")
        frame = Frame(luma=luma, index=self._index,
                      timestamp_ns=int(ts) if ts is not None else time.monotonic_ns(),
                      lens_position=float(lens) if lens is not None else None,
                      exposure_us=int(exposure) if exposure is not None else None,
                      analogue_gain=float(gain) if gain is not None else None,
                      extra={k: md[k] for k in EXTRA_METADATA + ("StillError",) if k in md}, **still)
        self._lent = frame if self._zero_copy_active else None
        return frame

    def _detach_lent(self) -> None:
        """Give the last zero-copy frame its own copy of the pixels (before the camera closes
        its buffer maps: a live view would keep the dma-bufs open, see the module doc)."""
        frame, self._lent = self._lent, None
        if frame is not None:
            # Frame is frozen for its users; only its lender may swap the array under it.
            object.__setattr__(frame, "luma", np.array(frame.luma, copy=True))

    def _close(self) -> None:
        self._detach_lent()
        self._release_held()
        cam, self.camera = self.camera, None
        if cam is not None:
            _safe_close(cam)


def _cancel_jobs(cam) -> None:
    """Drop picamera2's pending capture jobs after a timeout (``cancel_all_and_flush``)."""
    cancel = getattr(cam, "cancel_all_and_flush", None)
    if cancel is not None:
        try:
            cancel()
        except Exception:
            log.debug("cancel_all_and_flush failed", exc_info=True)
