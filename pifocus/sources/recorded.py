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

Listing, ``sweep.csv`` parsing, natural sort and image decoding are in
:mod:`pifocus.sources.files` (re-exported here); this module is the source itself: frame
order, seek/hold, caching, skipping unreadable frames, video reading.
"""

import logging
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..exc import ConfigError, SourceError, SourceExhausted
from ..frames import Frame
from . import VIDEO_EXTENSIONS, FrameSource
from .imagehdr import check_max_pixels
from .files import (IMAGE_EXTENSIONS, SWEEP_COLUMNS, SWEEP_CSV, SweepEntry, decode_color_file, decode_image_file,
                    is_image, list_files, list_folder, natural_key, natural_sorted, open_video,
                    read_sweep_csv, resize_luma, to_color8, to_luma8)

log = logging.getLogger(__name__)

#: The old private name of :func:`~pifocus.sources.files.is_image` (tools and tests import it).
_is_image = is_image

__all__ = ["RecordedSource", "IMAGE_EXTENSIONS", "SWEEP_CSV", "SWEEP_COLUMNS", "natural_key",
           "natural_sorted", "read_sweep_csv", "to_luma8"]


def _check_options(fps, bit_depth, width, height) -> None:
    """Raise ConfigError for a bad ``fps``, ``bit_depth`` or resize of :class:`RecordedSource`."""
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


class RecordedSource(FrameSource):
    """Frames replayed from a folder of images, a list of image files, or a video file
    (in colour after :meth:`~pifocus.sources.FrameSource.request_still` when the files are).

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

    still_kinds = ("color",)

    def __init__(self, path: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]],
                 loop: bool = False, fps: float = 30.0, bit_depth: Optional[int] = None,
                 width: Optional[int] = None, height: Optional[int] = None,
                 max_pixels: Optional[int] = None):
        super().__init__()
        _check_options(fps, bit_depth, width, height)
        self.max_pixels = check_max_pixels(max_pixels)
        self.loop = bool(loop)
        self.finite = not self.loop
        self.fps = float(fps)
        self.bit_depth = bit_depth
        self.size = (int(width), int(height)) if width is not None else None
        self.skipped_files: List[Tuple[str, str]] = []
        self.csv_path: Optional[str] = None
        self._entries: List[SweepEntry] = []
        self._video_path: Optional[str] = None
        self._cap = None
        self._pos = 0                  # file/frame index of the next frame
        self._hold: Optional[int] = None  # index held by a replay drive (lens standing still)
        self._bad: set = set()         # indices known to be unreadable
        self._cache: Optional[Tuple[int, np.ndarray]] = None

        if isinstance(path, (list, tuple)):
            self._entries = list_files([os.fspath(p) for p in path])
            self.name = f"{len(self._entries)} file(s)"
        else:
            path = os.fspath(path)
            self.name = path
            if os.path.isdir(path):
                self._init_folder(path)
            elif os.path.isfile(path):
                if is_image(path):
                    self._entries = list_files([path])
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
        self.csv_path, self._entries = list_folder(folder)
        if self.csv_path is not None:
            log.info("%s: %d frames from %s", folder, len(self._entries), SWEEP_CSV)

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

    def readable(self, index: int) -> bool:
        """Whether frame ``index`` decodes (decoded now and kept for the next read; an
        unreadable file is skipped with a warning and never tried again)."""
        if index in self._bad:
            return False
        if self.is_video or (self._cache is not None and self._cache[0] == index):
            return True
        luma, reason = self._decode_file(self._entries[index].path)
        if luma is None:
            self._bad.add(index)
            self._skip(self._entries[index].path, reason)
            return False
        luma.flags.writeable = False
        self._cache = (index, luma)
        return True

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
        path = self._video_path
        self._cap, self.length = open_video(path, self.max_pixels)
        self._video_next = 0  # frame index the decoder is at (seeks happen lazily in _read_video)
        log.info("video %s: %s frames", path, self.length if self.length else "unknown number of")

    def _close(self) -> None:
        self._cache = None
        self._pos = 0  # reopening replays from the start (or from a held frame)
        if self._cap is not None:
            cap, self._cap = self._cap, None
            cap.release()

    def _skip(self, path: str, reason: str) -> None:
        self.skipped += 1
        self.skipped_files.append((path, reason))
        log.warning("skipping %s: %s", path, reason)

    def _decode_file(self, path: str) -> Tuple[Optional[np.ndarray], str]:
        """(luma, "") or (None, reason) for one image file (a method so tests can count decodes)."""
        return decode_image_file(path, self.bit_depth, self.size, self.max_pixels)

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
        color = None
        if self.still_wanted:  # a capture waits: the file once more, in colour (None when grey)
            color, _ = decode_color_file(entry.path, self.bit_depth, self.size, self.max_pixels)
            if color is not None and color.shape[:2] != luma.shape:
                color = None
        return Frame(luma=luma, index=self._index, timestamp_ns=ts, lens_position=entry.position,
                     exposure_us=entry.exposure_us, analogue_gain=entry.gain, path=entry.path,
                     extra=extra, color_bgr=color)

    def _read_video(self) -> Frame:
        return _read_video_frame(self)


def _read_video_frame(src: "RecordedSource") -> Frame:
    """The next (or held) frame of a video source: decode retries over unreadable frames,
    looping, the held-frame cache (:meth:`RecordedSource._read` for videos)."""
    import cv2

    cap = src._cap
    target = src._hold if src._hold is not None else src._pos
    if src._hold is not None and src._cache is not None and src._cache[0] == target:
        i, luma = src._cache
        return Frame(luma=luma, index=src._index, timestamp_ns=src._cache_ts,
                     lens_position=float(i), path=src._video_path, extra={"frame_index": i})
    if src._video_next != target:
        cap.set(cv2.CAP_PROP_POS_FRAMES, target)
        src._video_next = target
    retries = 0
    while True:
        i = src._video_next
        ok, img = cap.read()
        if ok and img is not None:
            break
        # End of file, or a frame the decoder could not read.  Try further frames only when
        # the container says there are more (frame counts can be approximate: few retries).
        if src.length is not None and i < src.length - 1 and retries < 8:
            retries += 1
            src._video_next = i + 1
            src._skip(f"{src._video_path}#{i}", "video frame could not be decoded")
            continue
        if src.loop and i > 0 and retries < 8:
            retries += 1
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            src._video_next = 0
            continue
        if i == 0:
            raise SourceError(f"video {src._video_path!r}: no frame could be decoded; convert "
                              "it (e.g. ffmpeg -i IN -c:v mjpeg OUT.avi)")
        src._pos = src._video_next = i  # stay at the end: further reads are exhausted too
        raise SourceExhausted(f"{src.name}: end of video after frame {i - 1}")
    msec = cap.get(cv2.CAP_PROP_POS_MSEC)
    ts = int(round(msec * 1e6)) if msec and msec > 0 else int(round(i * 1e9 / src.fps))
    src._video_next = i + 1
    if src._hold is None:
        src._pos = i + 1
    try:
        luma = resize_luma(to_luma8(img, src.bit_depth), src.size)
        color = resize_luma(to_color8(img, src.bit_depth), src.size) if src.still_wanted and img.ndim == 3 else None
    except ValueError as e:
        raise SourceError(f"video {src._video_path!r} frame {i}: {e}") from e
    if src._hold is not None:
        src._hold = i  # (a held frame that could not be decoded moved on to this one)
        luma.flags.writeable = False
        src._cache, src._cache_ts = (i, luma), ts
    return Frame(luma=luma, index=src._index, timestamp_ns=ts, lens_position=float(i),
                 path=src._video_path, extra={"frame_index": i}, color_bgr=color)
