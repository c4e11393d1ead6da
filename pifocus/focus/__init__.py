"""Focus judgement: tile measures, noise gate, CNN stage, verdict and peak-hold meter.

* :mod:`.measures` -- pure numeric functions (tile grid, Laplacian variance, noise floor).
* :mod:`.verdict`  -- hysteresis/dwell verdict and peak-hold meter state machines.
* :mod:`.blur`     -- blur-based judgement: subject blur radius, verdict category, absolute meter.
* :mod:`.scale`    -- which pyramid level the subject's detail lives at (``analysis_scale = "auto"``).
* :mod:`.analyzer` -- :class:`FocusAnalyzer`, the one way in: frame -> :class:`FocusReport`.
* :mod:`.levels`   -- the pyramid levels of the ROI, their tile statistics, noise gate and classification.
* :mod:`.tiles`    -- one level's tile grid and weights, and what its tiles concluded.
* :mod:`.votes`    -- the blurred votes: tiles too flat to judge, out of focus one or two octaves coarser.
* :mod:`.params`   -- :class:`AnalysisParams`, the validated ``[analysis]`` table.
* :mod:`.report`   -- :class:`FocusReport`, everything concluded about one frame.
* :mod:`.heatmap`  -- tile heat maps with legend, verdict, ``blur_px`` and file name (``score --heatmap``).
* :mod:`.exposure` -- exposure and noise readouts: EV offset, clipping, noise sigma, SNR, histogram, ISO.
* :mod:`.blurest` -- model-free defocus radius (re-blur gradient ratio) and motion-blur estimate.
"""

from .analyzer import DEFAULT_ROI, AnalysisParams, FocusAnalyzer  # noqa: F401
from .report import FocusReport  # noqa: F401
from .verdict import PeakHoldParams, VerdictParams  # noqa: F401
