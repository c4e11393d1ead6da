"""The :class:`FocusReport`: everything the pipeline concluded about one frame."""

import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from .exposure import FrameExposure


@dataclass
class FocusReport:
    """The focus judgement of one frame.

    Tile arrays have shape ``(rows, cols)`` and cover the subject ROI.

    Attributes:
        frame_index, timestamp_ns, lens_position: copied from the :class:`~pifocus.frames.Frame`.
        roi: the subject region, normalized ``(x, y, w, h)``.
        grid_px: the tile grid in pixels ``(x, y, cell_w, cell_h)``.
        tile_lap_var: Laplacian variance per tile (DN²).
        tile_floor: Laplacian variance that sensor noise alone gives each tile (DN²).
        tile_informative: True where the tile has real texture (it voted).
        tile_p: in-focus probability per tile (CNN, or the Laplacian mapping in
            Laplacian-only mode); NaN where the tile was not judged.
        tile_weight: the tile's weight in the verdict (centre weighting).
        noise_sigma_dn: estimated sensor noise at mid-grey (DN RMS).
        sharpness: noise-corrected Laplacian variance of the ROI (DN²); higher is sharper.
        p_in_focus: weighted mean in-focus probability of the informative tiles (NaN if none).
        in_focus_fraction: weighted share of informative tiles judged in focus (0..1).
        informative_fraction: weighted share of ROI tiles that are informative (0..1).
        judgeable: enough informative tiles to judge at all.
        raw_in_focus: this frame's verdict alone.
        in_focus: the verdict after hysteresis and minimum dwell (what the LED shows).
        meter: sharpness relative to the best of this focusing pass (0..1, peak hold),
            capped by the subject's absolute closeness to focus where it is known (the blur
            rule's ``coc_px / blur_px``; otherwise the detail's octave ratio and -- for a still
            or before the pass has gone through focus -- the classifier's confidence; before the
            ROI's scale is learned, a live frame whose own detail scale is coarser than the one
            it is judged at reads at most their ratio, and is not in focus).
        peak_sharpness: the best sharpness of this focusing pass.
        scene_changed: this frame started a new focusing pass (scene cut).
        mode: ``"cnn"`` or ``"laplacian"``.
        tiles_to_cnn: tiles sent to the classifier for this frame.
        timings_ms: ``prefilter``, ``cnn``, ``verdict``, ``total`` milliseconds (and
            ``coarse`` when the frame was judged again reduced).
        verdict: ``in_focus``, ``near``, ``out_of_focus``, ``motion_blur`` or ``no_detail``
            (:data:`~pifocus.focus.blur.CATEGORIES`); agrees with ``in_focus`` and ``judgeable``.
        blur_px: the subject's defocus blur radius in pixels at the analysis scale (the
            radius ``on_fraction`` of the informative weight is at or below); NaN without the
            model's blur head.
        blur_px_sensor: the same in sensor pixels (``blur_px * analysis_scale``).
        motion_blur: the subject is motion-blurred (never in focus then).
        analysis_scale: sensor pixels per analysis pixel; judged_scale: the reduction that
            carried the verdict (larger than ``analysis_scale`` for a strongly defocused frame).
        coc_px: the circle of confusion the verdict used (blur radius, analysis pixels).
        tile_blur_px: per-tile blur radius (analysis pixels; NaN where not judged).
        tile_p_motion: per-tile motion-blur probability (NaN where not judged).
        tile_blurred: True where a tile too flat to judge at the analysis scale is out of
            focus one octave coarser (or, flat there too, two octaves coarser) and voted
            against the in-focus share (``[analysis] blurred_votes``, ``blurred_octaves``);
            None = not computed.
        near_meter: the meter from which a frame not in focus reads ``near`` -- without a
            blur estimate, and with one under the classifier rule (``[analysis] near_meter``;
            NaN: not given).
        near_needs_meter: ``near`` needed the meter at ``near_meter`` as well as the blur
            (the classifier rule with a blur head); False under the blur rule.
        exposure: the frame's exposure readouts (:class:`~pifocus.focus.exposure.FrameExposure`:
            levels, EV offset, clipping of frame and ROI, noise sigma, SNR, histogram,
            ``exposure_us``, ``analogue_gain``, ISO); None when ``[analysis] exposure`` is off.
    """

    frame_index: int
    timestamp_ns: int
    lens_position: Optional[float]
    roi: Tuple[float, float, float, float]
    grid_px: Tuple[int, int, int, int]
    tile_lap_var: np.ndarray
    tile_floor: np.ndarray
    tile_informative: np.ndarray
    tile_p: np.ndarray
    tile_weight: np.ndarray
    noise_sigma_dn: float
    sharpness: float
    p_in_focus: float
    in_focus_fraction: float
    informative_fraction: float
    judgeable: bool
    raw_in_focus: bool
    in_focus: bool = False
    meter: float = 0.0
    peak_sharpness: float = 0.0
    scene_changed: bool = False
    mode: str = "cnn"
    tiles_to_cnn: int = 0
    timings_ms: Dict[str, float] = field(default_factory=dict)
    path: Optional[str] = None
    verdict: str = ""
    blur_px: float = math.nan
    blur_px_sensor: float = math.nan
    motion_blur: bool = False
    analysis_scale: int = 1
    judged_scale: int = 1
    coc_px: float = 1.0
    tile_blur_px: Optional[np.ndarray] = None
    tile_p_motion: Optional[np.ndarray] = None
    tile_blurred: Optional[np.ndarray] = None
    near_meter: float = math.nan
    near_needs_meter: bool = False
    exposure: Optional[FrameExposure] = None

    def __post_init__(self):
        if not self.verdict:
            self.verdict = ("no_detail" if not self.judgeable else
                            "in_focus" if self.in_focus else "out_of_focus")

    @property
    def rows(self) -> int:
        """Tile rows."""
        return int(self.tile_lap_var.shape[0])

    @property
    def cols(self) -> int:
        """Tile columns."""
        return int(self.tile_lap_var.shape[1])

    def to_dict(self, tiles: bool = True) -> dict:
        """A JSON-ready dict (NaN becomes ``null``).  ``tiles=False`` drops the per-tile grid
        and the exposure histogram (the exposure readouts themselves stay)."""
        def num(x, nd=4):
            x = float(x)
            return None if math.isnan(x) or math.isinf(x) else round(x, nd)

        d = {
            "frame": self.frame_index,
            "timestamp_ns": self.timestamp_ns,
            "lens_position": None if self.lens_position is None else num(self.lens_position, 3),
            "sharpness": num(self.sharpness, 2),
            "p_in_focus": num(self.p_in_focus),
            "in_focus": bool(self.in_focus),
            "verdict": self.verdict,
            "blur_px": num(self.blur_px, 3),
            "blur_px_sensor": num(self.blur_px_sensor, 3),
            "motion_blur": bool(self.motion_blur),
            "coc_px": num(self.coc_px, 3),
            "analysis_scale": int(self.analysis_scale),
            "judged_scale": int(self.judged_scale),
            "raw_in_focus": bool(self.raw_in_focus),
            "judgeable": bool(self.judgeable),
            "in_focus_fraction": num(self.in_focus_fraction),
            "informative_fraction": num(self.informative_fraction),
            "meter": num(self.meter),
            "peak_sharpness": num(self.peak_sharpness, 2),
            "scene_changed": bool(self.scene_changed),
            "noise_sigma_dn": num(self.noise_sigma_dn, 3),
            "mode": self.mode,
            "tiles_to_cnn": int(self.tiles_to_cnn),
            "roi": [round(float(v), 4) for v in self.roi],
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings_ms.items()},
        }
        if self.exposure is not None:
            d["exposure"] = self.exposure.to_dict(histogram=tiles)
        if self.path is not None:
            d["path"] = self.path
        if tiles:
            d["tiles"] = {
                "rows": self.rows,
                "cols": self.cols,
                "grid_px": [int(v) for v in self.grid_px],
                "p": [[num(v, 3) for v in row] for row in self.tile_p],
                "textured": [[bool(v) for v in row] for row in self.tile_informative],
                "lap_var": [[num(v, 1) for v in row] for row in self.tile_lap_var],
            }
            if self.tile_blur_px is not None:
                d["tiles"]["blur_px"] = [[num(v, 2) for v in row] for row in self.tile_blur_px]
            if self.tile_p_motion is not None:
                d["tiles"]["p_motion"] = [[num(v, 3) for v in row] for row in self.tile_p_motion]
            if self.tile_blurred is not None:
                d["tiles"]["blurred"] = [[bool(v) for v in row] for row in self.tile_blurred]
        return d
