"""Pure metrics of pairwise predictions: accuracy, AUC, calibration, antisymmetry.

Every function takes arrays of predictions `p` = P(a beats b) and observed labels `y` (1 when a
had the higher CTR, 0 when b did, 0.5 for a kept tie, which counts for neither side):

    pairwise_metrics(p_ab, y, p_ba=p_ba, p_value=pairs.p_value)  # -> dict of figures
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

SIGNIFICANCE_LEVEL = 0.05  # "significant pairs": two-proportion z-test p-value below this


def _decided(y: np.ndarray) -> np.ndarray:
    return np.asarray(y, float) != 0.5


def pairwise_accuracy(p: np.ndarray, y: np.ndarray) -> float:
    """Share of decided pairs (label 0 or 1) where the model's side (p >= 0.5) is the winner."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    keep = _decided(y)
    if not keep.any():
        return float("nan")
    return float(np.mean((p[keep] >= 0.5) == (y[keep] == 1)))


def pairwise_auc(p: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC of p against the decided labels (NaN when only one class is present)."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    keep = _decided(y)
    if len(np.unique(y[keep])) < 2:
        return float("nan")
    return float(roc_auc_score(y[keep], p[keep]))


def reliability_table(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Per equal-width bin of p: count, mean prediction and observed win rate (decided pairs)."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    keep = _decided(y)
    p, y = p[keep], y[keep]
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        m = bins == b
        rows.append(
            {
                "bin_low": float(edges[b]),
                "bin_high": float(edges[b + 1]),
                "count": int(m.sum()),
                "mean_predicted": float(p[m].mean()) if m.any() else float("nan"),
                "observed_rate": float(y[m].mean()) if m.any() else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def expected_calibration_error(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """ECE: count-weighted mean |observed win rate - mean prediction| over the reliability bins."""
    table = reliability_table(p, y, n_bins)
    filled = table[table["count"] > 0]
    if filled.empty:
        return float("nan")
    gap = (filled["observed_rate"] - filled["mean_predicted"]).abs()
    return float((gap * filled["count"]).sum() / filled["count"].sum())


def antisymmetry_error(p_ab: np.ndarray, p_ba: np.ndarray) -> float:
    """Mean |P(a beats b) + P(b beats a) - 1|: 0 for a perfectly antisymmetric model."""
    return float(np.mean(np.abs(np.asarray(p_ab, float) + np.asarray(p_ba, float) - 1.0)))


def symmetrised(p_ab: np.ndarray, p_ba: np.ndarray) -> np.ndarray:
    """The prediction used for decisions: both orders averaged, (P(a,b) + 1 - P(b,a)) / 2."""
    return (np.asarray(p_ab, float) + 1.0 - np.asarray(p_ba, float)) / 2.0


def pairwise_metrics(
    p_ab: np.ndarray,
    y: np.ndarray,
    p_ba: np.ndarray | None = None,
    p_value: np.ndarray | None = None,
    significance: float = SIGNIFICANCE_LEVEL,
    n_bins: int = 10,
) -> dict:
    """Accuracy (all and significant pairs), AUC, ECE, reliability table, antisymmetry error.

    With `p_ba` the decisions use the symmetrised prediction and the raw antisymmetry error is
    reported; without it `p_ab` is taken as already final.
    """
    y = np.asarray(y, float)
    p = symmetrised(p_ab, p_ba) if p_ba is not None else np.asarray(p_ab, float)
    out = {
        "pairs": int(_decided(y).sum()),
        "accuracy": pairwise_accuracy(p, y),
        "auc": pairwise_auc(p, y),
        "ece": expected_calibration_error(p, y, n_bins),
        "reliability": reliability_table(p, y, n_bins).to_dict(orient="records"),
    }
    if p_ba is not None:
        out["antisymmetry_error"] = antisymmetry_error(p_ab, p_ba)
    if p_value is not None:
        sig = np.asarray(p_value, float) < significance
        out["significant_pairs"] = int((sig & _decided(y)).sum())
        out["accuracy_significant"] = pairwise_accuracy(p[sig], y[sig])
        out["auc_significant"] = pairwise_auc(p[sig], y[sig])
    return out
