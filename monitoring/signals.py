"""The monitored signals: one statistic per window of requests, each owned by one part.

- inputs: what comes in (topic mix, caption length, empty or reused captions);
- generator: what it writes, over *all* candidates: the entropy of the detected styles within a
  request and over the window (a collapse writes every requested category in one style, which the
  logged requested category hides), wording shared across categories, distinct wording, guard
  rejections, requests with nothing servable;
- ranker: what it picks among the guarded candidates (whether its pick is its own top score, its
  preference profile against the other candidates, the category mix of its picks), the CTR of its
  picks and the exploration lift (both read clicks: mature feedback only, never a retrain alone);
- serving: degraded answers, the explored share against the logged epsilon, latency per stage;
- feedback: the share of requests past the expected delay whose feedback has arrived.

Each `Signal` says how its value moves when its part breaks (`direction`), the smallest change
worth an alert (`floor`), the effect size the sample-size rule sizes for (`effect`) and the log
columns it reads (`needs`).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from serving.explore import ALL_REJECTED, DEGRADED, SERVED

PARTS = ("inputs", "generator", "ranker", "serving", "feedback")  # upstream first
MODEL_PARTS = ("generator", "ranker")  # the parts a retrain can fix


@dataclass(frozen=True)
class Signal:
    """One window statistic and how to read it."""

    name: str
    part: str  # one of PARTS
    kind: str  # mean, ratio, js, distinct, entropy, quantile, exploration
    direction: str  # "up", "down" or "both": which move means trouble
    floor: float  # the alert band is never narrower than this (practical significance)
    effect: float  # change the sample-size rule sizes for (80% power at the alert level)
    min_n: int  # never evaluated on fewer units than this
    unit: str  # "share", "chars", "distance", "ctr", "ratio", "ms"
    what: str
    needs: tuple[str, ...] = ()  # serving-log columns it reads ("feedback": a feedback table)
    ctr: bool = False  # reads clicks: mature feedback only, never a retrain on its own


SIGNALS: tuple[Signal, ...] = tuple(
    Signal(**{**row, "needs": tuple(row.get("needs", ()))})
    for row in tomllib.loads(
        resources.files("monitoring").joinpath("signals.toml").read_text("utf-8")
    )["signal"]
)
BY_NAME = {s.name: s for s in SIGNALS}


@dataclass
class Profile:
    """What the window statistics are measured against: the reference's mixes."""

    topics: pd.Series  # topic -> share
    chosen_categories: pd.Series  # category -> share among the ranker's picks
    n_styles: int = 8  # distinct detected styles in the reference (normalises the entropy)

    @classmethod
    def of(cls, ref: pd.DataFrame) -> Profile:
        picks = ref.loc[_picked(ref), "chosen_category"]
        styles = {s for t in ref["styles"] for s in t} if "styles" in ref else set()
        return cls(
            ref["topic"].dropna().value_counts(normalize=True),
            picks.value_counts(normalize=True),
            max(len(styles), 2),
        )


def _picked(req: pd.DataFrame) -> pd.Series:
    """The ranker's own picks: served (not degraded, not all-rejected) and not explored."""
    return (req["status"] == SERVED) & ~req["explored"].astype(bool)


def _js(values: pd.Series, reference: pd.Series) -> tuple[float | None, int]:
    values = values.dropna()
    if values.empty or reference.empty:
        return None, len(values)
    cur = values.value_counts(normalize=True)
    keys = reference.index.union(cur.index)
    d = jensenshannon(
        reference.reindex(keys, fill_value=0).to_numpy(),
        cur.reindex(keys, fill_value=0).to_numpy(),
        base=2,
    )
    return float(d), len(values)


def _mature(req: pd.DataFrame) -> np.ndarray:
    return req["mature"].to_numpy(dtype=bool) if "mature" in req else np.ones(len(req), bool)


def per_request(req: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For mean/ratio signals: (numerator, denominator) per request; NaN rows do not count."""
    n = len(req)
    nan = np.full(n, np.nan)
    has_caption = req["caption_chars"].notna().to_numpy()
    cap = req["caption_chars"].to_numpy(dtype=float)
    sha = req["caption_sha"].where(~req["caption_sha"].astype(str).isin(["", "None", "nan"]))
    reused = (
        sha.map(sha.to_frame().assign(v=req["video_id"]).groupby("caption_sha")["v"].nunique()) > 1
    ).to_numpy(dtype=float)
    ncand = req["n_candidates"].to_numpy(dtype=float)
    picked = _picked(req).to_numpy()
    lift_ok = picked & (req["n_guarded"].to_numpy() >= 2)
    pv = req["pv"].to_numpy(dtype=float)
    clicks = req["clicks"].to_numpy(dtype=float)
    mature = _mature(req)
    fed = (np.nan_to_num(pv) > 0) & mature
    served = (req["status"] == SERVED).to_numpy()
    explored = req["explored"].to_numpy(dtype=bool) & served
    one = np.ones(n)
    status = req["status"].to_numpy()
    top = req["chosen_is_top"].to_numpy(dtype=float) if "chosen_is_top" in req else nan
    return {
        "caption_empty_share": (np.where(has_caption, cap == 0, np.nan), one),
        "caption_reused_share": (np.where(has_caption, reused, np.nan), one),
        "caption_chars_mean": (np.where(has_caption, cap, np.nan), one),
        "style_entropy_request": (req["style_entropy"].to_numpy(dtype=float), one),
        "cross_category_similarity": (req["cross_similarity"].to_numpy(dtype=float), one),
        "candidate_distinct_share": ((req["distinct_texts"] / ncand).to_numpy(dtype=float), one),
        "guard_reject_share": ((1 - req["n_guarded"] / ncand).to_numpy(dtype=float), one),
        "all_rejected_share": ((status == ALL_REJECTED).astype(float), one),
        "degraded_share": ((status == DEGRADED).astype(float), one),
        "top_pick_share": (np.where(lift_ok, top, nan), one),
        "selection_length_lift": (
            np.where(lift_ok, req["chosen_chars"] - req["guarded_chars"], nan),
            one,
        ),
        "selection_question_lift": (
            np.where(lift_ok, req["chosen_question"] - req["guarded_question"], nan),
            one,
        ),
        "feedback_coverage": (
            np.where(served & mature, req["pv"].notna().to_numpy(dtype=float), nan),
            one,
        ),
        "chosen_ctr": (np.where(picked & fed, clicks, np.nan), np.where(picked & fed, pv, np.nan)),
        "explore_ctr_lift": (
            np.where(explored & fed, clicks, np.nan),
            np.where(explored & fed, pv, np.nan),
        ),
    }


def _ratio(num: np.ndarray, den: np.ndarray) -> tuple[float | None, int]:
    keep = ~np.isnan(num) & ~np.isnan(den)
    if not keep.any() or den[keep].sum() <= 0:
        return None, int(keep.sum())
    return float(num[keep].sum() / den[keep].sum()), int(keep.sum())


def _style_entropy(req: pd.DataFrame, n_styles: int) -> tuple[float | None, int]:
    styles = [s for t in req["styles"] for s in t] if "styles" in req else []
    if not styles:
        return None, 0
    p = pd.Series(styles).value_counts(normalize=True).to_numpy()
    k = max(n_styles, len(p), 2)
    return float(-(p * np.log(p)).sum() / math.log(k)), len(req)


def explored_counts(req: pd.DataFrame) -> tuple[int, int, float | None]:
    """(explored requests, requests that could explore, mean logged epsilon over them)."""
    can = (req["status"] == SERVED) & (req["n_guarded"] >= 2)
    eps = pd.to_numeric(req.loc[can, "epsilon"], errors="coerce")
    if eps.notna().sum() == 0:
        return int(req.loc[can, "explored"].sum()), int(can.sum()), None
    return int(req.loc[can, "explored"].sum()), int(can.sum()), float(eps.mean())


def window_values(req: pd.DataFrame, profile: Profile) -> dict[str, tuple[float | None, int]]:
    """{signal: (value or None, units it was measured on)} for one window of requests."""
    parts = per_request(req)
    out: dict[str, tuple[float | None, int]] = {}
    for name, (num, _den) in parts.items():
        if name in ("chosen_ctr", "explore_ctr_lift"):
            continue
        keep = ~np.isnan(num)
        out[name] = (float(num[keep].mean()) if keep.any() else None, int(keep.sum()))
    top = _ratio(*parts["chosen_ctr"])
    out["chosen_ctr"] = top
    rand = _ratio(*parts["explore_ctr_lift"])
    lift = top[0] / rand[0] if top[0] is not None and rand[0] else None
    out["explore_ctr_lift"] = (lift, rand[1])
    out["topic_mix_js"] = _js(req["topic"], profile.topics)
    out["selection_category_js"] = _js(
        req.loc[_picked(req), "chosen_category"], profile.chosen_categories
    )
    out["style_entropy_window"] = _style_entropy(req, profile.n_styles)
    explored, can, _eps = explored_counts(req)
    out["explored_share"] = (explored / can if can else None, can)
    for stage in ("feast", "generate", "rank"):
        col = f"latency_{stage}_ms"
        vals = pd.to_numeric(req[col], errors="coerce").dropna() if col in req else pd.Series()
        for q, tag in ((0.5, "p50"), (0.95, "p95")):
            out[f"latency_{stage}_{tag}"] = (
                float(vals.quantile(q)) if len(vals) else None,
                len(vals),
            )
    return out


def unit_sd(req: pd.DataFrame) -> dict[str, float]:
    """Per-unit standard deviation of each mean/ratio signal on a (reference) request table."""
    out = {}
    for name, (num, den) in per_request(req).items():
        keep = ~np.isnan(num) & ~np.isnan(den)
        if keep.sum() < 2:
            out[name] = float("nan")
            continue
        rate = num[keep] / np.where(den[keep] > 0, den[keep], np.nan)
        rate = rate[~np.isnan(rate)]
        out[name] = float(np.std(rate, ddof=1)) if len(rate) > 1 else float("nan")
    return out
