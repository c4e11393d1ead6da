"""One pyramid level's tile grid and what its tiles concluded: the building blocks of
:class:`~pifocus.focus.levels.LevelJudge` and its :mod:`blurred votes <.votes>`."""

from typing import Optional

import numpy as np

from . import measures as m


class _Level:
    """One pyramid level's geometry, weights and buffers (rebuilt when the frame size or the
    ROI changes)."""

    def __init__(self, params: "AnalysisParams", h: int, w: int, geom: Optional[m.GridGeometry] = None):
        self.key = (h, w, params.effective_roi, params.rows, params.cols, geom)
        roi_px = m.roi_pixels(params.effective_roi, w, h)
        self.geom = geom if geom is not None else m.grid_geometry(roi_px, params.rows, params.cols, params.block_px)
        g = self.geom
        self.weights = (m.centre_weights(g.rows, g.cols, params.centre_sigma) if params.roi is None
                        else np.ones((g.rows, g.cols), np.float32))
        self.workspace = m.Workspace()


class _Judged:
    """What one pyramid level concluded (arrays of shape ``(rows, cols)``)."""

    def __init__(self, level: _Level, st, k: float, floor, informative, factor: int):
        self.level, self.st, self.k, self.floor, self.informative = level, st, k, floor, informative
        self.factor = factor          # sensor pixels per pixel of this level
        shape = st.lap_var.shape
        self.blurred = np.zeros(shape, bool)     # flat here, out of focus one or two octaves coarser
        self.blurred_blur = np.full(shape, np.nan, np.float32)   # their blur there, sensor px
        self.examined = np.zeros(shape, bool)    # structured at a coarser level (voting or not)
        self.p = np.full(shape, np.nan, np.float32)
        self.blur = np.full(shape, np.nan, np.float32)   # defocus radius, sensor px
        self.motion = np.full(shape, np.nan, np.float32)
        self.n_cnn = 0

    @property
    def judged(self) -> np.ndarray:
        """Tiles that carry a verdict (informative and classified)."""
        return self.informative & ~np.isnan(self.p)
