"""Frame sources: where frames come from.

:class:`FrameSource` (here) is the base class; one module per implementation:

* :mod:`.picamera2` -- Raspberry Pi cameras (HQ Camera, Camera Module 3) through picamera2
  (the adapter: the only module that imports picamera2, and only when a source opens)
* :mod:`.recorded`  -- a folder of images (optionally with ``sweep.csv``) or a video file
* :mod:`.opencv`    -- USB/V4L2 webcams and network streams through OpenCV
* :mod:`.simulated` -- a simulated lens over a procedural focus chart or any image

and helper modules (they never import this package's ``__init__``):

* :mod:`.picamera2_config` -- picamera2 sensor mode choice, ``ScalerCrop``, output size,
  control mapping and option checks, as pure functions (no picamera2 import)
* :mod:`.picamera2_stills` -- the adapter's colour/DNG stills taken from a held request and
  the full-range colour space asked of libcamera (imported only when a source opens)
* :mod:`.files`     -- recorded frames on disk: folder/file listing in natural order,
  ``sweep.csv`` parsing, image decoding to 8-bit luma (:func:`~.files.to_luma8`, also used
  by the OpenCV source), opening video files
* :mod:`.imagehdr`  -- image width and height from the file header (PNG, JPEG, BMP, TIFF,
  WebP, PNM), so decompression bombs are refused before decoding (``max_pixels``)

:func:`open_source` turns a source string (``picamera2[:N]``, ``opencv:INDEX_OR_URL``, a
folder, a video file, ``sim[:IMAGE]``) into a source.  Every source is a context manager and
an iterator of :class:`~pifocus.frames.Frame`.
"""

import logging
import os
from typing import Iterator, Optional

from ..exc import ConfigError, SourceError, SourceExhausted
from ..frames import Frame

log = logging.getLogger(__name__)

#: what :meth:`FrameSource.request_still` can ask for
STILL_KINDS = ("color", "dng")

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".h264", ".mjpeg", ".mjpg", ".webm", ".m4v")


class FrameSource:
    """Base class of every frame source.

    Subclasses implement :meth:`_open`, :meth:`_read` and :meth:`_close`; callers use
    :meth:`open` / :meth:`read` / :meth:`close`, ``with`` and iteration.

    ``read()`` returns the next :class:`Frame`, raises :class:`~pifocus.exc.SourceExhausted`
    at the end of a finite source and :class:`~pifocus.exc.SourceDisconnected` when a live
    source drops out (``close()`` then ``open()`` again to retry).

    Attributes:
        name: the source string this was made from, for logs and reports.
        skipped: frames that could not be decoded and were skipped (recorded sources).
        lens_position: for sources that model or know a lens (``sim``, ``replay``), the
            position the next frame will be taken at; ``None`` otherwise.
    """

    name = "source"
    #: True when frames come from a finite recording (folder, video).
    finite = False
    #: Number of frames for finite sources when known, else None.
    length: Optional[int] = None

    #: the still kinds this source can deliver (see :meth:`request_still`); grey-only
    #: sources deliver none and their stills stay grey
    still_kinds: tuple = ()
    _still: Optional[str] = None

    def __init__(self):
        self._opened = False
        self._index = 0
        self.skipped = 0

    def request_still(self, kind: Optional[str]) -> None:
        """Ask for stills: until called again with ``None``, every frame read carries its
        colour image (``kind="color"``: :attr:`Frame.color_bgr`) or also its DNG
        (``kind="dng"``: :attr:`Frame.dng`), where the source has them (:attr:`still_kinds`;
        a grey frame stays grey).  Costs a colour conversion per frame while set.

        Raises:
            ConfigError: ``kind`` is not ``None``, ``"color"`` or ``"dng"``.
        """
        if kind is not None and kind not in STILL_KINDS:
            raise ConfigError(f"still kind {kind!r} is unknown; use None, 'color' or 'dng'")
        self._still = kind

    @property
    def still_wanted(self) -> Optional[str]:
        """What :meth:`request_still` asked for (``None``, ``"color"`` or ``"dng"``)."""
        return self._still

    # -- public API -------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True until :meth:`open` succeeds and again after :meth:`close`."""
        return not self._opened

    def open(self) -> "FrameSource":
        """Open the source.  Idempotent.  Raises :class:`SourceError` with the reason."""
        if not self._opened:
            self._open()
            self._opened = True
        return self

    def read(self) -> Frame:
        """The next frame.  Opens the source if needed.

        Raises:
            SourceExhausted: a finite source has no more frames.
            SourceDisconnected: a live source dropped out.
            SourceError: anything else that stops the source.
        """
        if not self._opened:
            self.open()
        frame = self._read()
        self._index += 1
        return frame

    def close(self) -> None:
        """Release the device or file.  Idempotent, never raises."""
        if self._opened:
            self._opened = False
            try:
                self._close()
            except Exception:  # closing must never mask the error that got us here
                log.exception("error while closing %s", self.name)

    def __enter__(self) -> "FrameSource":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            try:
                yield self.read()
            except SourceExhausted:
                return

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- for subclasses ---------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _read(self) -> Frame:
        raise NotImplementedError

    def _close(self) -> None:
        pass


def open_source(spec: str, max_pixels: Optional[int] = None, **options) -> FrameSource:
    """Make a :class:`FrameSource` from a source string (not yet opened).

    Args:
        spec: ``sim``, ``sim:IMAGE``, ``picamera2``, ``picamera2:N`` (camera number),
            ``opencv:INDEX_OR_URL``, a folder of images, or a video file.
        options: keyword options for the source class (e.g. ``width``, ``height`` for
            ``sim``); unknown options raise :class:`ConfigError`.
        max_pixels: pixel-count limit (``[source] max_pixels``, default 50 MP) of anything
            decoded from a file: recorded images above it are skipped, a ``sim:IMAGE`` scene
            or a video whose frame size is above it is refused before decoding; ignored by
            live cameras.

    Raises:
        ConfigError: the string names no known source.
        SourceError: the folder or file does not exist.
    """
    spec = str(spec).strip()
    kind, _, arg = spec.partition(":")
    kind_l = kind.lower()
    try:
        if kind_l == "sim":
            from .simulated import SimulatedSource
            return SimulatedSource(image=arg or None, max_pixels=max_pixels, **options)
        if kind_l == "picamera2":
            from .picamera2 import Picamera2Source
            try:
                camera = int(arg) if arg else 0
            except ValueError:
                raise ConfigError(
                    f"source {spec!r}: camera number {arg!r} is not an integer; "
                    "use picamera2 or picamera2:N (N = 0, 1, ...)") from None
            return Picamera2Source(camera=camera, **options)
        if kind_l == "opencv":
            if not arg:
                raise ConfigError(f"source {spec!r}: give a device index or URL, e.g. opencv:0 "
                                  "or opencv:rtsp://host/stream")
            from .opencv import OpenCVSource
            return OpenCVSource(arg, **options)
        if kind_l == "replay":
            from .recorded import RecordedSource
            return RecordedSource(arg, max_pixels=max_pixels, **options)
    except TypeError as e:
        raise ConfigError(f"source {spec!r}: {e}") from e

    if os.path.isdir(spec) or spec.lower().endswith(VIDEO_EXTENSIONS) or os.path.isfile(spec):
        from .recorded import RecordedSource
        try:
            return RecordedSource(spec, max_pixels=max_pixels, **options)
        except TypeError as e:
            raise ConfigError(f"source {spec!r}: {e}") from e
    if os.path.sep in spec or spec.startswith("."):
        raise SourceError(f"source {spec!r}: no such folder or file; check the path")
    raise ConfigError(
        f"unknown source {spec!r}; use sim[:IMAGE], picamera2[:N], opencv:INDEX_OR_URL, "
        "a folder of images or a video file")
