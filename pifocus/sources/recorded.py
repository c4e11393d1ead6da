"""Recorded frames: a folder of images (optionally with ``sweep.csv``), a list of image files,
or a video file.

Folder
    Image files (``.png .jpg .jpeg .bmp .tif .tiff .webp``, any case; dot-files and
    sub-folders are ignored) in *natural* sort order (``img2`` before ``img10``).  When the
    folder holds ``sweep.csv`` (a recorded focus sweep), the csv decides the frames, their
    order and their lens positions::

        file,position,timestamp_ns,exposure_us,gain
        img0.png,120,0,10000,1.0
        img1.png,130,33333333,10000,1.0

    ``file`` and ``position`` are required, the other columns optional (empty cells mean
    unknown); extra columns are passed through in :attr:`Frame.extra` as strings.  Without
    ``sweep.csv`` the lens position of a frame is its index in the sorted list.

Video file
    Read with ``cv2.VideoCapture``; position = frame index, timestamp from
    ``CAP_PROP_POS_MSEC``.

Conversion to 8-bit luma (what :class:`~pifocus.frames.Frame` carries):

* colour (BGR/BGRA) -> ``cv2.COLOR_BGR2GRAY`` / ``COLOR_BGRA2GRAY``: Rec.601 luma
  ``Y = 0.299 R + 0.587 G + 0.114 B``, the Y of ``COLOR_BGR2YCrCb`` (alpha is dropped);
* 16-bit -> 8-bit by a *fixed* scale, the same for every frame of a sweep so sharpness stays
  comparable between frames: full range ``0..65535 -> 0..255`` by default, or
  ``0..2**bit_depth-1 -> 0..255`` when ``bit_depth`` says the file holds e.g. 12-bit sensor
  data in 16-bit words (values above are clipped);
* float images are taken as ``0..1`` and scaled to ``0..255`` (clipped).

Frames are decoded lazily, one per :meth:`~RecordedSource.read`; only the last decoded frame is
kept (so a replay drive holding the lens still costs no re-decode).  Because that array is
shared, image-file frames are read-only (``luma.flags.writeable`` is False): copy before
modifying.  EXIF orientation is ignored (the sensor's pixel order is what focus is judged on).

Corrupt or truncated image files (undecodable, or a JPEG without its end-of-image marker) are
skipped with a logged warning and counted in :attr:`RecordedSource.skipped` and
:attr:`RecordedSource.skipped_files`; they never stop a replay.

For a replay drive (``drive/replay.py``): :attr:`RecordedSource.positions`,
:meth:`RecordedSource.index_nearest`, :meth:`RecordedSource.seek` and the
:attr:`RecordedSource.lens_position` setter (seek to the frame recorded nearest a position and
hold the lens there, as a real lens stays where the drive put it).
"""

import csv
import logging
import math
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..exc import ConfigError, SourceError, SourceExhausted
from ..frames import Frame
from . import VIDEO_EXTENSIONS, FrameSource

log = logging.getLogger(__name__)

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


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def _truncated_jpeg(data: np.ndarray) -> bool:
    """True when JPEG bytes lack the end-of-image marker (trailing padding is tolerated)."""
    tail = data[-4096:].tobytes().rstrip(b"\x00\r\n ")
    return not tail.endswith(b"\xff\xd9")


class _Entry:
    """One recorded frame: file and what the csv says about it."""

    __slots__ = ("path", "position", "timestamp_ns", "exposure_us", "gain", "extra")

    def __init__(self, path, position, timestamp_ns=None, exposure_us=None, gain=None, extra=None):
        self.path = path
        self.position = position
        self.timestamp_ns = timestamp_ns
        self.exposure_us = exposure_us
        self.gain = gain
        self.extra = extra or {}


def read_sweep_csv(csv_path: str) -> List[_Entry]:
    """Parse ``sweep.csv`` (see the module doc) into entries, checking every line.

    Raises:
        SourceError: missing header columns, a row naming a file that does not exist, a bad
            number, or no rows at all -- naming the csv file and line.
    """
    folder = os.path.dirname(os.path.abspath(csv_path))
    entries: List[_Entry] = []
    try:
        fh = open(csv_path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise SourceError(f"cannot read {csv_path}: {e.strerror or e}") from e
    with fh:
        reader = csv.reader(fh)
        header = None
        for row in reader:
            if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
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
        col = {name: i for i, name in enumerate(header)}
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
                continue
            cells = {name: (row[i].strip() if i < len(row) else "") for name, i in col.items()}

            def number(name, kind, required=False):
                text = cells.get(name, "")
                if text == "":
                    if required:
                        raise SourceError(f"{csv_path} line {line}: column {name!r} is empty; "
                                          f"give a number")
                    return None
                try:
                    value = float(text)
                except ValueError:
                    raise SourceError(f"{csv_path} line {line}: {name} = {text!r} is not a number; "
                                      f"fix or remove that row") from None
                if not math.isfinite(value):
                    raise SourceError(f"{csv_path} line {line}: {name} = {text!r} is not finite; "
                                      "give a finite number")
                return int(round(value)) if kind is int else value

            name = cells["file"]
            if not name:
                raise SourceError(f"{csv_path} line {line}: column 'file' is empty; give the image "
                                  "file name (relative to the folder)")
            path = name if os.path.isabs(name) else os.path.join(folder, name)
            if not os.path.isfile(path):
                raise SourceError(f"{csv_path} line {line}: file {name!r} does not exist in "
                                  f"{folder}; fix the name or remove the row")
            extra = {k: v for k, v in cells.items() if k not in SWEEP_COLUMNS}
            entries.append(_Entry(path, number("position", float, required=True),
                                  number("timestamp_ns", int), number("exposure_us", int),
                                  number("gain", float), extra))
    if not entries:
        raise SourceError(f"{csv_path} has a header but no frame rows; add one row per image "
                          "('file,position') or delete it to replay the folder in name order")
    return entries


class RecordedSource(FrameSource):
    """Frames replayed from a folder of images, a list of image files, or a video file.

    Args:
        path: a folder (with or without ``sweep.csv``), one image file, a list of image files
            (replayed in the given order, position = index), or a video file.
        loop: start again from the first frame at the end instead of raising
            :class:`~pifocus.exc.SourceExhausted` (then :attr:`finite` is False).
        fps: nominal frame rate used for timestamps when the recording has none
            (``timestamp_ns = frame counter * 1e9 / fps``).
        bit_depth: significant bits of 16-bit images (e.g. 12); default full 16-bit range.
        width, height: resize every frame to this size (``cv2.INTER_AREA``); give both or
            neither.  Default: the recorded size.

    Raises:
        SourceError: the path does not exist, the folder holds no images (the message lists the
            accepted types), ``sweep.csv`` is malformed (naming the line), or (on open) the
            video cannot be opened.
        ConfigError: a bad ``fps``, ``bit_depth`` or size.

    Attributes:
        length: number of frames (files listed, or the video's frame count when the container
            knows it, else ``None``).  Corrupt files are counted here but skipped when read.
        positions: lens position of every frame, by frame (file) index.
        skipped: number of unreadable frames skipped so far.
        skipped_files: ``(path, reason)`` of each skipped file.
    """

    def __init__(self, path: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]],
                 loop: bool = False, fps: float = 30.0, bit_depth: Optional[int] = None,
                 width: Optional[int] = None, height: Optional[int] = None):
        super().__init__()
        if not (isinstance(fps, (int, float)) and 0 < fps <= 10000):
            raise ConfigError(f"recorded source: fps = {fps!r} is invalid; allowed: 0 < fps <= 10000")
        if bit_depth is not None and not (isinstance(bit_depth, int) and 1 <= bit_depth <= 16):
            raise ConfigError(f"recorded source: bit_depth = {bit_depth!r} is invalid; allowed: 1..16 "
                              "(significant bits of 16-bit images) or unset for full range")
        if (width is None) != (height is None):
            raise ConfigError("recorded source: give both width and height (or neither) to resize "
                              f"frames; got width={width!r}, height={height!r}")
        if width is not None and not (16 <= int(width) <= 16384 and 16 <= int(height) <= 16384):
            raise ConfigError(f"recorded source: size {width}x{height} is invalid; allowed 16..16384 "
                              "pixels each")
        self.loop = bool(loop)
        self.finite = not self.loop
        self.fps = float(fps)
        self.bit_depth = bit_depth
        self.size = (int(width), int(height)) if width is not None else None
        self.skipped_files: List[Tuple[str, str]] = []
        self.csv_path: Optional[str] = None
        self._entries: List[_Entry] = []
        self._video_path: Optional[str] = None
        self._cap = None
        self._pos = 0                  # file/frame index of the next frame
        self._hold: Optional[int] = None  # index held by a replay drive (lens standing still)
        self._bad: set = set()         # indices known to be unreadable
        self._cache: Optional[Tuple[int, np.ndarray]] = None

        if isinstance(path, (list, tuple)):
            self._init_files([os.fspath(p) for p in path])
            self.name = f"{len(self._entries)} file(s)"
        else:
            path = os.fspath(path)
            self.name = path
            if os.path.isdir(path):
                self._init_folder(path)
            elif os.path.isfile(path):
                if _is_image(path):
                    self._init_files([path])
                else:
                    self._video_path = path
            else:
                raise SourceError(f"recorded source {path!r}: no such folder or file; check the path "
                                  f"(a folder of images {'/'.join(e[1:] for e in IMAGE_EXTENSIONS)}, "
                                  f"or a video file {'/'.join(e[1:] for e in VIDEO_EXTENSIONS)})")
        if self._video_path is None:
            self.length = len(self._entries)

    # -- construction -----------------------------------------------------------------
    def _init_folder(self, folder: str) -> None:
        csv_path = os.path.join(folder, SWEEP_CSV)
        if os.path.isfile(csv_path):
            self.csv_path = csv_path
            self._entries = read_sweep_csv(csv_path)
            log.info("%s: %d frames from %s", folder, len(self._entries), SWEEP_CSV)
            return
        try:
            names = [n for n in os.listdir(folder)
                     if _is_image(n) and os.path.isfile(os.path.join(folder, n))]
        except OSError as e:
            raise SourceError(f"cannot list folder {folder!r}: {e.strerror or e}") from e
        if not names:
            raise SourceError(
                f"folder {folder!r} holds no images; accepted file types: "
                f"{', '.join(IMAGE_EXTENSIONS)} (any case), optionally with {SWEEP_CSV} "
                "('file,position' header); or give a video file")
        self._entries = [_Entry(os.path.join(folder, n), float(i))
                         for i, n in enumerate(natural_sorted(names))]

    def _init_files(self, files: List[str]) -> None:
        if not files:
            raise SourceError("recorded source: empty list of image files; give at least one file")
        for f in files:
            if not os.path.isfile(f):
                raise SourceError(f"recorded source: image file {f!r} does not exist; check the path")
        self._entries = [_Entry(f, float(i)) for i, f in enumerate(files)]

    # -- replay-drive API -------------------------------------------------------------
    @property
    def is_video(self) -> bool:
        """True when frames come from a video file."""
        return self._video_path is not None

    @property
    def positions(self) -> List[float]:
        """Lens position of every frame, by frame index (a video: the frame index; empty while
        a video's length is unknown)."""
        if self.is_video:
            return [float(i) for i in range(self.length or 0)]
        return [e.position for e in self._entries]

    def index_nearest(self, position: float) -> int:
        """Index of the frame recorded nearest ``position`` (first one on ties), skipping frames
        already found unreadable.

        Raises:
            SourceError: there are no (readable) frames to choose from.
        """
        if self.is_video and self.length:  # positions are the frame indices
            i = min(max(int(math.ceil(float(position) - 0.5)), 0), self.length - 1)  # ties: lower
            if i not in self._bad:
                return i
        best, best_d = -1, math.inf
        for i, p in enumerate(self.positions):
            if i in self._bad:
                continue
            d = abs(p - float(position))
            if d < best_d:
                best, best_d = i, d
        if best < 0:
            raise SourceError(f"recorded source {self.name!r}: no readable frames to seek to"
                              + ("; open the video first so its length is known" if self.is_video else ""))
        return best

    def seek(self, index: int, hold: bool = False) -> None:
        """Make frame ``index`` the next one :meth:`read` returns.

        Args:
            index: frame index, ``0 .. length-1`` (negative counts from the end).
            hold: keep returning this frame on every read (a lens standing still) until the
                next :meth:`seek` with ``hold=False`` or :meth:`release_hold`.

        Raises:
            IndexError: ``index`` outside ``0 .. length-1``.
        """
        n = self.length
        index = int(index)
        if n is not None:
            if index < 0:
                index += n
            if not 0 <= index < n:
                raise IndexError(f"recorded source {self.name!r}: seek index {index} is outside "
                                 f"0..{n - 1}")
        elif index < 0:
            raise IndexError(f"recorded source {self.name!r}: seek index {index} < 0 and the video "
                             "length is unknown")
        self._pos = index
        self._hold = index if hold else None

    def seek_position(self, position: float, hold: bool = False) -> int:
        """Seek to the frame recorded nearest ``position``; returns its index."""
        index = self.index_nearest(position)
        self.seek(index, hold=hold)
        return index

    def release_hold(self) -> None:
        """Stop holding one frame: reading continues sequentially after it."""
        if self._hold is not None:
            self._pos = self._hold + 1
            self._hold = None

    @property
    def lens_position(self) -> Optional[float]:
        """Recorded lens position of the next frame (``None`` if past the end).

        Setting it seeks to the frame recorded nearest the value and *holds* it, as the
        simulated source does when a drive sets its lens: every read returns that frame until
        the lens is moved again.
        """
        i = self._hold if self._hold is not None else self._pos
        n = self.length or 0
        if self.loop and n:
            i %= n
        if not 0 <= i < n:
            return None
        return float(i) if self.is_video else self._entries[i].position

    @lens_position.setter
    def lens_position(self, value: float) -> None:
        self.seek_position(value, hold=True)

    # -- FrameSource ------------------------------------------------------------------
    def _open(self) -> None:
        # _pos is 0 on a fresh source and after close(), unless seek() was called before open.
        self._cache = None
        if not self.is_video:
            return
        import cv2

        path = self._video_path
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open video {path!r}: OpenCV has no decoder for it or the file "
                              "is damaged; convert it (e.g. ffmpeg -i IN -c:v mjpeg OUT.avi) or "
                              "extract its frames to a folder")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.length = count if count > 0 else None
        self._cap = cap
        self._video_next = 0  # frame index the decoder is at (seeks happen lazily in _read_video)
        log.info("video %s: %s frames", path, self.length if self.length else "unknown number of")

    def _close(self) -> None:
        self._cache = None
        self._pos = 0  # reopening replays from the start (or from a held frame)
        if self._cap is not None:
            cap, self._cap = self._cap, None
            cap.release()

    def _resize(self, luma: np.ndarray) -> np.ndarray:
        if self.size is None or (luma.shape[1], luma.shape[0]) == self.size:
            return luma
        import cv2
        return cv2.resize(luma, self.size, interpolation=cv2.INTER_AREA)

    def _skip(self, path: str, reason: str) -> None:
        self.skipped += 1
        self.skipped_files.append((path, reason))
        log.warning("skipping %s: %s", path, reason)

    def _decode_file(self, path: str) -> Tuple[Optional[np.ndarray], str]:
        """(luma, "") or (None, reason) for one image file."""
        import cv2

        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as e:
            return None, f"cannot read file ({e.strerror or e})"
        if data.size == 0:
            return None, "empty file"
        if path.lower().endswith((".jpg", ".jpeg")) and _truncated_jpeg(data):
            return None, "truncated JPEG (no end-of-image marker)"
        try:
            img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        except cv2.error as e:
            return None, f"cannot decode ({str(e).strip().splitlines()[-1]})"
        if img is None:
            return None, "not a decodable image (corrupt or truncated)"
        try:
            return self._resize(to_luma8(img, self.bit_depth)), ""
        except ValueError as e:
            return None, str(e)

    def _read(self) -> Frame:
        if self.is_video:
            return self._read_video()
        n = len(self._entries)
        tried = 0
        while True:
            if self._hold is not None:
                i = self._hold
            else:
                if self._pos >= n:
                    if not self.loop:
                        raise SourceExhausted(f"{self.name}: end of recording ({n} frames)")
                    self._pos = 0
                i = self._pos
            entry = self._entries[i]
            if self._cache is not None and self._cache[0] == i:
                luma = self._cache[1]
            elif i in self._bad:
                luma = None
            else:
                luma, reason = self._decode_file(entry.path)
                if luma is None:
                    self._bad.add(i)
                    self._skip(entry.path, reason)
                else:
                    luma.flags.writeable = False  # shared with the cache: nobody may modify it
                    self._cache = (i, luma)
            if luma is not None:
                break
            # unreadable: move on (a held frame falls through to the next readable one)
            tried += 1
            if len(self._bad) >= n or tried > n:
                raise SourceError(f"{self.name}: none of the {n} image file(s) could be read; "
                                  f"see the warnings (first: {self.skipped_files[0][0]}: "
                                  f"{self.skipped_files[0][1]})")
            if self._hold is not None:
                self._hold = (self._hold + 1) % n
            else:
                self._pos += 1
        if self._hold is None:
            self._pos = i + 1
        ts = entry.timestamp_ns if entry.timestamp_ns is not None else int(round(self._index * 1e9 / self.fps))
        extra: Dict = {"frame_index": i}
        extra.update(entry.extra)
        return Frame(luma=luma, index=self._index, timestamp_ns=ts, lens_position=entry.position,
                     exposure_us=entry.exposure_us, analogue_gain=entry.gain, path=entry.path,
                     extra=extra)

    def _read_video(self) -> Frame:
        import cv2

        cap = self._cap
        target = self._hold if self._hold is not None else self._pos
        if self._hold is not None and self._cache is not None and self._cache[0] == target:
            i, luma = self._cache
            return Frame(luma=luma, index=self._index, timestamp_ns=self._cache_ts,
                         lens_position=float(i), path=self._video_path, extra={"frame_index": i})
        if self._video_next != target:
            cap.set(cv2.CAP_PROP_POS_FRAMES, target)
            self._video_next = target
        retries = 0
        while True:
            i = self._video_next
            ok, img = cap.read()
            if ok and img is not None:
                break
            # End of file, or a frame the decoder could not read.  Try further frames only when
            # the container says there are more (frame counts can be approximate: few retries).
            if self.length is not None and i < self.length - 1 and retries < 8:
                retries += 1
                self._video_next = i + 1
                self._skip(f"{self._video_path}#{i}", "video frame could not be decoded")
                continue
            if self.loop and i > 0 and retries < 8:
                retries += 1
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                self._video_next = 0
                continue
            if i == 0:
                raise SourceError(f"video {self._video_path!r}: no frame could be decoded; convert "
                                  "it (e.g. ffmpeg -i IN -c:v mjpeg OUT.avi)")
            self._pos = self._video_next = i  # stay at the end: further reads are exhausted too
            raise SourceExhausted(f"{self.name}: end of video after frame {i - 1}")
        msec = cap.get(cv2.CAP_PROP_POS_MSEC)
        ts = int(round(msec * 1e6)) if msec and msec > 0 else int(round(i * 1e9 / self.fps))
        self._video_next = i + 1
        if self._hold is None:
            self._pos = i + 1
        try:
            luma = self._resize(to_luma8(img, self.bit_depth))
        except ValueError as e:
            raise SourceError(f"video {self._video_path!r} frame {i}: {e}") from e
        if self._hold is not None:
            self._hold = i  # (a held frame that could not be decoded moved on to this one)
            luma.flags.writeable = False
            self._cache, self._cache_ts = (i, luma), ts
        return Frame(luma=luma, index=self._index, timestamp_ns=ts, lens_position=float(i),
                     path=self._video_path, extra={"frame_index": i})
