"""Capture time from a photo's EXIF, with the standard library only (no Pillow dependency).

EXIF is a TIFF structure: in a JPEG inside the ``APP1`` segment that starts ``Exif\\0\\0``,
in a PNG in the ``eXIf`` chunk, and a DNG (or most other raws) *is* a TIFF file.  From IFD0
the ``ExifIFDPointer`` (tag 0x8769) leads to ``DateTimeOriginal`` (0x9003, ``"YYYY:MM:DD
HH:MM:SS"``), ``SubSecTimeOriginal`` (0x9291) and ``OffsetTimeOriginal`` (0x9011); IFD0's
``DateTime`` (0x0132) is the fallback.  Only the first 256 KiB of a file are read.

* :func:`capture_time_s` -- seconds since the epoch of the capture, or None.
* :func:`tiff_datetime` / :func:`find_tiff_block` -- the parsing steps (pure, on bytes).
"""

import calendar
import re
import struct
from typing import Optional

#: Bytes of a file read to find its EXIF block.
HEAD_BYTES = 256 * 1024

_TAG_EXIF_IFD = 0x8769
_TAG_DATETIME = 0x0132
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_SUBSEC_ORIGINAL = 0x9291
_TAG_OFFSET_ORIGINAL = 0x9011
_TIME = re.compile(rb"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(rb"^([+-])(\d{2}):(\d{2})")


def find_tiff_block(data: bytes) -> Optional[bytes]:
    """The TIFF/EXIF block of a JPEG, PNG or TIFF-based file's leading bytes, or None."""
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return data
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(data) and data[i] == 0xFF:
            marker = data[i + 1]
            if marker in (0xD9, 0xDA):  # end of image / start of scan: no more metadata
                return None
            (length,) = struct.unpack(">H", data[i + 2:i + 4])
            seg = data[i + 4:i + 2 + length]
            if marker == 0xE1 and seg[:6] == b"Exif\x00\x00":
                return seg[6:]
            i += 2 + length
        return None
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        i = 8
        while i + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[i:i + 8])
            if kind == b"eXIf":
                return data[i + 8:i + 8 + length]
            if kind == b"IDAT":  # eXIf must come before the image data
                return None
            i += 12 + length
    return None


def _ifd(tiff: bytes, offset: int, endian: str) -> dict:
    """``{tag: (type, count, value_or_offset_bytes)}`` of the IFD at ``offset``."""
    (n,) = struct.unpack(endian + "H", tiff[offset:offset + 2])
    out = {}
    for k in range(min(n, 512)):
        e = offset + 2 + 12 * k
        if e + 12 > len(tiff):
            break
        tag, typ, count = struct.unpack(endian + "HHI", tiff[e:e + 8])
        out[tag] = (typ, count, tiff[e + 8:e + 12])
    return out


def _ascii(tiff: bytes, entry, endian: str) -> Optional[bytes]:
    typ, count, raw = entry
    if typ != 2 or count == 0:
        return None
    if count <= 4:
        return raw[:count].rstrip(b"\x00 ")
    (off,) = struct.unpack(endian + "I", raw)
    return tiff[off:off + count].rstrip(b"\x00 ")


def tiff_datetime(tiff: bytes) -> Optional[float]:
    """Capture time (s since the epoch) from a TIFF/EXIF block; without an
    ``OffsetTimeOriginal`` the camera's local time is read as UTC (fine for grouping bursts).
    None when there is no usable time."""
    try:
        endian = "<" if tiff[:2] == b"II" else ">"
        (ifd0,) = struct.unpack(endian + "I", tiff[4:8])
        top = _ifd(tiff, ifd0, endian)
        entry = None
        sub = off = None
        if _TAG_EXIF_IFD in top:
            (exif_off,) = struct.unpack(endian + "I", top[_TAG_EXIF_IFD][2])
            ex = _ifd(tiff, exif_off, endian)
            if _TAG_DATETIME_ORIGINAL in ex:
                entry = _ascii(tiff, ex[_TAG_DATETIME_ORIGINAL], endian)
                sub = _ascii(tiff, ex[_TAG_SUBSEC_ORIGINAL], endian) if _TAG_SUBSEC_ORIGINAL in ex else None
                off = _ascii(tiff, ex[_TAG_OFFSET_ORIGINAL], endian) if _TAG_OFFSET_ORIGINAL in ex else None
        if entry is None and _TAG_DATETIME in top:
            entry = _ascii(tiff, top[_TAG_DATETIME], endian)
    except (struct.error, IndexError, ValueError):
        return None
    m = _TIME.match(entry or b"")
    if not m:
        return None
    y, mo, d, h, mi, s = (int(v) for v in m.groups())
    try:
        t = float(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)))
    except (ValueError, OverflowError):
        return None
    if sub and sub.isdigit():
        t += int(sub) / 10.0 ** len(sub)
    mo_ = _OFFSET.match(off or b"")
    if mo_:
        sign = -1 if mo_.group(1) == b"-" else 1
        t -= sign * (int(mo_.group(2)) * 3600 + int(mo_.group(3)) * 60)
    return t


def capture_time_s(path: str) -> Optional[float]:
    """The capture time of a photo file from its EXIF (s since the epoch), None when it has
    none or the file cannot be read."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError:
        return None
    block = find_tiff_block(head)
    return tiff_datetime(block) if block else None
