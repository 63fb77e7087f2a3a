"""Ingest an A/B headline archive in the Upworthy layout into the project's three contracts.

The Upworthy Research Archive (Matias et al., Scientific Data 8, 195, 2021) holds one row per
*package*: an arm of a headline test. This module reads it (the archive's raw packages CSV or a
parquet of the same columns) and writes the contracts every pipeline step reads:

- `videos` (items): one per story. A story is a group of tests sharing a headline or a lede
  (connected components, like `pushgen.ranker.pairs.assign_stories`). `title` is the lede's
  first sentence, `description` the lede and the excerpt; no headline goes into an item, so the
  generator's caption never contains the text it learns to write.
- `pushes`: one per distinct headline of a story, with the exposure and clicks summed over its
  arms; `svr`, `lvtr`, `htr` are absent (NaN): the archive has no viewing data.
- `ab_tests`: one per arm (`test_id` = `clickability_test_id`, `push_id` = `<test>:<arm>`,
  `headline_id` = the push's id), with `lede`, `excerpt`, `eyecatcher_id`, `test_week` and
  `nonrandom_assignment` kept for pairing, story grouping and reporting.

A user brings their own history in the same shape: one row per arm with the columns below;
only the four `REQUIRED` ones must exist (a file without them is refused with one line).

    report = ingest_upworthy("upworthy.csv", "runs/uw/data")   # videos/pushes/ab_tests.parquet

Rows that cannot be used go to `rejected.parquet` with a reason (`table="upworthy"`): an empty
headline, a missing test id, non-numeric or negative counts, clicks > impressions, an exact
duplicate of an earlier arm, no lede and no excerpt. Valid + rejected = rows read.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pushgen.core.errors import DataContractError
from pushgen.core.store import hash_paths
from pushgen.data.contracts import validate, write_table

REQUIRED = ("clickability_test_id", "headline", "impressions", "clicks")
OPTIONAL = ("lede", "excerpt", "eyecatcher_id", "test_week", "created_at")
# the archive's maintainers flag possibly non-random assignment in these weeks (inclusive)
NONRANDOM_WEEKS = (201326, 201402)
# columns whose equality makes two rows the same arm (the raw CSV has more, e.g. share text)
ARM_KEY = ("clickability_test_id", "headline", "lede", "excerpt", "eyecatcher_id")
ABSENT_ROLLUP = ("svr", "lvtr", "htr")  # pushes columns the archive cannot fill
_TAG = re.compile(r"<[^>]+>")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def is_upworthy_file(path: str | Path) -> bool:
    """Whether `path` is a single table file (not a directory of contract tables)."""
    p = Path(path)
    return p.is_file() and p.suffix in (".parquet", ".csv")


def read_archive(path: str | Path) -> pd.DataFrame:
    """Read the archive (parquet, or the raw packages CSV) with a one-line error when unusable."""
    p = Path(path)
    if not p.exists():
        raise DataContractError(f"no such file: {p}")
    try:
        # everything as text first: counts are checked row by row, not coerced silently
        df = pd.read_csv(p, dtype=str, keep_default_na=False) if p.suffix == ".csv" else None
        if df is None:
            df = pd.read_parquet(p)
    except Exception as exc:  # pandas/pyarrow raise many types for a bad file
        raise DataContractError(f"cannot read {p} as a table: {exc}".splitlines()[0]) from exc
    df = df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed: ")])
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataContractError(
            f"{p.name}: missing column(s) {missing}; an Upworthy-layout file needs {list(REQUIRED)}"
        )
    if df.empty:
        raise DataContractError(f"{p.name}: the table has no rows")
    return df


def plain_text(value: object) -> str:
    """Text without HTML tags or entities, whitespace collapsed ('' for missing)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = html.unescape(_TAG.sub(" ", str(value)))
    return " ".join(text.replace("*", "").split())


def arm_reasons(df: pd.DataFrame) -> pd.Series:
    """First failing rule per raw arm ('' when usable); rules in priority order."""
    reason = pd.Series("", index=df.index, dtype=object)

    def mark(mask: pd.Series, why: str) -> None:
        mask = pd.Series(mask, index=df.index).fillna(True).astype(bool) & (reason == "")
        reason[mask] = why

    mark(
        df["clickability_test_id"].astype(str).str.strip().isin(["", "nan", "None"]),
        "missing test id",
    )
    mark(df["headline_clean"] == "", "empty headline")
    for col in ("impressions", "clicks"):
        num = pd.to_numeric(df[col], errors="coerce")
        mark(num.isna(), f"non-numeric {col}")
        mark(num < 0, f"negative {col}")
        mark(num != np.floor(num.fillna(0)), f"non-integer {col}")
    imp = pd.to_numeric(df["impressions"], errors="coerce")
    clk = pd.to_numeric(df["clicks"], errors="coerce")
    mark(clk > imp, "clicks > impressions")
    mark((df["lede_clean"] == "") & (df["excerpt_clean"] == ""), "no lede and no excerpt")
    key = [*ARM_KEY, "impressions", "clicks"]
    mark(df[key].astype(str).duplicated(keep="first"), "duplicate arm")
    return reason


def story_ids(arms: pd.DataFrame) -> pd.Series:
    """Story per arm: tests linked by a shared headline or lede, transitively (scipy components);
    the id is `s<first test id of the story>` so it does not move when other stories change."""
    tests, test_idx = np.unique(arms["clickability_test_id"].astype(str), return_inverse=True)
    rows, cols, n = [], [], len(tests)
    for col in ("headline_clean", "lede_clean"):
        ok = (arms[col] != "").to_numpy()
        _, val_idx = np.unique(arms.loc[ok, col], return_inverse=True)
        rows.append(test_idx[ok])
        cols.append(val_idx + n)
        n += int(val_idx.max()) + 1 if len(val_idx) else 0
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    first = pd.Series(tests).groupby(labels[: len(tests)]).min()
    return pd.Series(["s" + first[labels[i]] for i in test_idx], index=arms.index)


def _week_to_time(week: pd.Series) -> pd.Series:
    """ISO week numbers like 201446 as the Monday of that week (UTC); NaT when unparseable."""
    text = pd.to_numeric(week, errors="coerce").astype("Int64").astype(str)
    return pd.to_datetime(text + "1", format="%G%V%u", errors="coerce", utc=True)


def _first_sentence(text: str, limit: int = 160) -> str:
    first = _SENTENCE.split(text, maxsplit=1)[0]
    return first if len(first) <= limit else first[:limit].rsplit(" ", 1)[0] + "..."


def _push_id(story: str, headline: str) -> str:
    return f"{story}:h" + hashlib.sha1(headline.encode()).hexdigest()[:10]


def to_contracts(raw: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, dict]:
    """({videos, pushes, ab_tests}, rejected raw rows with `reject_reason`, report)."""
    df = raw.copy()
    absent = [c for c in OPTIONAL if c not in df.columns]
    for col in OPTIONAL:
        if col not in df.columns:
            df[col] = ""
    df["headline_clean"] = df["headline"].map(plain_text)
    df["lede_clean"] = df["lede"].map(plain_text)
    df["excerpt_clean"] = df["excerpt"].map(plain_text)
    reason = arm_reasons(df)
    rejected = raw[reason != ""].copy()
    rejected["reject_reason"] = reason[reason != ""]
    arms = df[reason == ""].copy()
    arms["impressions"] = pd.to_numeric(arms["impressions"]).astype("int64")
    arms["clicks"] = pd.to_numeric(arms["clicks"]).astype("int64")
    arms["story"] = story_ids(arms) if len(arms) else pd.Series(dtype=str)
    when = _week_to_time(arms["test_week"])
    if "created_at" in raw.columns:
        when = when.fillna(pd.to_datetime(arms["created_at"], errors="coerce", utc=True))
    arms["when"] = when.fillna(pd.Timestamp("2013-01-01", tz="UTC"))
    arms["description"] = (arms["lede_clean"] + " " + arms["excerpt_clean"]).str.strip()

    # items: one per story, its most common lede/excerpt (ties: first seen)
    stories = arms.groupby("story", sort=True)
    desc = stories["description"].agg(lambda s: s.value_counts().index[0])
    lede = stories["lede_clean"].agg(lambda s: s.value_counts().index[0])
    videos = pd.DataFrame(
        {
            "video_id": desc.index,
            "title": [_first_sentence(lede[s] or desc[s]) for s in desc.index],
            "description": desc.to_numpy(),
            "asr_text": "",
            "frames": [[] for _ in desc.index],
            "topic": None,  # the archive has no topic: one soft-filter cluster (see clean)
            "author_id": "upworthy",
            "published_at": stories["when"].min().dt.tz_localize(None).to_numpy(),
        }
    )
    # pushes: a story's distinct headlines, exposure summed over the arms that showed them
    arms["headline_id"] = [
        _push_id(s, h) for s, h in zip(arms["story"], arms["headline_clean"], strict=True)
    ]
    per = arms.groupby("headline_id", sort=True)
    pushes = pd.DataFrame(
        {
            "push_id": per.size().index,
            "video_id": per["story"].first().to_numpy(),
            "text": per["headline_clean"].first().to_numpy(),
            "sent_at": per["when"].min().dt.tz_localize(None).to_numpy(),
            "pv": per["impressions"].sum().to_numpy(),
            "clicks": per["clicks"].sum().to_numpy(),
            "n_arms": per.size().to_numpy(),
        }
    )
    pushes["ctr"] = pushes["clicks"] / pushes["pv"].where(pushes["pv"] > 0)
    pushes["ctr"] = pushes["ctr"].fillna(0.0)
    for col in ABSENT_ROLLUP:
        pushes[col] = np.nan  # absent, not zero: clean says it could not apply these filters
    test = arms["clickability_test_id"].astype(str)
    week = pd.to_numeric(arms["test_week"], errors="coerce")
    ab = pd.DataFrame(
        {
            "test_id": test,
            "video_id": arms["story"],
            "push_id": test + ":" + arms.groupby(test).cumcount().astype(str),
            "headline_id": arms["headline_id"],
            "text": arms["headline_clean"],
            "pv": arms["impressions"],
            "clicks": arms["clicks"],
            "lede": arms["lede_clean"],
            "excerpt": arms["excerpt_clean"],
            "eyecatcher_id": arms["eyecatcher_id"].astype(str).replace("", None),
            "test_week": week,
            "nonrandom_assignment": week.between(*NONRANDOM_WEEKS).to_numpy(),
        }
    )
    report = {
        "format": "upworthy",
        "rows_read": len(raw),
        "arms_valid": len(arms),
        "arms_rejected": len(rejected),
        "rejected_by_reason": rejected["reject_reason"].value_counts().astype(int).to_dict(),
        "absent_columns": absent,
        "absent_push_metrics": list(ABSENT_ROLLUP),
        "stories": len(videos),
        "tests": int(test.nunique()),
    }
    tables = {"videos": videos, "pushes": pushes, "ab_tests": ab.reset_index(drop=True)}
    return tables, rejected, report


def ingest_upworthy(path: str | Path, out_dir: str | Path) -> dict:
    """Write `videos/pushes/ab_tests.parquet`, `rejected.parquet`, `world.json` ({}: real data)
    and `ingest_report.json` to out_dir, as `pushgen.data.ingest.load_source` does for a
    directory of contract tables. Returns the report (rows and rejected per table too)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables, rejected, report = to_contracts(read_archive(path))
    if not report["arms_valid"]:
        raise DataContractError(
            f"{Path(path).name}: no usable arm ({report['rejected_by_reason']})"
        )
    asides = [rejected.astype(str).assign(table="upworthy")] if len(rejected) else []
    report["rows"], report["rejected"] = {}, {"upworthy": len(rejected)}
    videos, bad = validate("videos", tables["videos"])
    asides.append(bad.astype(str).assign(table="videos"))
    write_table(videos, out / "videos.parquet")
    report["rows"]["videos"], report["rejected"]["videos"] = len(videos), len(bad)
    for name in ("pushes", "ab_tests"):
        valid, bad = validate(name, tables[name], known_video_ids=videos["video_id"])
        write_table(valid, out / f"{name}.parquet")
        asides.append(bad.astype(str).assign(table=name))
        report["rows"][name], report["rejected"][name] = len(valid), len(bad)
    kept = [a for a in asides if len(a)]
    aside = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()
    if aside.empty:
        aside = pd.DataFrame({"table": pd.Series(dtype=str), "reject_reason": pd.Series(dtype=str)})
    write_table(aside.assign(step="ingest"), out / "rejected.parquet")
    (out / "world.json").write_text("{}")
    report["simulated"] = False
    report["source_data_hash"] = hash_paths([out / f"{n}.parquet" for n in tables])
    (out / "ingest_report.json").write_text(json.dumps(report, indent=2))
    return report
