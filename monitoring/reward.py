"""Reward drift: does the ranker's `reward_score` of the chosen push still track observed CTR?

A ranker that keeps its promise orders pushes the way users click them, so the rank correlation
between `reward_score` and observed CTR (clicks / pv) stays positive. When it falls below a
threshold in the latest window, the ranker has drifted from what users reward: retrain it.

Caveat (the paper's own point): across requests CTR also depends on the video (author, quality),
which the ranker never sees, so a healthy correlation is modest; compare it to the reference
window's, not to 1.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats


def rank_correlation(scores: pd.Series, ctr: pd.Series, method: str = "spearman") -> dict:
    """Rank correlation of scores vs CTR over rows where both are known: value, p-value, n."""
    both = pd.DataFrame({"score": scores, "ctr": ctr}).dropna()
    n = len(both)
    if n < 3 or both["score"].nunique() < 2 or both["ctr"].nunique() < 2:
        return {"value": None, "pvalue": None, "n": n}
    fn = stats.spearmanr if method == "spearman" else stats.kendalltau
    result = fn(both["score"], both["ctr"])
    value, pvalue = float(result.statistic), float(result.pvalue)
    if math.isnan(value):
        return {"value": None, "pvalue": None, "n": n}
    return {"value": value, "pvalue": pvalue, "n": n}


def windowed_correlation(
    current: pd.DataFrame, window: str | None, method: str = "spearman"
) -> list[dict]:
    """Rank correlation per time window of `served_at` (one window when `window` is None)."""
    if window is None or current["served_at"].isna().all():
        return [
            {"window": "all", **rank_correlation(current["reward_score"], current["ctr"], method)}
        ]
    timed = current.dropna(subset=["served_at"])
    rows = []
    for start, part in timed.groupby(pd.Grouper(key="served_at", freq=window)):
        if part.empty:
            continue
        rows.append(
            {"window": str(start), **rank_correlation(part["reward_score"], part["ctr"], method)}
        )
    return rows


def latest_evaluable(windows: list[dict], min_rows: int) -> dict | None:
    """The most recent window with enough rows and a defined correlation, or None."""
    for row in reversed(windows):
        if row["value"] is not None and row["n"] >= min_rows:
            return row
    return None
