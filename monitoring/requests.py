"""Serving log + feedback -> one row per request, every request kept (served, degraded, all-rejected).

The server logs one row per candidate (`serving.explore.log_rows`); the checks need one row per
request: what came in (topic, caption), what the generator wrote (candidates, distinct wording,
the *detected* style of each text, wording shared across categories, guard rejections), what the
ranker chose (its text features against the other guarded candidates, explored or not, whether it
was the top-scored one), how long each stage took, and what users did (pv, clicks). Feedback
joins on `request_id` for *every* logged request, so a degraded or all-rejected request keeps it.

Nothing is coerced silently and nothing is dropped silently: ids stay strings (a digit-only id read
from JSON as a number is turned back into its digits), and every row that cannot be used lands in
`rejected` with `source` and `reject_reason`, counted in `counts`:

- an unparseable boolean (`selected`, `guard_ok`, `degraded`, `explored`), a non-numeric score or
  an unparseable `served_at`: that row;
- an exact duplicate of a row (same `request_id`, `candidate_index` and content): the copy;
- a `request_id` reused for different content (two videos, two times, two different rows for one
  candidate index): every row of that request, with the reason.

A column the log does not have is not invented: `missing` lists the optional columns absent,
and the checks that read them say `not evaluated: column X missing` (monitoring/signals.toml).
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import combinations

import numpy as np
import pandas as pd

from monitoring.style import normalise_text
from pushgen.core.errors import DataContractError
from pushgen.data.contracts import check_columns, validate
from serving.explore import ALL_REJECTED, DEGRADED, SERVED

TRUE_WORDS = {"true", "1", "yes", "y", "t", "1.0"}
FALSE_WORDS = {"false", "0", "no", "n", "f", "0.0"}
BOOLS = ("guard_ok", "degraded", "explored")
OPTIONAL = (  # columns beyond the contract's 8 that some check reads
    "guard_ok",
    "degraded",
    "explored",
    "propensity",
    "epsilon",
    "status",
    "topic",
    "caption_chars",
    "caption_sha",
    "candidate_index",
    "style",
    "latency_feast_ms",
    "latency_generate_ms",
    "latency_rank_ms",
)
STAGES = ("feast", "generate", "rank")


def as_bool(values: pd.Series) -> pd.Series:
    """Parse bools written as bools, 0/1 or words; anything else (blank included) becomes NaN."""
    if values.dtype == bool:
        return values.astype(object)
    words = values.astype(str).str.strip().str.lower()
    parsed = pd.Series(np.nan, index=values.index, dtype=object)
    parsed[words.isin(TRUE_WORDS) & values.notna()] = True
    parsed[words.isin(FALSE_WORDS) & values.notna()] = False
    return parsed


def as_id(values: pd.Series) -> pd.Series:
    """Ids as strings: a digit-only id that a JSON reader turned into a number gets its digits
    back (123 or 123.0 -> "123"); missing stays missing."""

    def one(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        if isinstance(v, (bool, np.bool_)):
            return str(v)
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        return str(v)

    return values.map(one).astype(object)


def _aside(df: pd.DataFrame, mask, reason, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows under `mask` off, with `reason` (a string or a Series of strings per row)."""
    mask = pd.Series(mask, index=df.index).fillna(False).astype(bool)
    out = df[mask].copy()
    out["reject_reason"] = reason[mask] if isinstance(reason, pd.Series) else reason
    out["source"] = source
    return df[~mask], out


def _bigrams(text: str) -> list[tuple[str, str]]:
    words = normalise_text(text).split()
    return list(zip(words, words[1:], strict=False))


def _entropy(labels) -> float:
    """Shannon entropy of the labels, normalised by log(len(labels)) (1: all different)."""
    labels = [x for x in labels if isinstance(x, str)]
    if len(labels) < 2:
        return float("nan")
    p = np.array(list(Counter(labels).values()), float) / len(labels)
    return float(-(p * np.log(p)).sum() / math.log(len(labels)))


def _cross_similarity(cats, texts) -> float:
    """Mean Jaccard similarity of the word sets of candidates written for different categories."""
    words = [set(normalise_text(t).split()) for t in texts]
    sims = [
        len(words[i] & words[j]) / max(len(words[i] | words[j]), 1)
        for i, j in combinations(range(len(words)), 2)
        if cats[i] != cats[j]
    ]
    return float(np.mean(sims)) if sims else float("nan")


def _reused_ids(valid: pd.DataFrame, times: pd.Series) -> pd.Series:
    """Per row: why its request_id is unusable (two videos, two times), or ''."""
    g = valid.assign(_t=times).groupby("request_id", sort=False)
    videos = g["video_id"].transform("nunique")
    stamps = g["_t"].transform("nunique")
    reason = pd.Series("", index=valid.index, dtype=object)
    reason[stamps > 1] = "request_id reused: its rows carry different served_at times"
    reason[videos > 1] = "request_id reused: its rows carry different video_ids"
    return reason


def _candidate_rows(log: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame], list[str]]:
    check_columns("serving_log", log)
    log = log.copy()
    for col in ("request_id", "video_id"):
        log[col] = as_id(log[col])
    valid, rejected = validate("serving_log", log)
    aside = [rejected.assign(source="serving_log")]
    missing = [c for c in OPTIONAL if c not in valid.columns]
    # exact copies of a row (a retried write, a file shipped twice): one kept, the rest counted
    key = ["request_id", "candidate_index"] if "candidate_index" in valid.columns else None
    text = valid.astype(str)
    valid, bad = _aside(valid, text.duplicated(keep="first"), "duplicate row", "serving_log")
    aside.append(bad)
    if key is not None:  # the same candidate of a request logged twice with different content
        clash = valid.duplicated(key, keep=False)
        ids = set(valid.loc[clash, "request_id"])
        valid, bad = _aside(
            valid,
            valid["request_id"].isin(ids),
            "request_id reused: one candidate_index logged twice with different content",
            "serving_log",
        )
        aside.append(bad)
    times = pd.to_datetime(valid["served_at"], errors="coerce", utc=True, format="ISO8601")
    valid, bad = _aside(valid, times.isna(), "unparseable served_at", "serving_log")
    aside.append(bad)
    times = times[valid.index]
    reused = _reused_ids(valid, times)
    valid, bad = _aside(valid, reused != "", reused, "serving_log")
    aside.append(bad)
    valid = valid.assign(served_at=times[valid.index])
    for col in ("selected", *[c for c in BOOLS if c in valid.columns]):
        parsed = as_bool(valid[col])
        valid, bad = _aside(valid, parsed.isna(), f"{col} is not a boolean", "serving_log")
        aside.append(bad)
        valid[col] = parsed[valid.index].astype(bool)
    score = pd.to_numeric(valid["reward_score"], errors="coerce")
    valid, bad = _aside(
        valid,
        valid["reward_score"].notna() & score.isna(),
        "non-numeric reward_score",
        "serving_log",
    )
    aside.append(bad)
    valid["reward_score"] = score[valid.index].astype(float)
    first = ~valid[valid["selected"]].duplicated("request_id", keep="first")
    dup = valid["selected"] & ~first.reindex(valid.index, fill_value=True)
    valid, bad = _aside(valid, dup, "several selected rows for request_id", "serving_log")
    aside.append(bad)
    return valid, aside, missing


def _per_request_text(rows: pd.DataFrame, has_style: bool) -> pd.DataFrame:
    """Per request: distinct bigrams, style entropy, cross-category wording similarity."""
    out = {}
    for rid, part in rows.groupby("request_id", sort=False):
        texts = part["text"].astype(str).tolist()
        grams = [b for t in texts for b in _bigrams(t)]
        styles = tuple(part["style"].astype(str)) if has_style else ()
        out[rid] = {
            "bigrams": set(grams),
            "n_bigrams": len(grams),
            "styles": styles,
            "style_entropy": _entropy(styles) if has_style else np.nan,
            "cross_similarity": _cross_similarity(part["category"].astype(str).tolist(), texts),
        }
    return pd.DataFrame.from_dict(out, orient="index")


def request_table(
    log: pd.DataFrame, feedback: pd.DataFrame | None = None, set_aside: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(one row per request, rejected rows with `source` and `reject_reason`, counts).

    `set_aside`: rows a reader already set aside (a malformed JSONL line), counted with the rest.
    `counts["missing_columns"]` names the optional columns the log lacks."""
    rows, aside, missing = _candidate_rows(log)
    if set_aside is not None and not set_aside.empty:
        aside.append(set_aside)
    if rows.empty:
        raise DataContractError(f"serving_log: no valid row ({len(log)} read, all rejected)")
    has = {c: c not in missing for c in OPTIONAL}
    text = rows["text"].astype(str)
    rows = rows.assign(
        norm=text.map(normalise_text),
        chars=text.str.len().astype(float),
        question=text.str.contains("?", regex=False).astype(float),
    )
    if has["guard_ok"]:
        rows["guard_ok"] = rows["guard_ok"].astype(bool)
    for col in ("caption_chars", "propensity", "epsilon"):
        rows[col] = pd.to_numeric(rows[col], errors="coerce") if has[col] else np.nan
    for col in ("topic", "caption_sha", "status"):
        if not has[col]:
            rows[col] = None
    for col in ("degraded", "explored"):
        if not has[col]:
            rows[col] = False
    g = rows.groupby("request_id", sort=False)
    req = g.agg(
        video_id=("video_id", "first"),
        topic=("topic", "first"),
        caption_chars=("caption_chars", "first"),
        caption_sha=("caption_sha", "first"),
        served_at=("served_at", "min"),
        model_version=("model_version", "first"),
        status_logged=("status", "first"),
        epsilon=("epsilon", "first"),
        n_candidates=("text", "size"),
        n_selected=("selected", "sum"),
        distinct_texts=("norm", "nunique"),
        degraded=("degraded", "any"),
        explored=("explored", "any"),
    )
    for stage in STAGES:
        col = f"latency_{stage}_ms"
        req[col] = (
            pd.to_numeric(rows[col], errors="coerce").groupby(rows["request_id"]).first()
            if has[col]
            else np.nan
        )
    ok = rows[rows["guard_ok"]] if has["guard_ok"] else rows
    req["n_guarded"] = ok.groupby("request_id").size().reindex(req.index, fill_value=0)
    req["guarded_chars"] = ok.groupby("request_id")["chars"].mean()
    req["guarded_question"] = ok.groupby("request_id")["question"].mean()
    req = req.join(_per_request_text(rows, has["style"]))
    scored = ok[ok["reward_score"].notna()]
    rows["score_pct"] = scored.groupby("request_id")["reward_score"].rank(pct=True)
    rows["is_top"] = (
        scored["reward_score"] >= scored.groupby("request_id")["reward_score"].transform("max")
    ).reindex(rows.index)
    chosen = rows[rows["selected"]].set_index("request_id")
    cols = ("category", "text", "reward_score", "chars", "question", "propensity", "score_pct")
    for col in (*cols, "is_top"):
        req[f"chosen_{col}"] = chosen[col]
    if has["style"]:
        req["chosen_style"] = chosen["style"]
    derived = np.where(
        req["n_selected"] == 0, ALL_REJECTED, np.where(req["degraded"], DEGRADED, SERVED)
    )
    req["status"] = req["status_logged"].where(req["status_logged"].notna(), derived)
    req = req.drop(columns=["status_logged"]).rename_axis("request_id").reset_index()
    req, fb_aside = _join_feedback(req, feedback)
    aside += fb_aside
    rejected = _rejected_frame(aside)
    by_source = rejected["source"].value_counts().to_dict() if not rejected.empty else {}
    by_reason = rejected["reject_reason"].value_counts().to_dict() if not rejected.empty else {}
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
        "rejected_reasons": {str(k): int(v) for k, v in by_reason.items()},
        "missing_columns": missing,
    }
    return req, rejected, counts


def _rejected_frame(aside: list[pd.DataFrame]) -> pd.DataFrame:
    """All set-aside rows in one frame whose mixed-type columns are strings (parquet-safe)."""
    parts = [a for a in aside if not a.empty]
    if not parts:
        return pd.DataFrame(columns=["source", "reject_reason"])
    rejected = pd.concat(parts, ignore_index=True)
    for col in rejected.columns:
        if rejected[col].dtype == object or str(rejected[col].dtype).startswith("datetime"):
            rejected[col] = rejected[col].map(
                lambda v: None if v is None or v is pd.NaT else str(v)
            )
    return rejected


def _join_feedback(
    req: pd.DataFrame, feedback: pd.DataFrame | None
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Left-join pv/clicks on every request; feedback for an unknown request is set aside."""
    if feedback is None:
        return req.assign(pv=np.nan, clicks=np.nan), []
    check_columns("feedback", feedback)
    feedback = feedback.assign(request_id=as_id(feedback["request_id"]))
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
        return [
            p.reset_index(drop=True)
            for _, p in req.groupby(pd.Grouper(key="served_at", freq=window))
            if len(p)
        ]
    size = window_requests or len(req)
    ends = list(range(len(req), 0, -size))[::-1]  # aligned on the end: the latest window is full
    return [req.iloc[max(0, e - size) : e].reset_index(drop=True) for e in ends]
