"""Culling a card of photos: subject focus, motion blur, noise and exposure -> keep / maybe / reject.

The types every part shares live here: :class:`CullParams` (the tolerances), :class:`Subject`
(where the subject is) and :class:`CullResult` (what was concluded about one photo).  One
module per job:

* :mod:`.inputs` -- which files (JPEG, PNG, DNG and other raws through ``rawpy``), decoding to luma.
* :mod:`.exif` -- capture time from EXIF ``DateTimeOriginal`` (standard library only).
* :mod:`.subject` -- the subject region: largest face (OpenCV Haar cascade) and its eyes,
  else the most detailed region, else the centre.
* :mod:`.scoring` -- one photo -> :class:`CullResult`: the pipeline's own
  :class:`~pifocus.focus.FocusAnalyzer` and :mod:`~pifocus.focus.exposure` on the subject,
  blur from the model's heads or :mod:`pifocus.focus.blurest`, the verdict and its reasons.
* :mod:`.bursts` -- photos close in time form a group, judged on one shared subject region;
  the sharpest on it is its best.
* :mod:`.xmp` -- XMP sidecars (``xmp:Rating``, ``xmp:Label``, ``darktable:colorlabels``),
  merged into an existing sidecar, written atomically.
* :mod:`.report` -- the offline HTML contact sheet (thumbnails, subject box, heat map, reason).
* :mod:`.batch` -- score many photos over all cores, with progress.
"""

import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

from ..validate import require

#: The verdicts, best first.
VERDICTS = ("keep", "maybe", "reject")
#: Subject modes: ``auto`` = face, else most detailed region, else centre.
SUBJECT_MODES = ("auto", "face", "detail", "centre")


def _lerp(lenient: float, strict: float, t: float) -> float:
    return lenient + (strict - lenient) * t


@dataclass(frozen=True)
class CullParams:
    """Validated tolerances of the cull (``pifocus cull --focus/--noise/--exposure/--coc-px``).

    Each tolerance runs from 0 (lenient: only gross faults reject) to 1 (strict); the limits
    they give are linear in between (see the properties).  A measure past its *maybe* limit
    makes the photo ``maybe``; past its *reject* limit (twice as far), ``reject``.

    Attributes:
        focus: focus tolerance 0..1 [0.5]: the subject's defocus blur radius may reach
            ``coc_px x (2 - focus)`` and still be kept.
        noise: noise tolerance 0..1 [0.5]: noise sigma (DN of 8-bit luma) up to
            ``12 - 8 x noise`` is fine (4 DN when strict, 12 DN when lenient).
        exposure: exposure tolerance 0..1 [0.5]: the subject's EV offset from mid-grey up to
            ``1.5 - 0.75 x exposure`` stops and clipped subject pixels up to ``10 - 7 x exposure`` %
            are fine.
        coc_px: circle of confusion [1.5]: the blur radius (px of the full-resolution photo)
            that is critically sharp.
        burst_gap_s: photos at most this far apart (s) belong to one burst [2.0].
        subject: ``auto``, ``face``, ``detail`` or ``centre`` [auto].
        face_model: a YuNet ONNX file (``face_detection_yunet_*.onnx``) for OpenCV's
            ``FaceDetectorYN``; None = the Haar cascade where OpenCV has one.
        min_p_in_focus: at the default focus tolerance, a subject the CNN calls in focus
            with less than this probability is at best ``maybe`` [0.15]; the bar scales
            with ``2 x focus`` (0 when lenient, twice this when strict).
    """

    focus: float = 0.5
    noise: float = 0.5
    exposure: float = 0.5
    coc_px: float = 1.5
    burst_gap_s: float = 2.0
    subject: str = "auto"
    min_p_in_focus: float = 0.15
    face_model: Optional[str] = None

    def __post_init__(self):
        s = "cull"
        for key in ("focus", "noise", "exposure"):
            v = getattr(self, key)
            require(isinstance(v, (int, float)) and 0.0 <= v <= 1.0, s, key, v,
                    "0..1 (0 = lenient, 1 = strict)", f"e.g. --{key} 0.5")
        require(isinstance(self.coc_px, (int, float)) and 0.25 <= self.coc_px <= 20, s, "coc_px",
                self.coc_px, "0.25..20 px (blur radius of the full-resolution photo)", "e.g. --coc-px 1.5")
        require(isinstance(self.burst_gap_s, (int, float)) and 0.0 <= self.burst_gap_s <= 3600, s,
                "burst_gap_s", self.burst_gap_s, "0..3600 s (0 = no bursts)", "e.g. --burst-gap-s 2")
        require(self.subject in SUBJECT_MODES, s, "subject", self.subject, ", ".join(SUBJECT_MODES))
        require(0.0 <= self.min_p_in_focus < 1.0, s, "min_p_in_focus", self.min_p_in_focus, "0 <= x < 1")

    @property
    def keep_blur_px(self) -> float:
        """Largest subject blur radius (px) that is kept."""
        return self.coc_px * (2.0 - self.focus)

    @property
    def motion_keep_px(self) -> float:
        """Longest motion streak (px) that is kept (twice the kept blur radius: a diameter)."""
        return 2.0 * self.keep_blur_px

    @property
    def noise_keep_dn(self) -> float:
        """Largest noise sigma (DN) that is kept."""
        return _lerp(12.0, 4.0, self.noise)

    @property
    def ev_keep(self) -> float:
        """Largest |EV offset| of the subject (stops) that is kept."""
        return _lerp(1.5, 0.75, self.exposure)

    @property
    def clip_keep_pct(self) -> float:
        """Largest share of clipped subject pixels (%) that is kept."""
        return _lerp(10.0, 3.0, self.exposure)


@dataclass(frozen=True)
class Subject:
    """Where the subject is.

    Attributes:
        box_px: ``(x, y, w, h)`` in pixels of the full-resolution photo.
        kind: ``face``, ``eyes``, ``detail`` or ``centre``.
        faces: how many faces were found.
        confidence: how sure the finder is of this region, comparable within one ``kind``:
            a face's detector score (YuNet 0..1; Haar: the neighbouring detections merged
            into it), a detail region's contrast (its Laplacian energy / the median
            window's); 0 for the centre.
        shared_from: when the region is the burst's shared subject region
            (:func:`pifocus.cull.bursts.shared_regions`), the photo it was found on; else "".
    """

    box_px: Tuple[int, int, int, int]
    kind: str
    faces: int = 0
    confidence: float = 0.0
    shared_from: str = ""


def _num(v, nd=3):
    if v is None:
        return None
    v = float(v)
    return None if not math.isfinite(v) else round(v, nd)


@dataclass
class CullResult:
    """Everything the cull concluded about one photo.

    Attributes:
        path: the photo; width, height: its size (px).
        time_s: capture time (EXIF, else the file's modification time; s since the epoch);
            time_source: ``exif`` or ``mtime``.
        subject: the :class:`Subject`.
        blur_px: subject defocus blur radius (px of the photo); NaN when not measurable.
        blur_source: ``heads`` (the model's blur head) or ``blurest`` (model-free estimate).
        edge_sigma_px: the median Gaussian width of all the subject's edges (px, from
            ``blurest``) -- continuous where ``blur_px`` reads 0 for everything at least as
            sharp as an in-focus edge, so it ranks the photos of a burst; NaN with heads.
        motion_blur, motion_px, motion_angle_deg: motion blur seen on the subject, its length
            (px) and direction (degrees counter-clockwise from horizontal).
        p_in_focus: the CNN's in-focus probability of the subject (NaN when no tile was judged).
        sharpness: the analyzer's noise-corrected Laplacian variance of the subject (DN^2).
        focus_verdict: the analyzer's verdict category of the subject.
        noise_sigma_dn, snr_db: noise sigma (DN) and subject SNR (dB).
        ev_offset, clip_high_pct, clip_low_pct: of the subject region.
        verdict: ``keep``, ``maybe`` or ``reject``; reasons: why (empty for a clean keep).
        rating: ``xmp:Rating`` 1..5 (-1 = rejected, with ``--reject-rating -1``).
        group, group_size, best: burst group index, its size, best of its group.
        tiles: the analyzer's tile grid for the heat map (``grid_px``, ``p``, ``textured``).
        timings_ms: ``decode``, ``subject``, ``analyzer``, ``blur``, ``exposure``, ``total`` (wall) and
            ``cpu`` (CPU time of decoding and scoring this photo).
    """

    path: str
    width: int
    height: int
    time_s: float
    time_source: str
    subject: Subject
    blur_px: float
    blur_source: str
    edge_sigma_px: float
    motion_blur: bool
    motion_px: float
    motion_angle_deg: float
    p_in_focus: float
    sharpness: float
    focus_verdict: str
    noise_sigma_dn: float
    snr_db: Optional[float]
    ev_offset: float
    clip_high_pct: float
    clip_low_pct: float
    verdict: str = "keep"
    reasons: List[str] = field(default_factory=list)
    rating: int = 3
    group: int = 0
    group_size: int = 1
    best: bool = False
    tiles: dict = field(default_factory=dict)
    timings_ms: dict = field(default_factory=dict)

    @property
    def reason(self) -> str:
        """The reasons as one line (``"sharp"`` for a clean keep)."""
        return "; ".join(self.reasons) if self.reasons else "sharp, clean, well exposed"

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN becomes null)."""
        d = asdict(self)
        for k in ("blur_px", "edge_sigma_px", "motion_px", "motion_angle_deg", "p_in_focus", "sharpness", "noise_sigma_dn",
                  "snr_db", "ev_offset", "clip_high_pct", "clip_low_pct", "time_s"):
            d[k] = _num(d[k], 4 if k == "p_in_focus" else 3)
        d["subject"] = {"box_px": list(self.subject.box_px), "kind": self.subject.kind,
                        "faces": self.subject.faces, "confidence": _num(self.subject.confidence),
                        "shared_from": self.subject.shared_from or None}
        d["reason"] = self.reason
        d["timings_ms"] = {k: round(float(v), 2) for k, v in self.timings_ms.items()}
        return d
