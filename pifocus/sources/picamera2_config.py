"""picamera2 configuration worked out without picamera2: sensor mode choice, ``ScalerCrop``,
output size, the libcamera controls and the ``create_video_configuration`` arguments.

Everything here is pure (dicts and numbers in, dicts and numbers out), so it is tested on a PC
and never imports ``picamera2``; :class:`~pifocus.sources.picamera2.Picamera2Source` (the
adapter, the only place that imports picamera2) applies the results to the camera.  Sizes
and rectangles are in pixels, rectangles ``(x, y, w, h)``; ``fps`` in frames/s; exposure in
microseconds.
"""

import logging
import math
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..exc import ConfigError

# Logged under the name these messages had before this module was split out of
# sources/picamera2.py, so log lines ("WARNING pifocus.sources.picamera2: ...") and
# journal filters stay the same.
log = logging.getLogger("pifocus.sources.picamera2")

Rect = Tuple[int, int, int, int]
#: an explicit sensor mode: index into ``sensor_modes``, ``"WxH"`` or ``(w, h)``
ModeChoice = Union[None, int, str, Sequence[int]]


def round_even(v: float) -> int:
    """``v`` rounded to an even number of pixels, at least 2 (YUV420 and Bayer pairs)."""
    return max(2, int(round(v / 2.0)) * 2)


def mode_size(mode: Dict) -> Tuple[int, int]:
    """A sensor mode's output size ``(w, h)``, pixels."""
    return int(mode["size"][0]), int(mode["size"][1])


def mode_crop(mode: Dict, fallback: Optional[Rect] = None) -> Rect:
    """The sensor area a mode reads (``crop_limits``), else ``fallback``, else its own size."""
    crop = mode.get("crop_limits")
    if crop is not None and len(crop) == 4:
        return tuple(int(v) for v in crop)
    if fallback is not None:
        return fallback
    w, h = mode_size(mode)
    return (0, 0, w, h)


def describe_modes(modes: Sequence[Dict]) -> str:
    """``"0: 2028x1080@50.0, 1: 2028x1520@40.0, ..."`` for error messages."""
    out = []
    for i, m in enumerate(modes):
        if "size" in m:
            w, h = mode_size(m)
            out.append(f"{i}: {w}x{h}@{float(m.get('fps', 0)):.1f}")
    return ", ".join(out) or "none"


def choose_sensor_mode(modes: Sequence[Dict], width: Optional[int] = None, height: Optional[int] = None,
                       fps: Optional[float] = None, sensor_mode: ModeChoice = None,
                       full_crop: Optional[Rect] = None) -> Optional[Dict]:
    """Pick a sensor mode from ``Picamera2.sensor_modes`` (dicts with ``size``, ``fps``,
    ``bit_depth``, ``crop_limits``, ``unpacked``...).

    An explicit ``sensor_mode`` wins; else the modes that reach ``fps`` and cover
    ``width x height``, and among them the widest field of view, then the smallest (binned:
    faster readout, less noise), then the fastest, then the deepest.

    Args:
        modes: the camera's sensor modes.
        width, height: the output size wanted (pixels), or ``None``.
        fps: the frame rate wanted (frames/s), or ``None``.
        sensor_mode: an explicit choice: an index into ``modes``, ``"WxH"`` or ``(w, h)``.
        full_crop: crop rectangle to assume for modes that do not report ``crop_limits``.

    Returns:
        The mode dict, or ``None`` when the camera reports no raw modes (e.g. a USB camera
        through libcamera; picamera2 then chooses).

    Raises:
        ConfigError: ``sensor_mode`` names no mode, or no mode reaches ``fps``; the message
            lists the modes.
    """
    raw = [m for m in modes if "size" in m]
    if not raw:
        return None
    listing = describe_modes(modes)
    if sensor_mode is not None:
        chosen = _explicit_mode(modes, raw, sensor_mode, listing)
        if fps is not None and float(chosen.get("fps", math.inf)) + 1e-3 < fps:
            w, h = mode_size(chosen)
            raise ConfigError(f"fps = {fps:g} is more than sensor mode {w}x{h} can do "
                              f"({float(chosen['fps']):.1f} fps); lower fps or pick another mode "
                              f"({listing})")
        return chosen
    return _auto_mode(raw, width, height, fps, full_crop, listing)


def _auto_mode(raw: Sequence[Dict], width: Optional[int], height: Optional[int], fps: Optional[float],
               full_crop: Optional[Rect], listing: str) -> Dict:
    """The automatic choice of :func:`choose_sensor_mode` among the raw modes ``raw``."""
    cands = raw
    if fps is not None:
        cands = [m for m in raw if float(m.get("fps", math.inf)) + 1e-3 >= fps]
        if not cands:
            best = max(float(m.get("fps", 0)) for m in raw)
            raise ConfigError(f"fps = {fps:g} is more than any sensor mode can do (at most {best:.1f} "
                              f"fps); modes: {listing}")
    if width is not None and height is not None:
        big = [m for m in cands if mode_size(m)[0] >= width and mode_size(m)[1] >= height]
        if big:
            cands = big
        else:
            chosen = max(cands, key=lambda m: mode_size(m)[0] * mode_size(m)[1])
            log.warning("no sensor mode covers %dx%d%s; using %dx%d (the ISP upscales)", width, height,
                        f" at {fps:g} fps" if fps else "", *mode_size(chosen))
            return chosen

    def key(m):
        _, _, cw, ch = mode_crop(m, full_crop)
        w, h = mode_size(m)
        return (-cw * ch, w * h, -float(m.get("fps", 0)), -int(m.get("bit_depth", 0)))

    return min(cands, key=key)


def _explicit_mode(modes: Sequence[Dict], raw: Sequence[Dict], sensor_mode: ModeChoice,
                   listing: str) -> Dict:
    """The mode ``sensor_mode`` names (index, ``"WxH"`` or ``(w, h)``; of several modes of that
    size the deepest, then fastest); raises ConfigError naming the modes."""
    if isinstance(sensor_mode, bool):
        raise ConfigError(f"sensor_mode = {sensor_mode!r} is invalid; give an index or WxH ({listing})")
    if isinstance(sensor_mode, int):
        if not 0 <= sensor_mode < len(modes) or "size" not in modes[sensor_mode]:
            raise ConfigError(f"sensor_mode = {sensor_mode} is not a mode of this camera; "
                              f"modes: {listing}")
        return modes[sensor_mode]
    try:
        if isinstance(sensor_mode, str):
            w_s, h_s = sensor_mode.lower().split("@")[0].split("x")
            want = (int(w_s), int(h_s))
        else:
            want = (int(sensor_mode[0]), int(sensor_mode[1]))
    except (ValueError, TypeError, IndexError):
        raise ConfigError(f"sensor_mode = {sensor_mode!r} is invalid; give an index or WxH, "
                          f"e.g. 2028x1520 (modes: {listing})") from None
    same = [m for m in raw if mode_size(m) == want]
    if not same:
        raise ConfigError(f"sensor_mode = {sensor_mode!r}: this camera has no {want[0]}x{want[1]} "
                          f"mode; modes: {listing}")
    return max(same, key=lambda m: (m.get("bit_depth", 0), m.get("fps", 0)))


def scaler_crop_rect(roi: Sequence[float], limits: Rect) -> Rect:
    """The ``ScalerCrop`` rectangle (sensor pixels) for a normalized ROI inside ``limits``.

    Args:
        roi: ``(x, y, w, h)`` in 0..1 of the field of view the mode covers.
        limits: ``(x0, y0, W, H)`` the crop rectangle of the whole field of view in sensor
            pixels (the mode's ``crop_limits`` or ``ScalerCropMaximum``).

    Coordinates are rounded to even pixels (Bayer pairs); the result stays inside ``limits``.
    """
    x0, y0, W, H = limits
    rx, ry, rw, rh = (float(v) for v in roi)
    w = min(W, round_even(rw * W))
    h = min(H, round_even(rh * H))
    x = x0 + min(W - w, max(0, int(round(rx * W / 2.0)) * 2))
    y = y0 + min(H - h, max(0, int(round(ry * H / 2.0)) * 2))
    return (int(x), int(y), int(w), int(h))


def check_roi(roi) -> Tuple[float, float, float, float]:
    """A normalized ``(x, y, w, h)`` ROI as floats; raises ConfigError unless it lies in 0..1."""
    try:
        x, y, w, h = (float(v) for v in roi)
    except (TypeError, ValueError):
        raise ConfigError(f"scaler_crop = {roi!r} is invalid; give x,y,w,h in normalized 0..1 "
                          "coordinates, e.g. (0.375, 0.375, 0.25, 0.25)") from None
    if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 and 0 < h <= 1 and x + w <= 1 + 1e-9
            and y + h <= 1 + 1e-9):
        raise ConfigError(f"scaler_crop = {roi!r} is invalid; need 0 <= x, y; 0 < w, h; "
                          "x + w <= 1 and y + h <= 1 (normalized coordinates)")
    return (x, y, w, h)


def full_field(props: Dict[str, Any]) -> Optional[Rect]:
    """The crop rectangle of the whole field of view from ``camera_properties``:
    ``ScalerCropMaximum``, else the ``PixelArraySize``, else ``None``.

    ``ScalerCropMaximum`` is ``(0, 0, 0, 0)`` until the camera is configured (libcamera sets it
    per configuration; after ``sensor_modes`` it is the last listed mode's): an empty one is
    ignored here, and the adapter reads it again after ``configure()``."""
    pixel_array = props.get("PixelArraySize")
    scm = props.get("ScalerCropMaximum")
    if scm is not None and len(scm) == 4 and int(scm[2]) > 0 and int(scm[3]) > 0:
        return tuple(int(v) for v in scm)
    if pixel_array is not None:
        return (0, 0, int(pixel_array[0]), int(pixel_array[1]))
    return None


def configured_crop(roi, mode: Optional[Dict], props, planned: Optional[Rect]) -> Optional[Rect]:
    """The ``ScalerCrop`` for ``roi`` from a *configured* camera's ``ScalerCropMaximum``
    (``props``: its ``camera_properties``), when the mode gave no ``crop_limits`` and the
    result differs from ``planned``; else ``None`` (keep the planned crop)."""
    if roi is None or (mode is not None and mode.get("crop_limits") is not None):
        return None
    scm = dict(props or {}).get("ScalerCropMaximum")
    if scm is None or len(scm) != 4 or int(scm[2]) <= 0 or int(scm[3]) <= 0:
        return None
    crop = scaler_crop_rect(roi, tuple(int(v) for v in scm))
    return crop if crop != planned else None


def plan_output(mode: Optional[Dict], full: Optional[Rect], width: Optional[int], height: Optional[int],
                roi: Optional[Sequence[float]]) -> Tuple[Tuple[int, int], Optional[Rect], Tuple[int, int]]:
    """Sensor size, ``ScalerCrop`` and output size for a chosen mode.

    The output size is ``width x height`` when given, else the ROI at the mode's pixel scale,
    else the mode's size (1280x720 when the camera reports no modes).

    Returns:
        ``((mode_w, mode_h), scaler_crop or None, (out_w, out_h))``.
    """
    if mode is not None:
        mw, mh = mode_size(mode)
        limits = mode_crop(mode, full)
    else:
        mw, mh = (width or 1280, height or 720)
        limits = full or (0, 0, mw, mh)
    if roi is not None:
        crop = scaler_crop_rect(roi, limits)
        scale_x, scale_y = limits[2] / float(mw), limits[3] / float(mh)
        default_size = (round_even(crop[2] / scale_x), round_even(crop[3] / scale_y))
    else:
        crop = None
        default_size = (round_even(mw), round_even(mh))
    size = (width, height) if width is not None else default_size
    return (mw, mh), crop, size


#: libcamera ``draft.NoiseReductionModeEnum`` values by ``[source] noise_reduction`` name
NOISE_REDUCTION = {"off": 0, "fast": 1, "high_quality": 2, "minimal": 3, "zsl": 4}


def noise_reduction_mode(name) -> int:
    """The ``NoiseReductionMode`` value for a ``noise_reduction`` name; raises ConfigError."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in NOISE_REDUCTION:
        raise ConfigError(f"picamera2: noise_reduction = {name!r} is invalid; allowed: "
                          f"{', '.join(NOISE_REDUCTION)} (off keeps the detail focus is judged on)")
    return NOISE_REDUCTION[key]


def camera_controls(scaler_crop: Optional[Rect], fps: Optional[float], exposure_us: Optional[int],
                    analogue_gain: Optional[float], extra: Dict[str, Any],
                    noise_reduction: Optional[int] = None) -> Dict[str, Any]:
    """The libcamera controls to start with: ``NoiseReductionMode`` (picamera2's video
    configuration turns on ``Fast`` denoising, which smooths the very detail the focus
    measures use: pifocus asks for ``noise_reduction``, default off), ``ScalerCrop``,
    ``FrameDurationLimits`` (fixed frame time for ``fps``), ``ExposureTime`` (µs),
    ``AnalogueGain``, ``AeEnable`` off when both are fixed; then ``extra`` (the user's
    ``controls``) on top."""
    controls: Dict[str, Any] = {}
    if noise_reduction is not None:
        controls["NoiseReductionMode"] = int(noise_reduction)
    if scaler_crop is not None:
        controls["ScalerCrop"] = scaler_crop
    if fps is not None:
        frame_us = int(round(1e6 / fps))
        controls["FrameDurationLimits"] = (frame_us, frame_us)
    if exposure_us is not None:
        controls["ExposureTime"] = exposure_us
    if analogue_gain is not None:
        controls["AnalogueGain"] = analogue_gain
    if exposure_us is not None and analogue_gain is not None:
        controls["AeEnable"] = False
    controls.update(extra)
    return controls


def video_config_kwargs(accepted, mode: Optional[Dict], sensor_size: Tuple[int, int],
                        size: Tuple[int, int], buffer_count: int, controls: Dict[str, Any],
                        queue: bool, raw: bool = False, colour_space=None) -> Dict[str, Any]:
    """Keyword arguments for ``Picamera2.create_video_configuration``: one YUV420 main stream,
    no display or encoder, no raw stream unless ``raw`` (DNG stills: ``request.save_dng``
    reads the ``"raw"`` stream) or this picamera2 version needs one to choose the sensor
    mode (its default ``raw={}`` would allocate raw buffers nobody reads), and the sensor
    mode as this version takes it.

    Args:
        accepted: the parameter names ``create_video_configuration`` accepts (others are
            dropped: older picamera2 versions lack some).
        mode, sensor_size: the chosen mode (or ``None``) and its size.
        size, buffer_count, controls, queue: output size, buffers, start controls, queueing.
        raw: configure a raw stream (``raw={}``: picamera2 takes its size and format from
            the sensor mode) for DNG stills.
        colour_space: a ``libcamera.ColorSpace`` for the main stream (None: picamera2's video
            default, which is *limited* range -- Y 16..235).
    """
    kwargs: Dict[str, Any] = dict(main={"size": size, "format": "YUV420"}, buffer_count=buffer_count,
                                  controls=controls, queue=queue, display=None, encode=None,
                                  raw={} if raw else None)
    if colour_space is not None:
        kwargs["colour_space"] = colour_space
    if mode is not None:
        if "sensor" in accepted:  # newer picamera2: choose the mode by sensor output size
            kwargs["sensor"] = {"output_size": sensor_size}
            if mode.get("bit_depth"):
                kwargs["sensor"]["bit_depth"] = int(mode["bit_depth"])
        else:                     # older: a raw stream of the mode's size and format
            kwargs["raw"] = {"size": sensor_size, "format": str(mode.get("unpacked", mode.get("format")))}
    return {k: v for k, v in kwargs.items() if k in accepted}


def read_timeout(timeout_s: Optional[float], fps: Optional[float], exposure_us: Optional[int]) -> float:
    """Seconds a read waits for a frame: ``timeout_s``, else 2 s or 4 frame times (or
    exposures), whichever is longer (10 fps assumed when ``fps`` is not fixed)."""
    if timeout_s is not None:
        return timeout_s
    frame_s = 1.0 / fps if fps else 1.0 / 10
    exp_s = (exposure_us or 0) / 1e6
    return max(2.0, 4 * max(frame_s, exp_s))


def check_options(camera, width, height, fps, exposure_us, analogue_gain, buffer_count: int,
                  zero_copy: bool, timeout_s, controls, raw: bool = False) -> None:
    """Check the arguments of :class:`~pifocus.sources.picamera2.Picamera2Source` (units as
    there: pixels, frames/s, microseconds, seconds).

    Raises:
        ConfigError: the first invalid one, with the allowed range.
    """
    if not isinstance(raw, bool):
        raise ConfigError(f"picamera2 raw = {raw!r} is invalid; give true (a raw stream for DNG "
                          "stills) or false")
    if isinstance(camera, bool) or not isinstance(camera, int) or camera < 0:
        raise ConfigError(f"picamera2 camera = {camera!r} is invalid; give 0, 1, ...")
    if (width is None) != (height is None):
        raise ConfigError("picamera2: give both width and height (or neither); got "
                          f"width={width!r}, height={height!r}")
    if width is not None and not (64 <= int(width) <= 16384 and 64 <= int(height) <= 16384):
        raise ConfigError(f"picamera2: size {width}x{height} is invalid; allowed 64..16384 pixels each")
    if fps is not None and not (0 < float(fps) <= 1000):
        raise ConfigError(f"picamera2: fps = {fps!r} is invalid; allowed 0 < fps <= 1000")
    if exposure_us is not None and not (1 <= int(exposure_us) <= 1_000_000_000):
        raise ConfigError(f"picamera2: exposure_us = {exposure_us!r} is invalid; allowed 1..1e9 us")
    if analogue_gain is not None and not (1.0 <= float(analogue_gain) <= 64.0):
        raise ConfigError(f"picamera2: analogue_gain = {analogue_gain!r} is invalid; allowed 1..64")
    if not (isinstance(buffer_count, int) and 2 <= buffer_count <= 32) or (zero_copy and buffer_count < 3):
        raise ConfigError(f"picamera2: buffer_count = {buffer_count!r} is invalid; allowed "
                          f"{3 if zero_copy else 2}..32 (zero_copy holds one buffer)")
    if timeout_s is not None and not (0 < float(timeout_s) <= 3600):
        raise ConfigError(f"picamera2: timeout_s = {timeout_s!r} is invalid; allowed 0..3600 s")
    if controls is not None and not isinstance(controls, dict):
        raise ConfigError(f"picamera2: controls = {controls!r} is invalid; give a table of "
                          "libcamera control names and values")


#: ``(Kr, Kb)`` of the Y'CbCr encodings libcamera's colour spaces use.
YCBCR_COEFFICIENTS = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


#: Limited-range luma (16..235, what picamera2's video colour spaces deliver) to full range
#: (0..255, what every other source and the exposure readouts' levels assume).
LIMITED_TO_FULL = np.clip(np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)


def ycbcr_encoding(colour_space) -> Tuple[str, bool]:
    """``(encoding, full_range)`` of a picamera2 ``camera_config["colour_space"]`` (a
    ``libcamera.ColorSpace``; its repr names the preset): ``Rec709`` -> BT.709 limited range
    (picamera2's video default from 1280x720 up), ``sYCC`` -> BT.601 full range (stills),
    ``Smpte170m`` and anything unknown -> BT.601 limited range (picamera2's video default
    below 1280x720, and OpenCV's ``COLOR_YUV2BGR_I420``)."""
    name = repr(colour_space).lower()
    if "709" in name:
        return "bt709", False
    if "sycc" in name:
        return "bt601", True
    return "bt601", False


def yuv420_to_bgr(yuv: np.ndarray, width: int, height: int, encoding: str = "bt601",
                  full_range: bool = False) -> np.ndarray:
    """A picamera2 ``YUV420`` buffer (I420 planes in an array of shape ``(h * 3 // 2,
    stride)``, as ``request.make_array("main")`` returns it) as ``(h, w, 3)`` uint8 B, G, R,
    with the colour space's own matrix and range (chroma upsampled bilinearly).

    Raises:
        ValueError: the buffer is too small for ``width`` x ``height``, or an unknown encoding.
    """
    import cv2

    h, w = int(height), int(width)
    stride = yuv.shape[1]
    if encoding not in YCBCR_COEFFICIENTS:
        raise ValueError(f"Y'CbCr encoding {encoding!r} is unknown; use {', '.join(YCBCR_COEFFICIENTS)}")
    if yuv.ndim != 2 or yuv.shape[0] < h * 3 // 2 or stride < w or h % 2 or w % 2:
        raise ValueError(f"YUV420 buffer of shape {yuv.shape} does not hold an even {w}x{h} frame")
    planes = yuv[h:h * 3 // 2].reshape(-1)  # U then V, each (h/2) rows of stride/2 bytes
    half = (stride // 2) * (h // 2)
    u = planes[:half].reshape(h // 2, stride // 2)[:, :w // 2]
    v = planes[half:2 * half].reshape(h // 2, stride // 2)[:, :w // 2]
    y = yuv[:h, :w].astype(np.float32)
    cb = cv2.resize(u, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) - 128.0
    cr = cv2.resize(v, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) - 128.0
    if not full_range:
        y = (y - 16.0) * (255.0 / 219.0)
        cb *= 255.0 / 224.0
        cr *= 255.0 / 224.0
    kr, kb = YCBCR_COEFFICIENTS[encoding]
    kg = 1.0 - kr - kb
    r = y + 2.0 * (1.0 - kr) * cr
    b = y + 2.0 * (1.0 - kb) * cb
    g = (y - kr * r - kb * b) / kg
    return np.clip(np.dstack([b, g, r]) + 0.5, 0, 255).astype(np.uint8)
