"""Recorded frames on disk: which files a recording holds, in which order and at which lens
positions, and how one image file becomes 8-bit luma.

* listing: :func:`list_folder` (a folder, with or without ``sweep.csv``), :func:`list_files`
  (an explicit list), in natural order (:func:`natural_sorted`);
* ``sweep.csv``: :func:`read_sweep_csv` (format in :mod:`pifocus.sources.recorded`);
* decoding: :func:`decode_image_file` (corrupt, empty and truncated files give a reason
  instead of an exception), :func:`to_luma8` (colour / 16-bit / float to 8-bit luma, also
  used by the OpenCV source), :func:`resize_luma`.

:class:`~pifocus.sources.recorded.RecordedSource` is built on these; nothing here keeps state.
OpenCV is imported inside the functions that need it.
"""

import csv
import io
import math
import os
import re
import stat
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..exc import FileRefusedError, SourceError
from ..safeio import SWEEP_CSV_MAX_BYTES, read_limited
from .imagehdr import DEFAULT_MAX_PIXELS, check_video_size, image_size, pixels_refusal

#: Image file types a folder may hold (lower case, with the dot).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Name of the sweep description file in a recorded folder.
SWEEP_CSV = "sweep.csv"
#: The columns ``sweep.csv`` understands; ``file`` and ``position`` are required.
SWEEP_COLUMNS = ("file", "position", "timestamp_ns", "exposure_us", "gain")

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> Tuple:
    """Sort key that orders embedded numbers by value: ``img2`` < ``img10`` < ``IMG11``.

    Text parts compare case-insensitively; the original string breaks ties so the order is
    total and deterministic.
    """
    parts = _DIGITS.split(name)
    # re.split with one capture group alternates text, digits, text, ...: even indices are
    # text, odd are digits, so element-wise comparison never mixes str and int.
    key = tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts))
    return (key, name)


def natural_sorted(names: Sequence[str]) -> List[str]:
    """``names`` in natural sort order (see :func:`natural_key`)."""
    return sorted(names, key=natural_key)


def is_image(name: str) -> bool:
    """True for an image file name (by extension, any case) that is not a dot-file."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


class SweepEntry:
    """One recorded frame: its file and what ``sweep.csv`` says about it.

    Attributes:
        path: the image file.
        position: lens position, drive units (without a csv: the index in the listing).
        timestamp_ns, exposure_us, gain: from the csv, ``None`` when unknown.
        extra: further csv columns, as strings.
    """

    __slots__ = ("path", "position", "timestamp_ns", "exposure_us", "gain", "extra")

    def __init__(self, path, position, timestamp_ns=None, exposure_us=None, gain=None, extra=None):
        self.path = path
        self.position = position
        self.timestamp_ns = timestamp_ns
        self.exposure_us = exposure_us
        self.gain = gain
        self.extra = extra or {}


def list_folder(folder: str) -> Tuple[Optional[str], List[SweepEntry]]:
    """The frames of a recorded folder: from its ``sweep.csv`` when there is one, else its
    image files in natural order at positions 0, 1, 2, ...

    Returns:
        ``(csv_path or None, entries)``.

    Raises:
        SourceError: the folder cannot be listed or holds no images, or ``sweep.csv`` is
            malformed (see :func:`read_sweep_csv`).
    """
    csv_path = os.path.join(folder, SWEEP_CSV)
    if os.path.isfile(csv_path):
        return csv_path, read_sweep_csv(csv_path)
    try:
        names = [n for n in os.listdir(folder)
                 if is_image(n) and os.path.isfile(os.path.join(folder, n))]
    except OSError as e:
        raise SourceError(f"cannot list folder {folder!r}: {e.strerror or e}") from e
    if not names:
        raise SourceError(
            f"folder {folder!r} holds no images; accepted file types: "
            f"{', '.join(IMAGE_EXTENSIONS)} (any case), optionally with {SWEEP_CSV} "
            "('file,position' header); or give a video file")
    return None, [SweepEntry(os.path.join(folder, n), float(i))
                  for i, n in enumerate(natural_sorted(names))]


def list_files(files: List[str]) -> List[SweepEntry]:
    """Entries for an explicit list of image files, in the given order at positions 0, 1, ...

    Raises:
        SourceError: the list is empty or a file does not exist.
    """
    if not files:
        raise SourceError("recorded source: empty list of image files; give at least one file")
    for f in files:
        if not os.path.isfile(f):
            raise SourceError(f"recorded source: image file {f!r} does not exist; check the path")
    return [SweepEntry(f, float(i)) for i, f in enumerate(files)]


def read_sweep_csv(csv_path: str) -> List[SweepEntry]:
    """Parse ``sweep.csv`` (see :mod:`pifocus.sources.recorded`) into entries, checking every line.

    Raises:
        SourceError: missing header columns, a row naming a file that does not exist, a bad
            number, or no rows at all -- naming the csv file and line.
    """
    folder = os.path.dirname(os.path.abspath(csv_path))
    entries: List[SweepEntry] = []
    try:
        text = read_limited(csv_path, "sweep file", SWEEP_CSV_MAX_BYTES).decode("utf-8-sig")
    except FileRefusedError as e:
        raise SourceError(f"recorded source: {e}") from e
    except OSError as e:
        raise SourceError(f"cannot read {csv_path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise SourceError(f"{csv_path} is not UTF-8 text ({e}); write sweep.csv as plain text "
                          "'file,position' rows") from e
    with io.StringIO(text, newline="") as fh:
        reader = csv.reader(fh)
        col = _sweep_header(reader, csv_path)
        for row in reader:
            line = reader.line_num
            if _skip_row(row):
                continue
            entries.append(_sweep_entry(row, col, f"{csv_path} line {line}", folder))
    if not entries:
        raise SourceError(f"{csv_path} has a header but no frame rows; add one row per image "
                          "('file,position') or delete it to replay the folder in name order")
    return entries


def _skip_row(row: List[str]) -> bool:
    """Blank rows and ``#`` comments carry no frame."""
    return not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#")


def _sweep_header(reader, csv_path: str) -> Dict[str, int]:
    """Column index by (lower-case) name from the first non-blank row; raises SourceError."""
    header = None
    for row in reader:
        if _skip_row(row):
            continue
        header = [c.strip().lower() for c in row]
        break
    if header is None:
        raise SourceError(f"{csv_path} is empty; it needs a header row 'file,position' and one "
                          "row per frame (or delete it to replay the folder in name order)")
    missing = [c for c in ("file", "position") if c not in header]
    if missing:
        raise SourceError(f"{csv_path} line {reader.line_num}: header {','.join(header)!r} lacks "
                          f"column(s) {', '.join(missing)}; the header must name at least "
                          f"'file,position' (optional: timestamp_ns,exposure_us,gain)")
    return {name: i for i, name in enumerate(header)}


def _sweep_entry(row: List[str], col: Dict[str, int], where: str, folder: str) -> SweepEntry:
    """One csv row as an entry; ``where`` (``"<csv> line N"``) prefixes every SourceError."""
    cells = {name: (row[i].strip() if i < len(row) else "") for name, i in col.items()}
    name = cells["file"]
    if not name:
        raise SourceError(f"{where}: column 'file' is empty; give the image "
                          "file name (relative to the folder)")
    path = name if os.path.isabs(name) else os.path.join(folder, name)
    if not os.path.isfile(path):
        raise SourceError(f"{where}: file {name!r} does not exist in "
                          f"{folder}; fix the name or remove the row")
    extra = {k: v for k, v in cells.items() if k not in SWEEP_COLUMNS}
    return SweepEntry(path, _csv_number(cells, "position", float, where, required=True),
                      _csv_number(cells, "timestamp_ns", int, where),
                      _csv_number(cells, "exposure_us", int, where),
                      _csv_number(cells, "gain", float, where), extra)


def _csv_number(cells: Dict[str, str], name: str, kind, where: str, required: bool = False):
    """Cell ``name`` as ``kind`` (int: rounded), ``None`` when empty and optional; raises
    SourceError for an empty required cell, a non-number or a non-finite value."""
    text = cells.get(name, "")
    if text == "":
        if required:
            raise SourceError(f"{where}: column {name!r} is empty; "
                              f"give a number")
        return None
    try:
        value = float(text)
    except ValueError:
        raise SourceError(f"{where}: {name} = {text!r} is not a number; "
                          f"fix or remove that row") from None
    if not math.isfinite(value):
        raise SourceError(f"{where}: {name} = {text!r} is not finite; "
                          "give a finite number")
    return int(round(value)) if kind is int else value


def to_luma8(img: np.ndarray, bit_depth: Optional[int] = None) -> np.ndarray:
    """Convert a decoded image (as ``cv2.imread(..., IMREAD_UNCHANGED)`` gives it) to 2-D uint8 luma.

    Args:
        img: 2-D (grey) or 3-D (BGR / BGRA) array of uint8, uint16 or float.
        bit_depth: for 16-bit data, the number of significant bits (e.g. 12 for raw sensor data
            stored in 16-bit words); ``None`` means full 16-bit range.

    Raises:
        ValueError: an array shape or dtype that is not an image.
    """
    import cv2

    if img.ndim == 3:
        channels = img.shape[2]
        if channels == 1:
            img = img[:, :, 0]
        elif channels == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        elif channels == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)
        else:
            raise ValueError(f"image has {channels} channels; expected 1, 3 or 4")
    elif img.ndim != 2:
        raise ValueError(f"image array has shape {img.shape}; expected 2-D or 3-D")
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    if img.dtype == np.uint16:
        full = (1 << int(bit_depth)) - 1 if bit_depth else 65535
        out = img.astype(np.float32) * np.float32(255.0 / full) + np.float32(0.5)
        return np.clip(out, 0, 255).astype(np.uint8)
    if img.dtype == np.int8 or img.dtype == np.int16:
        raise ValueError(f"signed {img.dtype} images are not supported")
    if np.issubdtype(img.dtype, np.floating):
        out = np.nan_to_num(img.astype(np.float32)) * np.float32(255.0) + np.float32(0.5)
        return np.clip(out, 0, 255).astype(np.uint8)
    raise ValueError(f"image dtype {img.dtype} is not supported; use 8- or 16-bit images")


def truncated_jpeg(data: np.ndarray) -> bool:
    """True when JPEG bytes lack the end-of-image marker (trailing padding is tolerated)."""
    tail = data[-4096:].tobytes().rstrip(b"\x00\r\n ")
    return not tail.endswith(b"\xff\xd9")


def resize_luma(luma: np.ndarray, size: Optional[Tuple[int, int]]) -> np.ndarray:
    """``luma`` resized to ``size`` = ``(width, height)`` pixels with ``cv2.INTER_AREA``;
    unchanged when ``size`` is ``None`` or already its size."""
    if size is None or (luma.shape[1], luma.shape[0]) == size:
        return luma
    import cv2
    return cv2.resize(luma, size, interpolation=cv2.INTER_AREA)


#: Image files larger than this (bytes) are not read at all.
MAX_IMAGE_FILE_BYTES = 512 * 1024 * 1024


def read_image_bytes(path: str, max_pixels: Optional[int] = None) -> Tuple[Optional[np.ndarray], str]:
    """The bytes of an image file, checked before anything decodes them: a regular file (not
    a device, FIFO or folder), not empty, at most ``MAX_IMAGE_FILE_BYTES``, and a header
    pixel count within ``max_pixels`` (None: ``DEFAULT_MAX_PIXELS``; decompression bombs).

    Returns:
        ``(uint8 array, "")`` or ``(None, reason)`` -- never raises for a bad file.
    """
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file (a device, FIFO or folder)"
        if st.st_size > MAX_IMAGE_FILE_BYTES:
            return None, f"file of {st.st_size} bytes is above the {MAX_IMAGE_FILE_BYTES}-byte limit"
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        return None, f"cannot read file ({e.strerror or e})"
    if data.size == 0:
        return None, "empty file"
    dims = image_size(data[:65536].tobytes())
    if dims is not None and pixels_refusal(dims[0], dims[1], limit):
        return None, pixels_refusal(dims[0], dims[1], limit)
    return data, ""


def _decode(path: str, max_pixels: Optional[int]) -> Tuple[Optional[np.ndarray], str]:
    """The decoded image of one file as ``cv2.imdecode(..., IMREAD_UNCHANGED)`` gives it, or
    ``(None, reason)`` (see :func:`decode_image_file`)."""
    import cv2

    data, why = read_image_bytes(path, max_pixels)
    if data is None:
        return None, why
    if path.lower().endswith((".jpg", ".jpeg")) and truncated_jpeg(data):
        return None, "truncated JPEG (no end-of-image marker)"
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        return None, f"cannot decode ({str(e).strip().splitlines()[-1]})"
    if img is None:
        return None, "not a decodable image (corrupt or truncated)"
    return img, ""


def decode_image_file(path: str, bit_depth: Optional[int] = None,
                      size: Optional[Tuple[int, int]] = None,
                      max_pixels: Optional[int] = None) -> Tuple[Optional[np.ndarray], str]:
    """Read one image file as 2-D uint8 luma (see :func:`to_luma8`, :func:`resize_luma`).

    ``max_pixels`` (default :data:`~pifocus.sources.imagehdr.DEFAULT_MAX_PIXELS`): an image
    whose header announces more pixels is refused before decoding (a decompression bomb).

    Returns:
        ``(luma, "")``, or ``(None, reason)`` when the file cannot be read, is not a regular
        file, is empty, too large, a truncated JPEG, cannot be decoded or has an unsupported
        format -- never raises for a bad file, so a replay can skip it.
    """
    img, why = _decode(path, max_pixels)
    if img is None:
        return None, why
    try:
        return resize_luma(to_luma8(img, bit_depth), size), ""
    except ValueError as e:
        return None, str(e)


def to_color8(img: np.ndarray, bit_depth: Optional[int] = None) -> Optional[np.ndarray]:
    """A decoded image as ``(rows, columns, 3)`` uint8 B, G, R (alpha dropped; 16-bit and
    float scaled as :func:`to_luma8` does), or ``None`` for a grey (one-channel) image."""
    import cv2

    if img.ndim != 3 or img.shape[2] not in (3, 4):
        return None
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.dtype != np.uint8:
        img = np.dstack([to_luma8(np.ascontiguousarray(img[:, :, c]), bit_depth) for c in range(3)])
    return np.ascontiguousarray(img)


def decode_color_file(path: str, bit_depth: Optional[int] = None,
                      size: Optional[Tuple[int, int]] = None,
                      max_pixels: Optional[int] = None) -> Tuple[Optional[np.ndarray], str]:
    """Read one image file in colour (:func:`to_color8`, resized like :func:`decode_image_file`).

    Returns:
        ``(bgr, "")``; ``(None, "")`` for a grey image; ``(None, reason)`` for a file
        :func:`decode_image_file` would skip.  Never raises for a bad file.
    """
    img, why = _decode(path, max_pixels)
    if img is None:
        return None, why
    try:
        bgr = to_color8(img, bit_depth)
    except ValueError as e:
        return None, str(e)
    return (None if bgr is None else resize_luma(bgr, size)), ""


def open_video(path: str, max_pixels: Optional[int] = None):
    """Open a video file with ``cv2.VideoCapture``.

    ``max_pixels`` (default :data:`~pifocus.sources.imagehdr.DEFAULT_MAX_PIXELS`): a video
    whose reported frame size is above it is refused before any frame is decoded.

    Returns:
        ``(capture, length)``: the opened capture and its frame count, ``None`` when the
        container does not say.

    Raises:
        SourceError: OpenCV cannot open or decode the file (the message says how to convert
            it), or the frames are above ``max_pixels``.
    """
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"cannot open video {path!r}: OpenCV has no decoder for it or the file "
                          "is damaged; convert it (e.g. ffmpeg -i IN -c:v mjpeg OUT.avi) or "
                          "extract its frames to a folder")
    try:
        check_video_size(cap, path, DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels))
    except SourceError:
        cap.release()
        raise
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return cap, (count if count > 0 else None)
