"""The monitor without files: serving log (+ feedback) vs a healthy reference -> a JSON summary.

    summary, rejected = evaluate(log, feedback, reference_log, reference_feedback, cfg)

The log becomes one row per request (monitoring/requests.py) and is cut into windows; the latest
window is judged against bands calibrated on the reference (monitoring/calibrate.py), and the
last `history_windows` windows are judged too, for the charts. The reference is an earlier,
healthy serving-log window; without one (or given historical pushes, which carry no candidates),
the log's own earlier windows serve as the reference. Feedback is mature `feedback_delay_h` after
serving (as of `as_of`, default now): click checks read mature requests only, and the share of
mature requests with feedback is itself a check. The exploration lift pools the last
`pool_windows` windows (one window has too few explored requests). Evidence (counts as shares, the
CTR of picks with a confidence interval, exploration estimates) is reported beside the checks,
never as alerts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from monitoring.calibrate import Calibration, calibrate, judge, verdict
from monitoring.config import MonitorConfig
from monitoring.requests import request_table, split_windows
from serving.explore import SERVED


def _reference(
    reference: pd.DataFrame | None, reference_feedback: pd.DataFrame | None
) -> tuple[pd.DataFrame | None, str]:
    """Request table of the reference, or None when it is not a serving log."""
    if reference is None:
        return None, "earlier windows of this log (no reference given)"
    if "request_id" not in reference.columns:
        return None, (
            "earlier windows of this log (the reference given has no request_id: "
            "historical pushes carry no candidates, scores or exploration)"
        )
    fb = reference_feedback
    if fb is None and {"pv", "clicks"} <= set(reference.columns):
        fb = reference[["request_id", "pv", "clicks"]].dropna().drop_duplicates("request_id")
    req, _, _ = request_table(reference, fb)
    return req.assign(mature=True), f"the reference serving log ({len(req)} requests)"


def mark_mature(req: pd.DataFrame, cfg: MonitorConfig) -> tuple[pd.DataFrame, pd.Timestamp]:
    """`mature`: served at least `feedback_delay_h` before `as_of` (its clicks are all in)."""
    as_of = pd.Timestamp(cfg.as_of) if cfg.as_of else pd.Timestamp.now(tz="UTC")
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of
    cutoff = as_of - pd.Timedelta(hours=cfg.feedback_delay_h)
    return req.assign(mature=req["served_at"] <= cutoff), as_of


def ctr_interval(req: pd.DataFrame, seed: int = 0, n_boot: int = 500) -> dict:
    """Pooled CTR of the ranker's own picks with a 95% bootstrap interval over requests."""
    picked = req[(req["status"] == SERVED) & ~req["explored"] & (req["pv"].fillna(0) > 0)]
    if len(picked) < 2:
        return {"ctr": None, "lo": None, "hi": None, "n": len(picked)}
    clicks, pv = picked["clicks"].to_numpy(float), picked["pv"].to_numpy(float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(picked), (n_boot, len(picked)))
    boot = clicks[idx].sum(1) / pv[idx].sum(1)
    return {
        "ctr": float(clicks.sum() / pv.sum()),
        "lo": float(np.quantile(boot, 0.025)),
        "hi": float(np.quantile(boot, 0.975)),
        "n": len(picked),
    }


def exploration_evidence(req: pd.DataFrame) -> dict:
    """Inverse-propensity estimates of 'serve the top' vs 'serve a random guarded candidate'.

    Each served request is weighted by (target policy's probability of its pick) / (logged
    propensity), self-normalised; `explored_rank_corr` is the Spearman correlation, over explored requests, between
    the served candidate's score rank within its request and its CTR (the ranker's online
    ordering accuracy, blurred by differences between videos)."""
    served = req[(req["status"] == SERVED) & (req["pv"].fillna(0) > 0)]
    out: dict = {"explored_requests": int(served["explored"].sum())}
    prop = served["chosen_propensity"].astype(float)
    if served.empty or prop.isna().all() or not out["explored_requests"]:
        return out  # nothing explored (epsilon 0): no estimate of a uniformly drawn push
    ctr = served["clicks"] / served["pv"]
    k = served["n_guarded"].clip(lower=1).astype(float)
    is_top = served["chosen_score_pct"] >= 1.0  # the ranker's top candidate was served
    # self-normalised IPS over every served request: target / logging probability of the pick
    for name, target in (("ctr_top_ips", is_top.astype(float)), ("ctr_random_ips", 1.0 / k)):
        w = target / prop.clip(lower=1e-9)
        out[name] = float((w * ctr).sum() / w.sum()) if w.sum() > 0 else None
    out["explored_share"] = float(served["explored"].mean())
    exp = served[served["explored"]]
    if len(exp) >= 5 and exp["chosen_score_pct"].nunique() > 1:
        from scipy import stats

        rho = stats.spearmanr(exp["chosen_score_pct"], exp["clicks"] / exp["pv"]).statistic
        out["explored_rank_corr"] = None if math.isnan(rho) else float(rho)
    return out


def _shares(counts: dict) -> dict:
    n = max(counts.get("requests", 0), 1)
    return {k: counts[k] / n for k in ("served", "degraded", "all_rejected", "explored")}


def evaluate(
    serving_log: pd.DataFrame,
    feedback: pd.DataFrame | None,
    reference: pd.DataFrame | None = None,
    reference_feedback: pd.DataFrame | None = None,
    cfg: MonitorConfig | None = None,
    set_aside: pd.DataFrame | None = None,
) -> tuple[dict, pd.DataFrame]:
    """(JSON-ready summary, rejected rows) for the latest window of `serving_log`; `set_aside`:
    rows a reader already set aside (malformed lines), counted with the rest."""
    cfg = cfg or MonitorConfig()
    req, rejected, counts = request_table(serving_log, feedback, set_aside)
    req, as_of = mark_mature(req, cfg)
    missing = list(counts["missing_columns"]) + (["feedback"] if feedback is None else [])
    windows = split_windows(req, cfg.window_requests, cfg.window)
    ref, ref_note = _reference(reference, reference_feedback)
    if ref is None:  # the log's own earlier windows are the healthy reference
        ref = pd.concat(windows[:-1], ignore_index=True) if len(windows) > 1 else req.iloc[:0]
    current = windows[-1]
    history = windows[-cfg.history_windows :]
    cals: dict[int, Calibration] = {}
    enough_ref = len(ref) >= cfg.min_reference_requests
    pooled = pd.concat(windows[-cfg.pool_windows :], ignore_index=True)
    pooled_cal = None
    if enough_ref and len(windows) > 1:  # the exploration lift, on the pooled windows
        pooled_cal = calibrate(
            ref, len(pooled), max(cfg.n_boot // 4, 20), cfg.false_alarm_rate, cfg.warn_rate
        )
    judged = []
    for i, w in enumerate(history):
        if not enough_ref:
            break
        if len(w) not in cals:
            cals[len(w)] = calibrate(
                ref, len(w), cfg.n_boot, cfg.false_alarm_rate, cfg.warn_rate, cfg.seed
            )
        last = i == len(history) - 1
        judged.append(
            judge(w, cals[len(w)], missing, pooled if last else None, pooled_cal if last else None)
        )
    if judged:
        checks = judged[-1]
        v = verdict(checks)
    else:
        checks = []
        v = {
            "verdict": "not evaluated",
            "blamed": None,
            "evidence": {},
            "also_alerting": [],
            "warning": [],
            "parts": {},
            "not_evaluated": ["all"],
            "retrain": False,
            "retrain_targets": [],
            "retrain_reason": "the window cannot be judged",
        }
    if not enough_ref:
        v["reason"] = (
            f"the reference has {len(ref)} requests; calibrating the bands needs at "
            f"least {cfg.min_reference_requests}"
        )
    elif v["verdict"] == "not evaluated":
        needs = sorted(c.needed_requests for c in checks if c.needed_requests)
        v["reason"] = (
            f"the window has {len(current)} requests; the first checks can be judged from "
            f"{needs[0] if needs else '?'} requests, all of them from {needs[-1] if needs else '?'}"
        )
    parts = v.get("parts", {})
    window_counts = {
        "requests": len(current),
        "served": int((current["status"] == SERVED).sum()),
        "degraded": int((current["status"] == "degraded").sum()),
        "all_rejected": int((current["status"] == "all_rejected").sum()),
        "explored": int(current["explored"].sum()),
    }
    mature = current[current["status"] == SERVED]["mature"]
    summary = {
        **v,
        "input_drift": parts.get("inputs") == "alert",
        "style_collapse": parts.get("generator") == "alert",
        "reward_drift": parts.get("ranker") == "alert",
        "feedback": {
            "as_of": str(as_of),
            "delay_h": cfg.feedback_delay_h,
            "mature_share": float(mature.mean()) if len(mature) else None,
            "pooled_requests": len(pooled),
        },
        "checks": [c.to_dict() for c in checks],
        "history": [
            {
                "start": str(w["served_at"].min()),
                "requests": len(w),
                "values": {c.name: c.value for c in ch},
                "levels": {c.name: c.level for c in ch},
            }
            for w, ch in zip(history[-len(judged) :] if judged else [], judged, strict=True)
        ],
        "evidence": {
            "window_shares": _shares(window_counts),
            "chosen_ctr": ctr_interval(current, cfg.seed),
            "reference_chosen_ctr": ctr_interval(ref, cfg.seed) if len(ref) else None,
            "exploration": exploration_evidence(current),
        },
        "window": {
            "requests": len(current),
            "start": str(current["served_at"].min()),
            "end": str(current["served_at"].max()),
            "windows_in_log": len(windows),
        },
        "reference": {"requests": len(ref), "source": ref_note},
        "calibration": {n: c.to_dict() for n, c in cals.items()},
        "counts": {**counts, "window": window_counts},
        "config": cfg.to_dict(),
    }
    return summary, rejected
