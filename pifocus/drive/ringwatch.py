"""Manual ring turn detection: notice that the focus ring was turned by hand after an
autofocus run, and tell a hand turn (the same focus curve, shifted) from a changed subject.

Positions are in drive units; sharpness scores are whatever the focus measure gives (only
their ratios and log-differences are compared).  numpy is imported inside the functions so
that importing :mod:`pifocus.drive` stays light.
"""

import math
from typing import List, Optional, Sequence, Tuple


def curve_offset(reference: Sequence[Sequence[float]], probe: Sequence[Sequence[float]],
                 max_shift: Optional[float] = None, steps: int = 201) -> Tuple[float, float]:
    """How far a focus curve has moved along the position axis.

    Compares log-sharpness of ``probe`` samples ``[[position, score], ...]`` against the
    ``reference`` curve (interpolated) shifted by candidate offsets.

    Returns:
        ``(offset, rms)``: the shift (probe position minus reference position of the same
        feature; the ring was turned by ``-offset`` relative to the motor) and the RMS
        log-residual at that shift.
    """
    import numpy as np

    ref = np.asarray(sorted((float(p), float(s)) for p, s in reference), np.float64)
    pr = np.asarray([(float(p), float(s)) for p, s in probe], np.float64)
    if len(ref) < 3 or len(pr) < 2:
        return 0.0, math.inf
    span = ref[-1, 0] - ref[0, 0]
    max_shift = span / 2 if max_shift is None else max_shift
    lr = np.log(np.maximum(ref[:, 1], 1e-6))
    lp = np.log(np.maximum(pr[:, 1], 1e-6))
    best = (0.0, math.inf)
    for off in np.linspace(-max_shift, max_shift, steps):
        x = pr[:, 0] - off
        ok = (x >= ref[0, 0]) & (x <= ref[-1, 0])
        if ok.sum() < 2:
            continue
        pred = np.interp(x[ok], ref[:, 0], lr)
        rms = float(np.sqrt(np.mean((lp[ok] - pred) ** 2)))
        if rms < best[1] - 1e-12 or (abs(rms - best[1]) < 1e-12 and abs(off) < abs(best[0])):
            best = (float(off), rms)
    return best


class RingWatch:
    """Notice that the focus ring was turned by hand while the drive stood still.

    Give it the AF curve and final position (:meth:`reset`); feed it the sharpness of frames
    taken while the drive has not moved (:meth:`update`).  When the sharpness stays well
    below what the curve says it should be at this position (``drop`` ratio for
    ``frames`` frames in a row) the focus no longer matches the position: either the
    subject moved or the ring was turned.  :meth:`locate` then tells them apart with a short
    probe sweep: a curve of the same shape, shifted, means a manual turn of ``-offset``.

    Args:
        drop: sharpness ratio (measured / expected at the resting position) below which a
            frame counts as low.
        frames: low frames in a row before :meth:`update` fires.
        tolerance: shifts up to this (drive units) count as no turn in :meth:`locate`.
    """

    def __init__(self, drop: float = 0.5, frames: int = 5, tolerance: float = 0.0):
        self.drop = drop
        self.frames = frames
        self.tolerance = tolerance
        self.curve: List[Tuple[float, float]] = []
        self.position: Optional[float] = None
        self.expected = math.nan
        self._low = 0

    def reset(self, curve, position: float, expected: Optional[float] = None) -> None:
        """Start watching after an AF run that ended at ``position``."""
        import numpy as np

        self.curve = sorted((float(p), float(s)) for p, s in curve)
        self.position = float(position)
        if expected is None and self.curve:
            xs = np.array([c[0] for c in self.curve])
            ys = np.array([c[1] for c in self.curve])
            expected = float(np.interp(position, xs, ys))
        self.expected = float(expected) if expected is not None else math.nan
        self._low = 0

    def update(self, score: float) -> bool:
        """Feed one frame's sharpness; True once it has stayed low long enough."""
        if not math.isfinite(self.expected) or self.expected <= 0:
            return False
        self._low = self._low + 1 if score < self.drop * self.expected else 0
        return self._low >= self.frames

    def locate(self, probe) -> dict:
        """Classify a probe sweep ``[[position, score], ...]`` taken after :meth:`update` fired.

        Returns:
            ``{"manual_turn": bool, "offset": float, "rms": float}``; ``offset`` is where
            the peak now is relative to where the drive believes it put it.
        """
        off, rms = curve_offset(self.curve, probe)
        turned = math.isfinite(rms) and rms < 1.0 and abs(off) > max(self.tolerance, 1e-9)
        return {"manual_turn": bool(turned), "offset": off, "rms": rms}
