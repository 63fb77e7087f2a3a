"""Turn a serving log, its feedback and a reference table into the two frames the checks compare.

`current`: one row per request, the selected push (`category`, `text`, `reward_score`, `served_at`,
`model_version`) joined with its feedback (`pv`, `clicks`, `ctr`). `reference`: the historical
pushes (labelled: `category`, `text`, optional `ctr`) or an earlier serving-log window (its selected
rows). Bad rows are never dropped silently: each one lands in `rejected` with a `source` and a
`reject_reason`, and `counts` says how many.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pushgen.contracts import check_columns, validate
from pushgen.errors import DataContractError

TRUE_WORDS = {"true", "1", "yes", "y", "t"}
FALSE_WORDS = {"false", "0", "no", "n", "f", ""}


@dataclass
class MonitorInputs:
    """The frames the checks compare, plus what was set aside and why."""

    current: pd.DataFrame  # selected push per request, with feedback where it arrived
    reference: pd.DataFrame  # category, text, and ctr / reward_score where the reference has them
    rejected: pd.DataFrame  # every row set aside, with `source` and `reject_reason`
    counts: dict[str, int] = field(default_factory=dict)  # rows read / kept / rejected per source


def _as_bool(values: pd.Series) -> pd.Series:
    """Parse a `selected` column written as bools, 0/1 or words; unparseable values become NaN."""
    if values.dtype == bool:
        return values.astype(object)
    words = values.astype(str).str.strip().str.lower()
    parsed = pd.Series(np.nan, index=values.index, dtype=object)
    parsed[words.isin(TRUE_WORDS)] = True
    parsed[words.isin(FALSE_WORDS) & values.notna()] = False
    return parsed


def _set_aside(df: pd.DataFrame, mask: pd.Series, reason: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `df` on `mask`: (kept rows, rows set aside with `reason`)."""
    aside = df[mask].copy()
    aside["reject_reason"] = reason
    return df[~mask], aside


def _selected_pushes(serving_log: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Valid selected rows of the log (one per request) and the rejected log rows."""
    valid, rejected = validate("serving_log", serving_log)
    aside = [rejected]
    valid = valid.assign(selected=_as_bool(valid["selected"]))
    valid, bad = _set_aside(valid, valid["selected"].isna(), "selected is not a boolean")
    aside.append(bad)
    score = pd.to_numeric(valid["reward_score"], errors="coerce")
    valid, bad = _set_aside(valid, ~np.isfinite(score.astype(float)), "non-numeric reward_score")
    aside.append(bad)
    valid = valid.assign(reward_score=pd.to_numeric(valid["reward_score"]).astype(float))
    chosen = valid[valid["selected"].astype(bool)]
    chosen, bad = _set_aside(
        chosen,
        chosen.duplicated("request_id", keep="first"),
        "several selected rows for request_id",
    )
    aside.append(bad)
    if chosen.empty:
        raise DataContractError(
            "serving_log: no valid row has selected=True, so there is nothing to monitor "
            f"({len(serving_log)} rows read, {sum(len(a) for a in aside)} rejected)"
        )
    return chosen, aside


def _attach_feedback(
    chosen: pd.DataFrame, feedback: pd.DataFrame | None, min_pv: int
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Join feedback to the selected pushes; feedback for an unknown request is set aside."""
    if feedback is None:
        return chosen.assign(pv=np.nan, clicks=np.nan, ctr=np.nan), []
    valid, rejected = validate("feedback", feedback)
    aside = [rejected]
    valid, bad = _set_aside(
        valid, ~valid["request_id"].isin(set(chosen["request_id"])), "unknown request_id"
    )
    aside.append(bad)
    joined = chosen.merge(valid[["request_id", "pv", "clicks"]], on="request_id", how="left")
    # too few exposures make clicks/pv mostly noise; such rows stay in the style checks
    ctr = joined["clicks"] / joined["pv"].where(joined["pv"] >= min_pv)
    return joined.assign(ctr=ctr), aside


def prepare_current(
    serving_log: pd.DataFrame, feedback: pd.DataFrame | None, min_pv: int = 100
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(selected push per request joined with feedback, rejected rows with `source`)."""
    chosen, log_aside = _selected_pushes(serving_log)
    current, fb_aside = _attach_feedback(chosen, feedback, min_pv)
    rejected = _collect(log_aside, "serving_log") + _collect(fb_aside, "feedback")
    current = current.assign(served_at=pd.to_datetime(current["served_at"], errors="coerce"))
    return current.reset_index(drop=True), _concat(rejected)


def prepare_reference(reference: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference rows with category, text and ctr / reward_score if known, rejected rows).

    A serving-log window is recognised by its `selected` column and reduced to its selected rows;
    a pushes table keeps all rows. `ctr` comes from the table or from `clicks / pv`.
    """
    missing = [c for c in ("category", "text") if c not in reference.columns]
    if missing:
        raise DataContractError(
            f"reference: missing column(s) {missing}; it must be labelled historical pushes "
            f"(category, text, ctr) or a serving log; got {list(reference.columns)}"
        )
    if reference.empty:
        raise DataContractError("reference: the table has no rows")
    ref = reference.copy()
    aside = []
    if "selected" in ref.columns:
        ref = ref.assign(selected=_as_bool(ref["selected"]))
        ref, bad = _set_aside(ref, ref["selected"].isna(), "selected is not a boolean")
        aside.append(bad)
        ref = ref[ref["selected"].astype(bool)]
    text = ref["text"].astype("string").str.strip()
    ref, bad = _set_aside(ref, (text.isna() | (text == "")).to_numpy(), "empty text")
    aside.append(bad)
    category = ref["category"].astype("string").str.strip()
    ref, bad = _set_aside(ref, (category.isna() | (category == "")).to_numpy(), "missing category")
    aside.append(bad)
    if ref.empty:
        raise DataContractError(
            f"reference: no usable row ({len(reference)} read, all rejected or not selected)"
        )
    if "ctr" not in ref.columns and {"pv", "clicks"} <= set(ref.columns):
        pv = pd.to_numeric(ref["pv"], errors="coerce")
        ref = ref.assign(ctr=pd.to_numeric(ref["clicks"], errors="coerce") / pv.where(pv > 0))
    keep = [c for c in ("category", "text", "ctr", "reward_score", "served_at") if c in ref.columns]
    ref = ref[keep].assign(category=ref["category"].astype(str), text=ref["text"].astype(str))
    for col in ("ctr", "reward_score"):
        if col in ref.columns:
            ref[col] = pd.to_numeric(ref[col], errors="coerce").astype(float)
    return ref.reset_index(drop=True), _concat(_collect(aside, "reference"))


def load_inputs(
    serving_log: pd.DataFrame,
    feedback: pd.DataFrame | None,
    reference: pd.DataFrame,
    min_pv: int = 100,
) -> MonitorInputs:
    """Check and align the three tables; whole-table problems raise `DataContractError`."""
    check_columns("serving_log", serving_log)
    if feedback is not None:
        check_columns("feedback", feedback)
    current, rejected_cur = prepare_current(serving_log, feedback, min_pv)
    ref, rejected_ref = prepare_reference(reference)
    rejected = _concat([rejected_cur, rejected_ref])
    by_source = rejected["source"].value_counts().to_dict() if not rejected.empty else {}
    counts = {
        "serving_log_rows": len(serving_log),
        "feedback_rows": 0 if feedback is None else len(feedback),
        "reference_rows": len(reference),
        "selected_pushes": len(current),
        "with_feedback": int(current["pv"].notna().sum()),
        "with_ctr": int(current["ctr"].notna().sum()),
        "reference_kept": len(ref),
        **{f"rejected_{src}": int(n) for src, n in by_source.items()},
    }
    return MonitorInputs(current=current, reference=ref, rejected=rejected, counts=counts)


def _collect(frames: list[pd.DataFrame], source: str) -> list[pd.DataFrame]:
    return [f.assign(source=source) for f in frames if not f.empty]


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["source", "reject_reason"])
    return pd.concat(frames, ignore_index=True)
