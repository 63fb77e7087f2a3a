"""Statistics of a replay: per-video log-ratios with BCa intervals, Wilson intervals for rates,
the spread between seeds.

Every comparison is over videos: arrays hold one value per held-out video. The uplift of an arm
over a baseline is the geometric mean of the per-video ratios, exp(mean log(arm / baseline)) - 1,
so that no single high-CTR video carries the figure (a ratio of means is dominated by the few
videos with the largest CTRs); its 95% interval is a bias-corrected and accelerated (BCa)
bootstrap over videos (`scipy.stats.bootstrap`, method "BCa"). Rates ("beats it on") get Wilson
score intervals (`scipy.stats.binomtest(...).proportion_ci(method="wilson")`).

    u = log_ratio_uplift(system_ctr, human_ctr, n_boot=2000, seed=0)  # uplift, (lo, hi)
    lo, hi = wilson(successes, trials)
    s = seed_spread([0.21, 0.18, 0.25])                               # mean, sd, min, max
"""

from __future__ import annotations

import warnings

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


def bca_mean_ci(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """95% BCa bootstrap interval of the mean of `values` (percentile when BCa is undefined:
    every value equal, or fewer than 3 values)."""
    from scipy.stats import bootstrap

    values = np.asarray(values, float)
    if len(values) < 3 or np.ptp(values) == 0:
        m = float(values.mean()) if len(values) else float("nan")
        return m, m
    with warnings.catch_warnings():  # scipy warns when the BCa acceleration is degenerate
        warnings.simplefilter("ignore")
        res = bootstrap(
            (values,),
            np.mean,
            confidence_level=CI_LEVEL,
            n_resamples=n_boot,
            method="BCa",
            random_state=np.random.default_rng(seed),
        )
    lo, hi = res.confidence_interval
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return bootstrap_ci(
            values, resample_index(len(values), n_boot, np.random.default_rng(seed))
        )
    return float(lo), float(hi)


def log_ratio_uplift(
    system: np.ndarray, baseline: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> dict:
    """Geometric-mean uplift of `system` over `baseline` (per-video log-ratios) with its BCa
    interval, and the share of videos where `system` is higher with its Wilson interval."""
    system, baseline = np.asarray(system, float), np.asarray(baseline, float)
    logr = np.log(system) - np.log(baseline)
    lo, hi = bca_mean_ci(logr, n_boot, seed)
    wins = int((system > baseline).sum())
    return {
        "uplift": float(np.expm1(logr.mean())),
        "uplift_ci": (float(np.expm1(lo)), float(np.expm1(hi))),
        "mean_log_ratio": float(logr.mean()),
        "beats_rate": wins / len(system),
        "beats_rate_ci": wilson(wins, len(system)),
        "videos": len(system),
    }


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """95% Wilson score interval of a rate."""
    from scipy.stats import binomtest

    if trials == 0:
        return float("nan"), float("nan")
    ci = binomtest(int(successes), int(trials)).proportion_ci(CI_LEVEL, method="wilson")
    return float(ci.low), float(ci.high)


def seed_spread(values: list[float]) -> dict:
    """Mean, sample standard deviation, min and max of one figure over seeds."""
    v = np.asarray(values, float)
    return {
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
        "seeds": len(v),
    }
