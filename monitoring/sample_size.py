"""Sample-size rules shared by the checks (`monitoring.calibrate`) and the detection table
(`monitoring.power`): how many units a mean-type check needs, and how many windows a fault takes
to be caught."""

from __future__ import annotations

import math

from scipy import stats


def required_n(sd: float, effect: float, alpha: float, power: float = 0.8) -> int:
    """Units needed to detect a mean shift of `effect` (same unit as `sd`) at level `alpha`."""
    if effect <= 0:
        raise ValueError("effect must be positive")
    if not math.isfinite(sd) or sd <= 0:
        return 1
    z = stats.norm.isf(alpha) + stats.norm.isf(1 - power)
    return max(1, math.ceil((z * sd / effect) ** 2))


def windows_needed(p: float, target: float = 0.95) -> int | None:
    """Consecutive windows until a fault detected with per-window probability p is caught with
    probability `target` (None when p is 0)."""
    if p <= 0:
        return None
    if p >= target:
        return 1
    return math.ceil(math.log(1 - target) / math.log(1 - p))
