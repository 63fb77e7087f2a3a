"""The monitor's checks: each one a value, its reference value, a threshold and a verdict.

`style_checks` and `reward_checks` turn measures (style.py, reward.py) and Evidently verdicts
(drift.py) into `Check` rows. Checks with role "alert" decide the alerts; role "evidence" checks
(Evidently drift tests) are reported beside them and gate the category checks, so a reference that
is itself concentrated in one category does not raise a collapse alert on its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from monitoring import reward, style
from monitoring.config import MonitorConfig
from monitoring.drift import TEXT_DESCRIPTORS, ColumnDrift

STYLE_COLLAPSE = "style_collapse"
REWARD_DRIFT = "reward_drift"


@dataclass
class Check:
    """One monitored quantity and its verdict."""

    name: str
    signal: str  # STYLE_COLLAPSE or REWARD_DRIFT
    role: str  # "alert": decides the signal; "evidence": reported, gates other checks
    value: float | None  # current window (None: not evaluated)
    reference: float | None  # same quantity on the reference
    threshold: float
    alert: bool
    evaluated: bool
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


def _evidence(name: str, signal: str, verdict: ColumnDrift) -> Check:
    return Check(
        name=name,
        signal=signal,
        role="evidence",
        value=verdict.score,
        reference=None,
        threshold=verdict.threshold,
        alert=verdict.drifted,
        evaluated=True,
        detail=f"Evidently {verdict.method}: score {verdict.score:.3g} vs threshold "
        f"{verdict.threshold:g} -> {'drift' if verdict.drifted else 'no drift'}",
    )


def category_checks(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    drift: dict[str, ColumnDrift],
    cfg: MonitorConfig,
) -> list[Check]:
    """Category mix of the selected pushes: Evidently drift test, entropy and top-category share."""
    k = len(set(reference["category"]) | set(current["category"]))
    ref = style.category_concentration(reference["category"].tolist(), k)
    cur = style.category_concentration(current["category"].tolist(), k)
    moved = drift["category"].drifted
    low_entropy = cur["entropy"] < cfg.min_category_entropy and cur["entropy"] < ref["entropy"]
    top_heavy = (
        cur["top_share"] > cfg.max_top_category_share and cur["top_share"] > ref["top_share"]
    )
    gate = "" if moved else " (category mix not drifted per Evidently, so no alert)"
    return [
        _evidence("category_drift", STYLE_COLLAPSE, drift["category"]),
        Check(
            "category_entropy",
            STYLE_COLLAPSE,
            "alert",
            cur["entropy"],
            ref["entropy"],
            cfg.min_category_entropy,
            moved and low_entropy,
            True,
            f"normalised entropy over {k} categories; alert below threshold and below reference{gate}",
        ),
        Check(
            "top_category_share",
            STYLE_COLLAPSE,
            "alert",
            cur["top_share"],
            ref["top_share"],
            cfg.max_top_category_share,
            moved and top_heavy,
            True,
            f"top category {cur['top_category']!r} (reference: {ref['top_category']!r}); "
            f"alert above threshold and above reference{gate}",
        ),
    ]


def wording_checks(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    drift: dict[str, ColumnDrift],
    cfg: MonitorConfig,
) -> list[Check]:
    """Wording of the selected pushes: distinct-2, pairwise similarity, repeats, text descriptors."""
    ref_texts, cur_texts = style.equal_samples(
        reference["text"].tolist(), current["text"].tolist(), cfg.text_sample_size, cfg.seed
    )
    n = len(cur_texts)
    d2_ref, d2_cur = style.distinct_n(ref_texts, 2), style.distinct_n(cur_texts, 2)
    sim_ref, sim_cur = style.mean_pairwise_similarity(ref_texts, cur_texts, cfg.similarity_encoder)
    rep_ref, rep_cur = style.repeat_rate(ref_texts), style.repeat_rate(cur_texts)
    encoder = cfg.similarity_encoder or "TF-IDF"
    checks = [
        Check(
            "distinct_2",
            STYLE_COLLAPSE,
            "alert",
            d2_cur,
            d2_ref,
            cfg.max_distinct2_drop,
            d2_cur < d2_ref * (1 - cfg.max_distinct2_drop),
            True,
            f"distinct bigrams / bigrams on {n} texts per side; alert on a relative drop "
            f"over the threshold",
        ),
        Check(
            "pairwise_similarity",
            STYLE_COLLAPSE,
            "alert",
            sim_cur,
            sim_ref,
            cfg.max_similarity_rise,
            sim_cur > sim_ref + cfg.max_similarity_rise,
            True,
            f"mean cosine ({encoder}) between distinct pairs, {n} texts per side; alert on a "
            f"rise over the threshold",
        ),
        Check(
            "repeat_rate",
            STYLE_COLLAPSE,
            "alert",
            rep_cur,
            rep_ref,
            cfg.max_repeat_rate,
            rep_cur > cfg.max_repeat_rate and rep_cur > rep_ref,
            True,
            f"share of {n} texts whose wording repeats; alert above threshold and above reference",
        ),
    ]
    checks += [_evidence(f"{col}_drift", STYLE_COLLAPSE, drift[col]) for col in TEXT_DESCRIPTORS]
    return checks


def reward_checks(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    drift: dict[str, ColumnDrift],
    cfg: MonitorConfig,
) -> tuple[list[Check], list[dict]]:
    """Rank correlation of reward_score vs observed CTR (latest window) and score drift."""
    windows = reward.windowed_correlation(current, cfg.window, cfg.correlation)
    latest = reward.latest_evaluable(windows, cfg.min_rows)
    ref_corr = None
    if {"reward_score", "ctr"} <= set(reference.columns):
        ref_corr = reward.rank_correlation(
            reference["reward_score"], reference["ctr"], cfg.correlation
        )["value"]
    if latest is None:
        usable = max((w["n"] for w in windows), default=0)
        corr = Check(
            "reward_rank_correlation",
            REWARD_DRIFT,
            "alert",
            None,
            ref_corr,
            cfg.min_rank_correlation,
            False,
            False,
            f"not evaluated: at most {usable} selected pushes with score and CTR "
            f"(pv >= {cfg.min_pv}) in a window, need {cfg.min_rows}",
        )
    else:
        corr = Check(
            "reward_rank_correlation",
            REWARD_DRIFT,
            "alert",
            latest["value"],
            ref_corr,
            cfg.min_rank_correlation,
            latest["value"] < cfg.min_rank_correlation,
            True,
            f"{cfg.correlation} of reward_score vs CTR in window {latest['window']} "
            f"(n={latest['n']}, p={latest['pvalue']:.3g}); alert below threshold",
        )
    checks = [corr]
    if "reward_score" in drift:
        score = _evidence("reward_score_drift", REWARD_DRIFT, drift["reward_score"])
        checks.append(Check(**{**score.to_dict(), "role": "alert"}))
    else:
        checks.append(
            Check(
                "reward_score_drift",
                REWARD_DRIFT,
                "alert",
                None,
                None,
                cfg.score_drift_threshold,
                False,
                False,
                "not evaluated: the reference has no reward_score (historical pushes); "
                "pass an earlier serving-log window as reference",
            )
        )
    return checks, windows
