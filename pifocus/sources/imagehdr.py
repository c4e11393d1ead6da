"""Image dimensions from the file header, before anything is decoded.

A 390 KB PNG can decode to 1.9 GB (a "decompression bomb"): :func:`image_size` reads the
width and height from the header bytes of PNG, JPEG, BMP, TIFF, WebP and PNM files so that
:func:`~pifocus.sources.files.decode_image_file` can refuse an image above ``max_pixels``
without decoding it; :func:`check_max_pixels` validates the limit and
:func:`check_video_size` applies it to a video from the size ``cv2.VideoCapture`` reports
before any frame is decoded.  Nothing here imports OpenCV.
"""

import struct
from typing import Optional, Tuple

from ..exc import ConfigError, SourceError

#: Default pixel limit of decoded images (the HQ Camera's full frame is 12.3 MP).
DEFAULT_MAX_PIXELS = 50_000_000
#: Highest ``[source] max_pixels`` accepted (4 GB of luma).
MAX_PIXELS_LIMIT = 4_000_000_000

#: ``cv2.CAP_PROP_FRAME_WIDTH`` / ``cv2.CAP_PROP_FRAME_HEIGHT`` (stable OpenCV constants, so
#: this module needs no OpenCV import).
_CAP_PROP_FRAME_WIDTH, _CAP_PROP_FRAME_HEIGHT = 3, 4


def check_max_pixels(max_pixels) -> int:
    """``max_pixels`` (``None``: :data:`DEFAULT_MAX_PIXELS`) validated.

    Raises:
        ConfigError: not an integer in ``1..MAX_PIXELS_LIMIT``.
    """
    if max_pixels is None:
        return DEFAULT_MAX_PIXELS
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or not 1 <= max_pixels <= MAX_PIXELS_LIMIT:
        raise ConfigError(f"source.max_pixels = {max_pixels!r} is invalid; allowed: an integer 1..{MAX_PIXELS_LIMIT} "
                          f"(default {DEFAULT_MAX_PIXELS})")
    return max_pixels


def pixels_refusal(width: int, height: int, max_pixels: int) -> Optional[str]:
    """The reason a ``width`` x ``height`` image is refused under ``max_pixels``, or None."""
    if width * height <= max_pixels:
        return None
    return (f"{width}x{height} = {width * height / 1e6:.1f} MP is above source.max_pixels = "
            f"{max_pixels} ({max_pixels / 1e6:.1f} MP); raise [source] max_pixels if the image is genuine")


def check_video_size(cap, path: str, max_pixels: int) -> Tuple[int, int]:
    """The frame size an opened ``cv2.VideoCapture`` reports, checked before decoding frames.

    Returns:
        ``(width, height)`` in pixels (``(0, 0)`` when the container does not say).

    Raises:
        SourceError: the reported frame size is above ``max_pixels`` (a decompression bomb
            or a video far larger than any camera frame).
    """
    w = int(cap.get(_CAP_PROP_FRAME_WIDTH) or 0)
    h = int(cap.get(_CAP_PROP_FRAME_HEIGHT) or 0)
    reason = pixels_refusal(w, h, max_pixels)
    if reason is not None:
        raise SourceError(f"video {path!r}: frames of {reason}")
    return w, h


# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic...): C0..CF
# except DHT (C4), JPG (C8) and DAC (CC).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(data: bytes) -> Optional[Tuple[int, int]]:
    """``(width, height)`` from an image file's leading bytes, or None when the format is
    not recognised or the header is cut short (the decoder then decides)."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:2] == b"BM":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:1] == b"P" and data[1:2] in b"123456" and len(data) > 2:
            return _pnm_size(data)
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    """Walk the JPEG marker segments to the first start-of-frame."""
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:          # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def _tiff_size(data: bytes) -> Optional[Tuple[int, int]]:
    """ImageWidth (256) and ImageLength (257) of the first IFD."""
    e = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", data[4:8])
    (count,) = struct.unpack(e + "H", data[ifd:ifd + 2])
    vals = {}
    for k in range(count):
        off = ifd + 2 + 12 * k
        tag, typ = struct.unpack(e + "HH", data[off:off + 4])
        if tag in (256, 257):
            fmt = e + ("H" if typ == 3 else "I")
            (vals[tag],) = struct.unpack(fmt, data[off + 8:off + 8 + struct.calcsize(fmt)])
    if 256 in vals and 257 in vals:
        return vals[256], vals[257]
    return None


def _webp_size(data: bytes) -> Optional[Tuple[int, int]]:
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L":
        b = int.from_bytes(data[21:25], "little")
        return (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _pnm_size(data: bytes) -> Optional[Tuple[int, int]]:
    """Width and height of a PBM/PGM/PPM header (comments skipped)."""
    text = data[2:256].decode("ascii", "replace")
    nums = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        nums += [int(t) for t in line.split() if t.isdigit()]
        if len(nums) >= 2:
            return nums[0], nums[1]
    return None
