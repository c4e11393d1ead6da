"""The blurred votes of :class:`~pifocus.focus.levels.LevelJudge` (``[analysis] blurred_votes``,
``blurred_octaves``): the tiles too flat to judge at the analysis scale whose structure one
(or, flat there too, two) octaves coarser reaches the analysis level's texture bar are
classified there, and vote *against* the in-focus share when they are out of focus there as
well -- a defocused subject then still votes, instead of leaving the vote to whatever else in
the region is sharp."""

from typing import Dict, Optional, Tuple

import numpy as np

from . import measures as m
from .tiles import _Judged, _Level


class BlurredVotes:
    """The votes of one :class:`~pifocus.focus.levels.LevelJudge` (its params, classifier and
    CNN budget), with the grids of the reduced levels they are measured on."""

    def __init__(self, judge):
        self.judge = judge
        self._aligned: Dict[Tuple[int, int], _Level] = {}   # the analysis grid reduced

    def forget_geometry(self) -> None:
        """Drop the reduced grids (the ROI or the frame size changed)."""
        self._aligned = {}

    def _budget(self, base: _Judged) -> int:
        """Tiles the CNN may still take this frame (``max_cnn_tiles``; no limit without one)."""
        if self.judge.classifier is None:
            return int(base.informative.size)
        return int(self.judge.params.max_cnn_tiles - base.n_cnn)

    def possible(self, base: _Judged, octaves: int = 1) -> bool:
        """Whether :meth:`mark` can find votes ``octaves`` octaves coarser at all: the
        votes are on, the frame has enough judged tiles (else it is judged on a reduced copy),
        CNN budget is left, the reduced cells keep 2 px, and some tile is still free (flat
        here and at every finer coarse level tried)."""
        p = self.judge.params
        d = 2 ** int(octaves)
        g = base.level.geom
        return bool(p.blurred_votes and self._budget(base) > 0
                    and int(base.judged.sum()) >= p.verdict.min_informative_tiles
                    and g.cell_h // d >= 2 and g.cell_w // d >= 2
                    and (~base.informative & ~base.examined).any())

    def mark(self, base: _Judged, coarse: Optional[_Judged], coarse_luma, octaves: int = 1) -> None:
        """Set ``base.blurred`` (and ``base.blurred_blur``): the analysis level's tiles too
        flat to judge there whose structure ``octaves`` octaves coarser
        -- measured on the analysis grid reduced as much, so each tile covers the same part of
        the ROI -- is at least the analysis level's own texture bar (structure that, sharp,
        would have been judged) and which are out of focus there as well: a part of the
        subject blurred past what the analysis scale resolves.  Out of focus: with a blur
        head, blur above ``coc_px`` analysis pixels under either focus rule (the head says by
        how much); without one, the classifier's probability below its threshold.
        ``coarse`` (the measured level that much coarser) gives the noise model there.  Tiles
        already marked (by a finer call) keep their vote.  Skipped when the frame has too few
        judged tiles (it is judged on a reduced copy then), the CNN budget (``max_cnn_tiles``)
        is spent, or the reduced cells would be under 2 px (:meth:`possible`).

        Raises:
            ModelError: the classifier failed on the tiles.
        """
        p = self.judge.params
        if coarse is None or coarse_luma is None or not self.possible(base, octaves):
            return
        budget = self._budget(base)
        d = 2 ** int(octaves)
        g = base.level.geom
        red = m.GridGeometry(g.x // d, g.y // d, g.rows, g.cols, g.cell_h // d, g.cell_w // d,
                             max(1, g.block // d))
        level = self._aligned.get((coarse.factor, d))
        if level is None or level.key != (*coarse_luma.shape, p.effective_roi, p.rows, p.cols, red):
            level = self._aligned[(coarse.factor, d)] = _Level(p, *coarse_luma.shape, geom=red)
        # Only the tiles too flat here and at every finer coarse level tried can vote (a few
        # as a rule): measured alone.  A tile structured one octave coarser was judged there
        # -- sharp there it stays out of the vote (smooth content), two octaves coarser too.
        free = ~base.informative & ~base.examined
        st = m.tile_stats_of(coarse_luma, red, free)
        floor = m.noise_floor(coarse.k, st.mean, p.noise_offset_dn)
        cand = (m.texture_gate(st.lap_var, floor, p.gate_factor) & free
                & (st.lap_var >= p.gate_factor * base.floor))
        if not cand.any():
            return
        base.examined = base.examined | cand
        trial = _Judged(level, st, coarse.k, floor, cand, coarse.factor)
        self.judge.classify(coarse_luma, trial, budget)
        base.n_cnn += trial.n_cnn
        if self.judge.has_blur:
            # The head's blur, not the in-focus output, decides under both focus rules: the
            # binary net calls a tile in focus up to about 1.5 px of blur at the coarse level,
            # so a subject blurred 2-4 px at the analysis scale kept no vote (measured on the
            # shared sweeps' stills: lightbox's frame 5 and wicker's 8, 20, 21 lit).
            # Two octaves coarser a tile must be blurred past what one octave coarser would
            # have resolved (``coc_px x d / 2``): a tile sharp there (0.4 px at 4x: 1.6
            # analysis px) that was flat one octave coarser is smooth content, not a subject
            # blurred by 1.6 px -- that would have shown its structure at 2x.
            soft = trial.blur / base.factor > p.coc_px * d / 2      # NaN (not classified): False
        else:
            soft = trial.p < self.judge.threshold
        new = cand & soft
        base.blurred = base.blurred | new
        base.blurred_blur = np.where(new, trial.blur, base.blurred_blur).astype(np.float32)
