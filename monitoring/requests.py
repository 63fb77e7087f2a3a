"""Serving log + feedback -> one row per request, every request kept (served, degraded, all-rejected).

The server logs one row per candidate (`serving.explore.log_rows`); the checks need one row per
request: what came in (topic, caption), what the generator wrote (candidates, distinct wording,
guard rejections), what the ranker chose (its text features against the other guarded candidates,
explored or not) and what users did (pv, clicks). Feedback joins on `request_id` for *every*
logged request, so a degraded or all-rejected request keeps its feedback. Bad rows are never
dropped silently: they land in `rejected` with `source` and `reject_reason`, and `counts` says how
many. Logs written before exploration existed lack some columns; checks that need them say
`not evaluated`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitoring.style import normalise_text
from pushgen.core.errors import DataContractError
from pushgen.data.contracts import check_columns, validate
from serving.explore import ALL_REJECTED, DEGRADED, SERVED

TRUE_WORDS = {"true", "1", "yes", "y", "t"}
FALSE_WORDS = {"false", "0", "no", "n", "f", ""}
OPTIONAL = {  # column: value when an older log lacks it
    "guard_ok": True,
    "degraded": False,
    "explored": False,
    "propensity": np.nan,
    "status": None,
    "topic": None,
    "caption_chars": np.nan,
    "caption_sha": None,
}


def as_bool(values: pd.Series) -> pd.Series:
    """Parse bools written as bools, 0/1 or words; unparseable values become NaN."""
    if values.dtype == bool:
        return values.astype(object)
    words = values.astype(str).str.strip().str.lower()
    parsed = pd.Series(np.nan, index=values.index, dtype=object)
    parsed[words.isin(TRUE_WORDS)] = True
    parsed[words.isin(FALSE_WORDS) & values.notna()] = False
    return parsed


def _aside(df: pd.DataFrame, mask, reason: str, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    mask = pd.Series(mask, index=df.index).astype(bool)
    out = df[mask].assign(reject_reason=reason, source=source)
    return df[~mask], out


def _bigrams(text: str) -> list[tuple[str, str]]:
    words = normalise_text(text).split()
    return list(zip(words, words[1:], strict=False))


def _candidate_rows(log: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    check_columns("serving_log", log)
    valid, rejected = validate("serving_log", log)
    aside = [rejected.assign(source="serving_log")]
    for col, default in OPTIONAL.items():
        if col not in valid.columns:
            valid[col] = default
    valid = valid.assign(selected=as_bool(valid["selected"]))
    valid, bad = _aside(valid, valid["selected"].isna(), "selected is not a boolean", "serving_log")
    aside.append(bad)
    for col in ("guard_ok", "degraded", "explored"):
        default = OPTIONAL[col]
        valid[col] = [default if pd.isna(v) else bool(v) for v in as_bool(valid[col])]
    valid["selected"] = valid["selected"].astype(bool)
    score = pd.to_numeric(valid["reward_score"], errors="coerce")
    valid, bad = _aside(
        valid,
        valid["reward_score"].notna() & score.isna(),
        "non-numeric reward_score",
        "serving_log",
    )
    aside.append(bad)
    valid["reward_score"] = pd.to_numeric(valid["reward_score"], errors="coerce")
    first = ~valid[valid["selected"]].duplicated("request_id", keep="first")
    dup = valid["selected"] & ~first.reindex(valid.index, fill_value=True)
    valid, bad = _aside(valid, dup, "several selected rows for request_id", "serving_log")
    aside.append(bad)
    return valid, aside


def request_table(
    log: pd.DataFrame, feedback: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(one row per request, rejected rows with `source` and `reject_reason`, counts)."""
    rows, aside = _candidate_rows(log)
    if rows.empty:
        raise DataContractError(f"serving_log: no valid row ({len(log)} read, all rejected)")
    text = rows["text"].astype(str)
    rows = rows.assign(
        norm=text.map(normalise_text),
        chars=text.str.len().astype(float),
        question=text.str.contains("?", regex=False).astype(float),
        caption_chars=pd.to_numeric(rows["caption_chars"], errors="coerce"),
    )
    g = rows.groupby("request_id", sort=False)
    req = g.agg(
        video_id=("video_id", "first"),
        topic=("topic", "first"),
        caption_chars=("caption_chars", "first"),
        caption_sha=("caption_sha", "first"),
        served_at=("served_at", "min"),
        model_version=("model_version", "first"),
        status_logged=("status", "first"),
        n_candidates=("text", "size"),
        n_guarded=("guard_ok", "sum"),
        n_selected=("selected", "sum"),
        distinct_categories=("category", "nunique"),
        distinct_texts=("norm", "nunique"),
        degraded=("degraded", "any"),
        explored=("explored", "any"),
    )
    ok = rows[rows["guard_ok"]]
    req["guarded_chars"] = ok.groupby("request_id")["chars"].mean()
    req["guarded_question"] = ok.groupby("request_id")["question"].mean()
    req["bigrams"] = rows.groupby("request_id", sort=False)["text"].agg(
        lambda ts: {b for t in ts for b in _bigrams(t)}
    )
    req["n_bigrams"] = rows.groupby("request_id", sort=False)["text"].agg(
        lambda ts: sum(len(_bigrams(t)) for t in ts)
    )
    rows["score_pct"] = ok.groupby("request_id")["reward_score"].rank(pct=True)
    chosen = rows[rows["selected"]].set_index("request_id")
    for col in ("category", "text", "reward_score", "chars", "question", "propensity", "score_pct"):
        req[f"chosen_{col}"] = chosen[col]
    derived = np.where(
        req["n_selected"] == 0, ALL_REJECTED, np.where(req["degraded"], DEGRADED, SERVED)
    )
    req["status"] = req["status_logged"].where(req["status_logged"].notna(), derived)
    req = req.drop(columns=["status_logged"]).reset_index()
    req["served_at"] = pd.to_datetime(req["served_at"], errors="coerce", utc=True)
    req, fb_aside = _join_feedback(req, feedback)
    aside += fb_aside
    rejected = (
        pd.concat([a for a in aside if not a.empty], ignore_index=True)
        if any(not a.empty for a in aside)
        else pd.DataFrame(columns=["source", "reject_reason"])
    )
    by_source = rejected["source"].value_counts().to_dict() if not rejected.empty else {}
    counts = {
        "serving_log_rows": len(log),
        "feedback_rows": 0 if feedback is None else len(feedback),
        "requests": len(req),
        "served": int((req["status"] == SERVED).sum()),
        "degraded": int((req["status"] == DEGRADED).sum()),
        "all_rejected": int((req["status"] == ALL_REJECTED).sum()),
        "explored": int(req["explored"].sum()),
        "with_feedback": int(req["pv"].notna().sum()),
        **{f"rejected_{src}": int(n) for src, n in by_source.items()},
    }
    return req, rejected, counts


def _join_feedback(
    req: pd.DataFrame, feedback: pd.DataFrame | None
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Left-join pv/clicks on every request; feedback for an unknown request is set aside."""
    if feedback is None:
        return req.assign(pv=np.nan, clicks=np.nan), []
    check_columns("feedback", feedback)
    valid, rejected = validate("feedback", feedback)
    aside = [rejected.assign(source="feedback")]
    valid, bad = _aside(
        valid, ~valid["request_id"].isin(set(req["request_id"])), "unknown request_id", "feedback"
    )
    aside.append(bad)
    joined = req.merge(valid[["request_id", "pv", "clicks"]], on="request_id", how="left")
    return joined, aside


def split_windows(
    req: pd.DataFrame, window_requests: int | None = None, window: str | None = None
) -> list[pd.DataFrame]:
    """Consecutive windows by `served_at`: a pandas offset (`window`) or a request count."""
    req = req.sort_values("served_at", kind="stable").reset_index(drop=True)
    if window is not None:
        timed = req.dropna(subset=["served_at"])
        return [
            p.reset_index(drop=True)
            for _, p in timed.groupby(pd.Grouper(key="served_at", freq=window))
            if len(p)
        ]
    size = window_requests or len(req)
    ends = list(range(len(req), 0, -size))[::-1]  # aligned on the end: the latest window is full
    return [req.iloc[max(0, e - size) : e].reset_index(drop=True) for e in ends]
