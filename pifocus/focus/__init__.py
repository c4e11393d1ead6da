"""Focus judgement: tile measures, noise gate, CNN stage, verdict and peak-hold meter.

* :mod:`.measures` -- pure numeric functions (tile grid, Laplacian variance, noise floor).
* :mod:`.verdict`  -- hysteresis/dwell verdict and peak-hold meter state machines.
* :mod:`.blur`     -- blur-based judgement: subject blur radius, verdict category, absolute meter.
* :mod:`.scale`    -- which pyramid level the subject's detail lives at (``analysis_scale = "auto"``).
* :mod:`.analyzer` -- :class:`FocusAnalyzer`, the one way in: frame -> :class:`FocusReport`.
* :mod:`.report`   -- :class:`FocusReport`, everything concluded about one frame.
* :mod:`.exposure` -- exposure and noise readouts: EV offset, clipping, noise sigma, SNR, histogram, ISO.
"""

from .analyzer import DEFAULT_ROI, AnalysisParams, FocusAnalyzer  # noqa: F401
from .report import FocusReport  # noqa: F401
from .verdict import PeakHoldParams, VerdictParams  # noqa: F401
