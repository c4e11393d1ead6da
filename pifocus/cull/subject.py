"""Where the subject of a photo is: the largest face and its eyes, else the most detailed
region, else the centre.

Faces come from YuNet (:class:`cv2.FaceDetectorYN`) when its ONNX model file is given --
OpenCV does not ship it -- else, and eyes always, from OpenCV's Haar cascades (``haarcascade_frontalface_default.xml``,
``haarcascade_eye.xml``), looked up in ``cv2.data.haarcascades`` (the opencv-python wheels
up to 4.x ship them) and then in the Debian/Raspberry Pi OS package ``opencv-data``
(``/usr/share/opencv4/haarcascades``).  Detection runs on a copy reduced to
:data:`DETECT_PX` on its long side, so it costs the same on any photo size.  Without the
cascade files or ``cv2.CascadeClassifier`` (OpenCV 5 moved it out of the main modules) and
without a YuNet model, ``auto`` goes straight to the most detailed region (logged).

The largest face is taken among the confident ones (:data:`FACE_MIN_SHARE` of the strongest
detection's confidence); every :class:`~pifocus.cull.Subject` carries a ``confidence`` (the
detector's, or a detail region's contrast), which picks a burst's shared region
(:func:`pifocus.cull.bursts.reference_index`).

* :class:`SubjectFinder` -- holds the loaded cascades; :meth:`SubjectFinder.find`.
* :func:`detail_box` (:func:`detail_box_scored`) / :func:`centre_box` / :func:`pad_box` -- pure geometry on arrays.
"""

import logging
import os
from typing import Optional, Sequence, Tuple

import numpy as np

from . import Subject
from ..exc import ConfigError

log = logging.getLogger(__name__)

#: Folders searched for the Haar cascade files, after ``cv2.data.haarcascades``.
CASCADE_DIRS = ("/usr/share/opencv4/haarcascades", "/usr/share/opencv/haarcascades")
FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"
#: Long side (px) of the copy faces and detail are searched on.
DETECT_PX = 640
#: Haar ``minNeighbors``: overlapping detections a face needs (its confidence is their count).
HAAR_MIN_NEIGHBORS = 5
#: Haar scale step between detection sizes: 1.15 finds 95 of the 100 real faces of the LFW
#: subset (1.1: 96, 1.2: 91) at ~2/3 of 1.1's CPU time (tests/test_cull_faces.py).
HAAR_SCALE_FACTOR = 1.15
#: Faces with less than this share of the most confident face's confidence are dropped
#: (a larger false detection must not outrank a clear face: on the astronaut JPEG a
#: 6-neighbour patch of the background beside her 25-neighbour face).
FACE_MIN_SHARE = 0.4
#: Smallest face, as a fraction of the short side of the photo.
MIN_FACE_FRACTION = 0.06
#: Side of the most-detailed-region window, as a fraction of the short side.
DETAIL_FRACTION = 0.35
#: Smallest subject box side (px of the photo): the analyzer's tile grid needs room.
MIN_BOX_PX = 256
#: Centre box: the central fraction of each side.
CENTRE_FRACTION = 0.5
#: The detail window must beat the photo's median window by this factor to count.
DETAIL_CONTRAST = 1.5


def find_cascade(name: str) -> Optional[str]:
    """Path of an OpenCV Haar cascade file, or None when it is installed nowhere."""
    import cv2
    dirs = [getattr(getattr(cv2, "data", None), "haarcascades", "")] + list(CASCADE_DIRS)
    for d in dirs:
        p = os.path.join(d, name) if d else ""
        if p and os.path.isfile(p):
            return p
    return None


def pad_box(box: Sequence[float], width: int, height: int, min_px: int = MIN_BOX_PX,
            pad: float = 0.0) -> Tuple[int, int, int, int]:
    """``box`` (x, y, w, h px) grown by ``pad`` of its size on each side, to at least
    ``min_px`` (or the photo's side), and shifted to lie inside the photo."""
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2, y + h / 2
    w, h = w * (1 + 2 * pad), h * (1 + 2 * pad)
    w = min(max(w, min_px), width)
    h = min(max(h, min_px), height)
    x0 = int(round(min(max(cx - w / 2, 0), width - w)))
    y0 = int(round(min(max(cy - h / 2, 0), height - h)))
    return x0, y0, int(round(w)), int(round(h))


def centre_box(width: int, height: int, fraction: float = CENTRE_FRACTION) -> Tuple[int, int, int, int]:
    """The central ``fraction`` of the photo (px box)."""
    w, h = width * fraction, height * fraction
    return pad_box(((width - w) / 2, (height - h) / 2, w, h), width, height)


def _small(luma: np.ndarray) -> Tuple[np.ndarray, float]:
    """``(copy of luma reduced to DETECT_PX on its long side, its scale)``."""
    import cv2
    h, w = luma.shape
    s = min(1.0, DETECT_PX / max(h, w))
    if s >= 1.0:
        return luma, 1.0
    return cv2.resize(luma, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA), s


def detail_box(luma: np.ndarray, fraction: float = DETAIL_FRACTION) -> Optional[Tuple[int, int, int, int]]:
    """The window (side ``fraction`` of the short side) with the most fine detail: the
    largest box-filtered squared Laplacian on a reduced copy, less a noise-like floor (the
    median window).  None for a photo with no region clearly more detailed than the rest
    (flat, or detail everywhere alike)."""
    found = detail_box_scored(luma, fraction)
    return None if found is None else found[0]


def detail_box_scored(luma: np.ndarray, fraction: float = DETAIL_FRACTION, reduced=None):
    """:func:`detail_box` and its contrast: ``(box px, window energy / median window energy)``,
    or None.  ``reduced``: the ``(copy, scale)`` of :func:`reduced` when already made."""
    import cv2
    small, s = reduced or _small(luma)
    f = small.astype(np.float32)
    lap = cv2.Laplacian(f, cv2.CV_32F, ksize=3)
    k = max(3, int(min(small.shape) * fraction)) | 1
    energy = cv2.boxFilter(lap * lap, -1, (k, k), borderType=cv2.BORDER_REPLICATE)
    half = k // 2
    inner = energy[half:energy.shape[0] - half or None, half:energy.shape[1] - half or None]
    if inner.size == 0:
        return None
    iy, ix = np.unravel_index(int(np.argmax(inner)), inner.shape)
    best, med = float(inner[iy, ix]), float(np.median(inner))
    if best <= 1.0 or best < DETAIL_CONTRAST * med:
        return None
    cy, cx = iy + half, ix + half
    return tuple(int(round(v / s)) for v in (cx - half, cy - half, k, k)), best / max(med, 1e-6)


class SubjectFinder:
    """Finds the subject of photos (the cascades are loaded once).

    Args:
        mode: ``auto`` (face, else detail, else centre), ``face`` (face, else centre),
            ``detail`` or ``centre``.
        face_model: a YuNet ONNX file for :class:`cv2.FaceDetectorYN` (optional; used instead
            of the Haar cascade, and the only face detector on OpenCV 5, which dropped
            ``CascadeClassifier``).

    Raises:
        ConfigError: ``face_model`` is missing or not a model OpenCV can load.
    """

    def __init__(self, mode: str = "auto", face_model: Optional[str] = None):
        import cv2
        self.mode = mode
        self._face = self._eye = self._yunet = None
        if mode not in ("auto", "face"):
            return
        if face_model:
            # YuNet (OpenCV's DNN face detector); the ONNX file is not shipped with the wheels.
            if not os.path.isfile(face_model):
                raise ConfigError(f"cull.face_model = {face_model!r} does not exist; give the path of "
                                  "a YuNet ONNX file (face_detection_yunet_*.onnx) or leave it out")
            try:
                self._yunet = cv2.FaceDetectorYN.create(face_model, "", (DETECT_PX, DETECT_PX), 0.8)
            except cv2.error as e:
                raise ConfigError(f"cull.face_model = {face_model!r} is not a YuNet model OpenCV can "
                                  f"load ({str(e).strip().splitlines()[-1]})") from e
        if not hasattr(cv2, "CascadeClassifier"):
            if self._yunet is None:
                log.info("OpenCV %s has no CascadeClassifier (moved out of OpenCV 5): faces are looked for "
                         "only with a YuNet model (face_model)", cv2.__version__)
            return
        fp, ep = find_cascade(FACE_CASCADE), find_cascade(EYE_CASCADE)
        if fp is None:
            log.warning("no OpenCV Haar cascade %s (cv2.data or the opencv-data package): faces are "
                        "not looked for; install opencv-data (apt) for face detection", FACE_CASCADE)
            return
        if self._yunet is None:
            self._face = cv2.CascadeClassifier(fp)
        self._eye = cv2.CascadeClassifier(ep) if ep else None

    @property
    def has_faces(self) -> bool:
        """A face detector (YuNet or the Haar cascade) is loaded."""
        return self._yunet is not None or (self._face is not None and not self._face.empty())

    def faces(self, luma: np.ndarray):
        """Face boxes ``[(x, y, w, h)]`` in px of the photo, largest first."""
        return [box for box, _score in self.faces_scored(luma)]

    def faces_scored(self, luma: np.ndarray, reduced=None):
        """``[(face box px, confidence)]``, largest first, without the detections below
        :data:`FACE_MIN_SHARE` of the most confident one.  The confidence is YuNet's score
        (0..1) or, for the Haar cascade, the number of neighbouring detections merged into
        the face (``detectMultiScale2``; at least ``HAAR_MIN_NEIGHBORS``).  ``reduced``: the
        photo's reduced copy and scale when already made."""
        if not self.has_faces:
            return []
        import cv2
        small, s = reduced or _small(luma)
        m = max(12, int(min(small.shape) * MIN_FACE_FRACTION))
        if self._yunet is not None:
            self._yunet.setInputSize((small.shape[1], small.shape[0]))
            _n, found = self._yunet.detect(cv2.cvtColor(small, cv2.COLOR_GRAY2BGR))
            scored = [] if found is None else [(f[:4], float(f[-1])) for f in found if min(f[2], f[3]) >= m]
        else:
            boxes, neighbours = self._face.detectMultiScale2(cv2.equalizeHist(small), scaleFactor=HAAR_SCALE_FACTOR,
                                                             minNeighbors=HAAR_MIN_NEIGHBORS, minSize=(m, m))
            scored = [(b, float(n)) for b, n in zip(boxes, np.ravel(neighbours))]
        out = [(tuple(int(round(v / s)) for v in b), c) for b, c in scored]
        if out:  # a weak detection is no face when a much stronger one is there
            floor = FACE_MIN_SHARE * max(c for _b, c in out)
            out = [(b, c) for b, c in out if c >= floor]
        return sorted(out, key=lambda bc: -bc[0][2] * bc[0][3])

    def eyes(self, luma: np.ndarray, face) -> Optional[Tuple[int, int, int, int]]:
        """The box around the eyes found in the upper part of ``face`` (px), or None."""
        if self._eye is None or self._eye.empty():
            return None
        import cv2
        x, y, w, h = face
        crop = luma[y:y + int(h * 0.6), x:x + w]
        scale = min(1.0, 256.0 / max(1, w))
        if scale < 1:
            crop = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))),
                              interpolation=cv2.INTER_AREA)
        m = max(8, int(crop.shape[1] * 0.12))
        found = self._eye.detectMultiScale(crop, scaleFactor=1.1, minNeighbors=6, minSize=(m, m))
        if len(found) == 0:
            return None
        pts = np.array([[ex, ey, ex + ew, ey + eh] for ex, ey, ew, eh in found[:2]], np.float64) / scale
        x0, y0 = pts[:, 0].min() + x, pts[:, 1].min() + y
        return int(x0), int(y0), int(pts[:, 2].max() + x - x0), int(pts[:, 3].max() + y - y0)

    def find(self, luma: np.ndarray) -> Subject:
        """The :class:`~pifocus.cull.Subject` of one photo (2-D uint8 luma)."""
        h, w = luma.shape
        if self.mode == "centre":
            return Subject(centre_box(w, h), "centre")
        n_faces = 0
        reduced = _small(luma)
        if self.mode in ("auto", "face"):
            faces = self.faces_scored(luma, reduced)
            n_faces = len(faces)
            if faces:
                face, conf = faces[0]
                eyes = self.eyes(luma, face)
                if eyes is not None:
                    return Subject(pad_box(eyes, w, h, pad=0.15), "eyes", n_faces, conf)
                return Subject(pad_box(face, w, h), "face", n_faces, conf)
        if self.mode in ("auto", "detail"):
            found = detail_box_scored(luma, reduced=reduced)
            if found is not None:
                return Subject(pad_box(found[0], w, h), "detail", n_faces, found[1])
        return Subject(centre_box(w, h), "centre", n_faces)
