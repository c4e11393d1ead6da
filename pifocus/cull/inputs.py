"""Which files a cull reads, and how a photo becomes 8-bit luma.

* :func:`list_photos` -- files and folders (recursively, natural order) -> photo paths.
* :func:`decode_photo` -- one photo -> :class:`Decoded` (luma, and a small colour copy for
  the report), or a reason it cannot be read.  JPEG and PNG through OpenCV (greyscale
  decoding: no colour conversion of a 24 MP frame); DNG (the Pi's raw) and other camera raws
  through ``rawpy`` (LibRaw), the optional ``raw`` extra -- without it a raw file is skipped
  with the install hint.  A corrupt, truncated, empty or oversized file gives a reason,
  never an exception, so the batch goes on.
"""

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from ..exc import SourceError
from ..sources.files import natural_sorted, read_image_bytes, to_luma8, truncated_jpeg
from ..sources.imagehdr import DEFAULT_MAX_PIXELS

#: Decoded by OpenCV.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")
#: Camera raws, decoded by rawpy (DNG first: the Pi's picamera2 writes DNG).
RAW_EXTENSIONS = (".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".orf", ".rw2", ".raf", ".pef", ".srw")
#: Long side of the colour copy kept for the report's thumbnail (px).
THUMB_PX = 320
#: The install hint for raw files.
RAW_HINT = "install the raw extra: pip install 'pifocus[raw]' (rawpy, LibRaw)"


def is_photo(name: str) -> bool:
    """True for a photo file name (by extension, any case) that is not a dot-file."""
    base = os.path.basename(name)
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS + RAW_EXTENSIONS)


def list_photos(paths: List[str]) -> Tuple[List[str], List[Tuple[str, str]]]:
    """The photos under ``paths`` (files as given, folders walked recursively in natural order).

    Returns:
        ``(photos, missing)``: photo paths without duplicates, and ``(path, reason)`` for
        paths that do not exist or are not photos.

    Raises:
        SourceError: ``paths`` is empty.
    """
    if not paths:
        raise SourceError("cull: no PATH given; name photo files or folders, e.g. pifocus cull DCIM/")
    photos, missing, seen = [], [], set()

    def add(p):
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            photos.append(p)

    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = natural_sorted([d for d in dirs if not d.startswith(".")])
                for name in natural_sorted([f for f in files if is_photo(f)]):
                    add(os.path.join(root, name))
        elif os.path.isfile(p):
            if is_photo(p):
                add(p)
            else:
                missing.append((p, "not a photo file type (" + ", ".join(IMAGE_EXTENSIONS + RAW_EXTENSIONS) + ")"))
        else:
            missing.append((p, "no such file or folder"))
    return photos, missing


@dataclass
class Decoded:
    """A decoded photo.

    Attributes:
        luma: 2-D uint8 luma at full resolution.
        thumb_bgr: colour copy with a long side of at most :data:`THUMB_PX` (uint8 BGR), or None.
    """

    luma: np.ndarray
    thumb_bgr: Optional[np.ndarray]


def _thumb(img_bgr: np.ndarray) -> np.ndarray:
    import cv2
    h, w = img_bgr.shape[:2]
    s = THUMB_PX / max(h, w)
    if s >= 1:
        return img_bgr
    return cv2.resize(img_bgr, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)


def _reduced_flag(shape) -> int:
    """The JPEG decoder's reduced-colour mode (1/8, 1/4, 1/2 or full size) that still gives
    a long side of at least :data:`THUMB_PX`: the thumbnail of a small photo is not a stamp."""
    import cv2
    long_px = max(shape[:2])
    for factor, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                         (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if long_px / factor >= THUMB_PX:
            return flag
    return cv2.IMREAD_COLOR


def _decode_raw(path: str, want_thumb: bool) -> Tuple[Optional[Decoded], str]:
    try:
        import rawpy
    except ImportError:
        return None, f"camera raw, but rawpy is not installed; {RAW_HINT}"
    import cv2
    try:
        with rawpy.imread(path) as raw:
            rgb = raw.postprocess(output_bps=8, use_camera_wb=True, no_auto_bright=False)
    except (rawpy.LibRawError, OSError, ValueError) as e:
        return None, f"cannot decode the raw file ({type(e).__name__}: {e})"
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    thumb = _thumb(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)) if want_thumb else None
    return Decoded(luma, thumb), ""


def decode_photo(path: str, want_thumb: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> Tuple[Optional[Decoded], str]:
    """Decode one photo to luma (see the module docstring).

    Returns:
        ``(Decoded, "")`` or ``(None, reason)`` -- never raises for a bad file.
    """
    import cv2

    if path.lower().endswith(RAW_EXTENSIONS):
        return _decode_raw(path, want_thumb)
    data, why = read_image_bytes(path, max_pixels)
    if data is None:
        return None, why
    is_jpeg = data[:2].tobytes() == b"\xff\xd8"
    if is_jpeg and truncated_jpeg(data):
        return None, "truncated JPEG (no end-of-image marker)"
    try:
        if is_jpeg:
            luma = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
            thumb = cv2.imdecode(data, _reduced_flag(luma.shape)) if want_thumb and luma is not None else None
        else:
            img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
            luma = None if img is None else to_luma8(img)
            thumb = None
            if want_thumb and img is not None:
                c = img if img.ndim == 3 else cv2.cvtColor(luma, cv2.COLOR_GRAY2BGR)
                c = c[:, :, :3] if c.shape[2] == 4 else c
                thumb = c if c.dtype == np.uint8 else cv2.cvtColor(luma, cv2.COLOR_GRAY2BGR)
    except cv2.error as e:
        return None, f"cannot decode ({str(e).strip().splitlines()[-1]})"
    except ValueError as e:
        return None, str(e)
    if luma is None:
        return None, "not a decodable image (corrupt or truncated)"
    return Decoded(np.ascontiguousarray(luma), None if thumb is None else _thumb(thumb)), ""
