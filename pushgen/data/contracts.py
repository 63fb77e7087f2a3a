"""Data contracts (docs/design.md) as code: column schemas, a row validator, and table I/O.

`validate(name, df)` splits a table into valid rows and rejected rows, each rejected row carrying
a `reject_reason`; nothing is dropped silently. `read_table` gives a clear error for a missing
file, an unreadable file, or missing columns.

    valid, rejected = validate("pushes", df, known_video_ids=videos.video_id)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pushgen.core.errors import DataContractError

MAX_TEXT_CHARS = 500  # a push is a one-liner; anything longer is a parsing accident


@dataclass(frozen=True)
class Contract:
    """Columns a table must have, and which of them are ids, counts, rates and texts."""

    name: str
    columns: tuple[str, ...]
    unique: tuple[str, ...] = ()  # these columns together identify a row
    counts: tuple[str, ...] = ()  # non-negative integers
    rates: tuple[str, ...] = ()  # floats in [0, 1]
    texts: tuple[str, ...] = ()  # non-empty, at most MAX_TEXT_CHARS
    required: tuple[str, ...] = ()  # must be present and not null
    video_ref: bool = False  # has a video_id that must be known
    # may be absent or null (not measured, e.g. real data without viewing metrics); a value that
    # is there is still checked
    optional: tuple[str, ...] = ()


CONTRACTS: dict[str, Contract] = {
    "videos": Contract(
        "videos",
        (
            "video_id",
            "title",
            "description",
            "asr_text",
            "frames",
            "topic",
            "author_id",
            "published_at",
        ),
        unique=("video_id",),
        required=("video_id", "title"),
    ),
    "captions": Contract(
        "captions",
        ("video_id", "caption", "captioner", "created_at"),
        unique=("video_id",),
        required=("video_id", "caption"),
        video_ref=True,
    ),
    "pushes": Contract(
        "pushes",
        ("push_id", "video_id", "text", "sent_at", "pv", "clicks", "ctr", "svr", "lvtr", "htr"),
        unique=("push_id",),
        counts=("pv", "clicks"),
        rates=("ctr", "svr", "lvtr", "htr"),
        texts=("text",),
        required=("push_id", "video_id"),
        video_ref=True,
        optional=("svr", "lvtr", "htr"),
    ),
    "ab_tests": Contract(
        "ab_tests",
        ("test_id", "video_id", "push_id", "text", "pv", "clicks"),
        unique=("test_id", "push_id"),  # a push may be an arm of several tests
        counts=("pv", "clicks"),
        texts=("text",),
        required=("test_id", "video_id", "push_id"),
        video_ref=True,
    ),
    "serving_log": Contract(
        "serving_log",
        (
            "request_id",
            "video_id",
            "category",
            "text",
            "reward_score",
            "selected",
            "model_version",
            "served_at",
        ),
        texts=("text",),
        required=("request_id", "video_id"),
    ),
    "feedback": Contract(
        "feedback",
        ("request_id", "pv", "clicks"),
        unique=("request_id",),
        counts=("pv", "clicks"),
        required=("request_id",),
    ),
}


def get_contract(name: str) -> Contract:
    """The contract called `name`, or a clear error listing the known ones."""
    try:
        return CONTRACTS[name]
    except KeyError:
        raise DataContractError(
            f"unknown table contract {name!r}; known: {sorted(CONTRACTS)}"
        ) from None


def check_columns(name: str, df: pd.DataFrame) -> None:
    """Raise if `df` lacks a contract column or has no rows."""
    contract = get_contract(name)
    missing = [c for c in contract.columns if c not in df.columns and c not in contract.optional]
    if missing:
        raise DataContractError(f"{name}: missing column(s) {missing}; got {list(df.columns)}")
    if df.empty:
        raise DataContractError(f"{name}: the table has no rows")


def _reasons(contract: Contract, df: pd.DataFrame, known_video_ids) -> pd.Series:
    """First failing rule per row ('' when the row is valid); vectorised, rules in priority order."""
    reason = pd.Series("", index=df.index, dtype=object)

    def mark(mask: pd.Series | np.ndarray, why: str) -> None:
        mask = pd.Series(mask, index=df.index).fillna(True).astype(bool) & (reason == "")
        reason[mask] = why

    for col in contract.required:
        values = df[col]
        blank = values.isna() | (values.astype(str).str.strip() == "")
        mark(blank, f"missing {col}")
    for col in contract.counts:
        numeric = pd.to_numeric(df[col], errors="coerce")
        mark(numeric.isna(), f"non-numeric {col}")
        mark(numeric < 0, f"negative {col}")
        mark(numeric.notna() & (numeric != np.floor(numeric.fillna(0))), f"non-integer {col}")
    if {"pv", "clicks"} <= set(contract.counts):
        pv = pd.to_numeric(df["pv"], errors="coerce")
        clicks = pd.to_numeric(df["clicks"], errors="coerce")
        mark(clicks > pv, "clicks > pv")
    for col in contract.rates:
        if col not in df.columns:
            continue  # an optional rate that was not measured
        rate = pd.to_numeric(df[col], errors="coerce")
        measured = df[col].notna() if col in contract.optional else True
        mark(measured & (rate.isna() | (rate < 0) | (rate > 1)), f"{col} not in [0, 1]")
    for col in contract.texts:
        text = df[col].astype("string")
        mark(text.isna() | (text.str.strip() == ""), f"empty {col}")
        mark(text.str.len() > MAX_TEXT_CHARS, f"{col} over {MAX_TEXT_CHARS} chars")
    if contract.video_ref and known_video_ids is not None:
        mark(~df["video_id"].isin(set(known_video_ids)), "unknown video_id")
    if contract.unique:
        key = list(contract.unique)
        mark(
            df.duplicated(key, keep="first") & df[key].notna().all(axis=1),
            f"duplicate {'+'.join(key)}",
        )
    return reason


def validate(
    name: str, df: pd.DataFrame, known_video_ids=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `df` into (valid rows, rejected rows with a `reject_reason` column).

    Raises `DataContractError` when the table as a whole is unusable (missing columns, no rows);
    row-level problems never raise, they are returned as rejected rows.
    """
    check_columns(name, df)
    contract = get_contract(name)
    reason = _reasons(contract, df, known_video_ids)
    bad = reason != ""
    rejected = df[bad].copy()
    rejected["reject_reason"] = reason[bad]
    valid = df[~bad].copy()
    for col in contract.counts:
        valid[col] = pd.to_numeric(valid[col]).astype("int64")
    return valid, rejected


def read_table(path: str | Path, name: str | None = None) -> pd.DataFrame:
    """Read a parquet (or .csv/.jsonl, or a directory of parquet parts) table with clear errors;
    check its contract if `name` is given."""
    path = Path(path)
    if not path.exists():
        raise DataContractError(f"no such file: {path}")
    try:
        if path.is_dir():  # a directory of parquet parts (e.g. shipped serving-log windows)
            parts = sorted(path.glob("*.parquet"))
            if not parts:
                raise DataContractError(f"{path}: a directory without .parquet files")
            df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        elif path.suffix == ".csv":
            df = pd.read_csv(path)
        elif path.suffix in (".jsonl", ".json"):
            # dtype=False: a digit-only id stays the string it was written as ("00123")
            df = pd.read_json(path, lines=path.suffix == ".jsonl", dtype=False)
        else:
            df = pd.read_parquet(path)
    except DataContractError:
        raise
    except Exception as exc:  # pyarrow/pandas raise many types for a bad file
        raise DataContractError(f"cannot read {path} as a table: {exc}".splitlines()[0]) from exc
    if name is not None:
        check_columns(name, df)
    return df


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write `df` as parquet, creating the parent directory, via a temp file then rename (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def write_rejected(rejected: pd.DataFrame, out_dir: str | Path, step: str) -> Path | None:
    """Keep rejected rows aside as `<out_dir>/rejected.parquet` (with a `step` column); None if none."""
    if rejected.empty:
        return None
    rejected = rejected.assign(step=step)
    return write_table(rejected, Path(out_dir) / "rejected.parquet")
