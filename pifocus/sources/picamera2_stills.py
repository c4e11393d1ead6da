"""Colour and DNG stills and the luma range of :class:`~pifocus.sources.picamera2.Picamera2Source`
(see "Colour and DNG stills" and "Luma range" in :mod:`pifocus.sources.picamera2`): what is
taken from a picamera2 request while it is still held, and the colour space asked of
libcamera.  ``libcamera`` is imported only inside :func:`full_range_colour_space` (it comes
with picamera2 from apt); importing this module always works."""

import logging
from typing import Any, Dict, Tuple

import numpy as np

from .picamera2_config import LIMITED_TO_FULL, ycbcr_encoding, yuv420_to_bgr

log = logging.getLogger(__name__)


def kept_limited_range(cam, name: str) -> bool:
    """Whether the colour space libcamera validated (``camera_config["colour_space"]``,
    picamera2.py ``_update_camera_config``) is limited range; says so when it is."""
    cs = cam.camera_config.get("colour_space")
    limited = cs is not None and not ycbcr_encoding(cs)[1]
    if limited:
        log.warning("%s: the camera kept a limited-range colour space (%r): luma is expanded "
                    "16..235 -> 0..255 on every frame (a copy)", name, cs)
    return limited


def full_range(luma: np.ndarray) -> np.ndarray:
    """A limited-range Y plane (16..235) as a new full-range array (0..255)."""
    import cv2
    return cv2.LUT(luma, LIMITED_TO_FULL)


def full_range_colour_space():
    """``libcamera.ColorSpace.Sycc()`` (full-range BT.601) for the main stream, or None where
    the libcamera bindings are missing (then picamera2's default; see "Luma range")."""
    try:
        import libcamera  # comes with picamera2 (python3-libcamera)
        return libcamera.ColorSpace.Sycc()
    except (ImportError, AttributeError) as e:
        log.info("libcamera.ColorSpace not available (%s): picamera2's default colour space", e)
        return None


def still_of(request, output_size: Tuple[int, int], dng: bool) -> Dict[str, Any]:
    """``{"color_bgr": ...[, "dng": bytes]}`` of a request still held (before release): the
    main stream's YUV420 copy (``request.make_array("main")``) converted to B, G, R in its
    colour space (the request's ``config["colour_space"]``), ``output_size``; with ``dng``
    the raw stream's DNG (``request.save_dng``).

    Raises:
        whatever picamera2 raises (a released request, a stream not configured, PiDNG).
    """
    import io

    w, h = output_size
    yuv = request.make_array("main")  # (h * 3 // 2, stride): Y, then U and V, stride-padded
    encoding, full = ycbcr_encoding((request.config or {}).get("colour_space"))
    out: Dict[str, Any] = {"color_bgr": yuv420_to_bgr(yuv, w, h, encoding, full)}
    if dng:
        buf = io.BytesIO()
        request.save_dng(buf)  # picamera2: name="raw"; PiDNG returns bytes for a BytesIO
        out["dng"] = buf.getvalue()
    return out


def still_or_error(src, request, md: Dict[str, Any]):
    """``(still_of(...), md)`` of the source ``src`` while the request is still ours (a released one raises); a
    failure is logged and noted as ``md["StillError"]`` (the live frame is fine)."""
    try:
        return still_of(request, src.output_size, src.still_wanted == "dng" and src.raw), md
    except Exception as e:
        log.error("%s: colour/DNG still failed: %s", src.name, e)
        return {}, dict(md, StillError=f"{type(e).__name__}: {e}")
