"""Statistics of a replay: paired bootstrap intervals, "beats" rates, simulated A/B tests.

Every figure is over videos: arrays hold one value per held-out video, and the bootstrap resamples
videos (the same draw for both sides of a comparison, so intervals are paired).

    lo, hi = bootstrap_ci(values, rng)
    summary = compare(system_ctr, human_ctr, rng)          # uplift and beats rate with intervals
    ab = simulated_ab(system_ctr, human_ctr, exposure, rng)  # binomial clicks, measured uplift
"""

from __future__ import annotations

import numpy as np

CI_LEVEL = 0.95


def _interval(draws: np.ndarray) -> tuple[float, float]:
    tail = (1 - CI_LEVEL) / 2 * 100
    lo, hi = np.nanpercentile(draws, [tail, 100 - tail])
    return float(lo), float(hi)


def resample_index(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """`n_boot` bootstrap draws of `n` video indices (rows), shared by paired statistics."""
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_ci(values: np.ndarray, idx: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of the mean of `values` over the draws `idx`."""
    values = np.asarray(values, float)
    return _interval(values[idx].mean(axis=1))


def compare(system: np.ndarray, human: np.ndarray, idx: np.ndarray) -> dict:
    """Mean CTR, relative uplift over `human` and the share of videos where `system` is higher,
    each with its paired 95% bootstrap interval."""
    system, human = np.asarray(system, float), np.asarray(human, float)
    boot_sys, boot_hum = system[idx].mean(axis=1), human[idx].mean(axis=1)
    beats = (system > human).astype(float)
    return {
        "mean_ctr": float(system.mean()),
        "mean_ctr_ci": _interval(boot_sys),
        "uplift": float(system.mean() / human.mean() - 1),
        "uplift_ci": _interval(boot_sys / boot_hum - 1),
        "beats_rate": float(beats.mean()),
        "beats_rate_ci": _interval(beats[idx].mean(axis=1)),
    }


def simulated_ab(
    system: np.ndarray, human: np.ndarray, exposure: np.ndarray, idx: np.ndarray, seed: int
) -> dict:
    """One simulated A/B test per video: each arm gets `exposure` views and binomial clicks.

    The measured uplift is pooled clicks of the system arm over the human arm minus 1 (equal
    exposure), with a paired bootstrap over videos; the interval therefore carries both the
    click noise drawn here and the choice of videos.
    """
    rng = np.random.default_rng(seed)
    exposure = np.asarray(exposure, dtype=np.int64)
    clicks_sys = rng.binomial(exposure, np.asarray(system, float))
    clicks_hum = rng.binomial(exposure, np.asarray(human, float))
    boot = clicks_sys[idx].sum(axis=1) / np.maximum(clicks_hum[idx].sum(axis=1), 1) - 1
    return {
        "exposure_per_arm_total": int(exposure.sum()),
        "clicks_system": int(clicks_sys.sum()),
        "clicks_human": int(clicks_hum.sum()),
        "ctr_system": float(clicks_sys.sum() / exposure.sum()),
        "ctr_human": float(clicks_hum.sum() / exposure.sum()),
        "uplift": float(clicks_sys.sum() / max(clicks_hum.sum(), 1) - 1),
        "uplift_ci": _interval(boot),
        "videos_won": float(np.mean(clicks_sys > clicks_hum)),
    }
