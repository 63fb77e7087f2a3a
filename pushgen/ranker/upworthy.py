"""Adapter from the Upworthy Research Archive format to the project's `ab_tests` contract.

The archive (Matias et al., Scientific Data 2021) holds one row per arm of a headline test:
`clickability_test_id`, `headline`, `lede`, `excerpt`, `impressions`, `clicks`, `eyecatcher_id`,
`test_week`, ... Many tests vary only the image or the excerpt, so pairs are made between arms
whose headline differs and whose image is the same (`UPWORTHY_PAIR_MATCH`). The maintainers flag
possibly non-random assignment from late June 2013 to 10 January 2014 (weeks 201326-201402);
those arms carry `nonrandom_assignment=True` so results can be reported with and without them.

    ab = upworthy_to_ab_tests(pd.read_parquet("data/upworthy_ab.parquet"))
"""

from __future__ import annotations

import pandas as pd

from pushgen.core.errors import DataContractError

UPWORTHY_COLUMNS = ("clickability_test_id", "headline", "impressions", "clicks")
NONRANDOM_WEEKS = (201326, 201402)  # inclusive range of `test_week` flagged by the maintainers
UPWORTHY_PAIR_MATCH = ("eyecatcher_id",)  # same image: the headline is the only difference left
UPWORTHY_STORY_LINKS = ("text", "lede")  # tests sharing a headline or a lede are one story


def is_upworthy(df: pd.DataFrame) -> bool:
    """Whether `df` looks like the Upworthy archive rather than the `ab_tests` contract."""
    return set(UPWORTHY_COLUMNS) <= set(df.columns)


def upworthy_to_ab_tests(df: pd.DataFrame) -> pd.DataFrame:
    """Upworthy arms as `ab_tests` rows (test_id, video_id, push_id, text, pv, clicks, ...).

    `video_id` is the test (Upworthy has no videos; a test is about one story element), `push_id`
    numbers the arms within the test. `lede`, `excerpt`, `eyecatcher_id`, `test_week` and
    `nonrandom_assignment` are kept for matching arms, story grouping and reporting.
    """
    missing = [c for c in UPWORTHY_COLUMNS if c not in df.columns]
    if missing:
        raise DataContractError(f"upworthy: missing column(s) {missing}; got {list(df.columns)}")
    test_id = df["clickability_test_id"].astype(str)
    out = pd.DataFrame(
        {
            "test_id": test_id,
            "video_id": test_id,
            "push_id": test_id + ":" + df.groupby(test_id).cumcount().astype(str),
            "text": df["headline"],
            "pv": df["impressions"],
            "clicks": df["clicks"],
        },
        index=df.index,
    )
    for col in ("lede", "excerpt", "eyecatcher_id", "test_week", "winner_count_anomaly"):
        if col in df.columns:
            out[col] = df[col]
    if "eyecatcher_id" not in out.columns:
        out["eyecatcher_id"] = None  # no image column: every arm counts as the same image
    if "test_week" in df.columns:
        lo, hi = NONRANDOM_WEEKS
        out["nonrandom_assignment"] = df["test_week"].between(lo, hi)
    else:
        out["nonrandom_assignment"] = False
    return out.reset_index(drop=True)
