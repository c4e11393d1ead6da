"""Step timing shared by the step-counting drives (step/dir stepper, ULN2003): the intervals
between step pulses for a trapezoidal speed profile."""

import math
from typing import Optional


def step_intervals(steps: int, max_rate: float, accel: float, start_rate: Optional[float] = None):
    """Seconds between step pulses for a trapezoidal (or triangular) speed profile.

    Args:
        steps: number of steps.
        max_rate: top speed, steps/s.
        accel: acceleration, steps/s² (0 = constant ``max_rate``).
        start_rate: speed of the first step (default ``min(max_rate, sqrt(accel))``, i.e.
            what the motor can start at without stalling).

    Returns:
        A float array of ``steps`` intervals; symmetric ramps up and down.
    """
    import numpy as np

    n = int(steps)
    if n <= 0:
        return np.zeros(0)
    if accel <= 0:
        return np.full(n, 1.0 / max_rate)
    v0 = min(max_rate, start_rate if start_rate else max(math.sqrt(accel), 1.0))
    k = np.arange(n, dtype=np.float64)
    up = np.sqrt(v0 * v0 + 2.0 * accel * k)           # speed reachable after k steps
    down = np.sqrt(v0 * v0 + 2.0 * accel * (n - 1 - k))  # speed from which we can still stop
    v = np.minimum(np.minimum(up, down), max_rate)
    return 1.0 / v
