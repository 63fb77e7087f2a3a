"""From serving to training: served pushes with their feedback become new A/B-test rows.

The serving log holds every candidate of every request and which one was served (`selected`);
feedback holds the served push's exposures and clicks per request. For one window, each video's
distinct served texts are the arms of one new test (exposures and clicks summed over the requests
that served the same text), exploration traffic (requests that served a candidate other than the
ranker's top one) being what gives a video several arms. The new rows join the past tables into a
fresh data location the next training run ingests (`data_location`), so the next ranker trains on
them.

Rows that cannot be used are counted and set aside with a reason: served rows without feedback,
videos the past tables do not know, videos with a single served text (no comparison).

    report = ingest_feedback(log, feedback, "runs/lake", "runs/lake-next", window="2026-12-02")
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd

from pushgen.core.errors import ConfigError
from pushgen.data.contracts import validate, write_table
from pushgen.data.ingest import _read_tables

PREFIX = "srv"  # test_id / push_id prefix of rows made from serving traffic


def _served(log: pd.DataFrame) -> pd.DataFrame:
    selected = log["selected"].astype(str).str.lower().isin(("true", "1"))
    return log[selected]


def feedback_ab_tests(
    serving_log: pd.DataFrame,
    feedback: pd.DataFrame,
    window: str,
    known_video_ids: pd.Series | None = None,
    min_arms: int = 2,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(new ab_tests rows, rows set aside with `reject_reason`) for one serving window."""
    if min_arms < 2:
        raise ConfigError(f"min_arms must be at least 2 (a test compares arms), got {min_arms}")
    served = _served(serving_log)[["request_id", "video_id", "text"]].copy()
    served["request_id"] = served["request_id"].astype(str)
    fb = feedback.assign(request_id=feedback["request_id"].astype(str))
    joined = served.merge(fb[["request_id", "pv", "clicks"]], on="request_id", how="left")
    aside = [joined[joined["pv"].isna()].assign(reject_reason="served push without feedback")]
    rows = joined[joined["pv"].notna()]
    if known_video_ids is not None:
        unknown = ~rows["video_id"].isin(set(known_video_ids))
        aside.append(rows[unknown].assign(reject_reason="video unknown to the past tables"))
        rows = rows[~unknown]
    arms = (
        rows.groupby(["video_id", "text"], as_index=False)
        .agg(pv=("pv", "sum"), clicks=("clicks", "sum"), requests=("request_id", "count"))
        .astype({"pv": "int64", "clicks": "int64"})
    )
    n_arms = arms.groupby("video_id")["text"].transform("count")
    aside.append(
        arms[n_arms < min_arms].assign(reject_reason=f"fewer than {min_arms} served texts")
    )
    arms = arms[n_arms >= min_arms]
    text_id = arms["text"].map(lambda t: hashlib.sha1(t.encode()).hexdigest()[:10])
    new = pd.DataFrame(
        {
            "test_id": f"{PREFIX}-{window}-" + arms["video_id"].astype(str),
            "video_id": arms["video_id"].to_numpy(),
            "push_id": f"{PREFIX}-{window}-" + arms["video_id"].astype(str) + "-" + text_id,
            "text": arms["text"].to_numpy(),
            "pv": arms["pv"].to_numpy(),
            "clicks": arms["clicks"].to_numpy(),
        }
    ).reset_index(drop=True)
    rejected = pd.concat([a for a in aside if len(a)] or [pd.DataFrame()], ignore_index=True)
    return new, rejected


def _with_truth(rows: pd.DataFrame, world_file: Path) -> pd.DataFrame:
    """Simulated data: the new arms' true CTR and writer style, as the simulator's own tables
    carry them (ground truth for evaluation only, never a model input)."""
    from pushgen.data.simulator import World, true_ctr, true_style

    world = World.load(world_file)
    texts = rows["text"].astype(str)
    return rows.assign(
        true_category=[true_style(t) for t in texts],
        true_ctr=[true_ctr(world, v, t) for v, t in zip(rows["video_id"], texts, strict=True)],
    )


def ingest_feedback(
    serving_log: pd.DataFrame,
    feedback: pd.DataFrame,
    past_location: str,
    out_dir: str | Path,
    window: str,
    min_arms: int = 2,
) -> dict:
    """Write `videos`, `pushes`, `ab_tests` (past + this window's tests), `rejected` and, when the
    past data has one, the simulator's `world.json` to `out_dir`; returns the counts."""
    if not str(past_location).strip():
        raise ConfigError("ingest-feedback needs the past data location (videos, pushes, ab_tests)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scratch = out / ".raw"
    past = _read_tables(str(past_location).strip(), scratch)
    new, rejected = feedback_ab_tests(
        serving_log, feedback, window, past["videos"]["video_id"], min_arms
    )
    valid, bad = validate("ab_tests", new, known_video_ids=past["videos"]["video_id"])
    old = past["ab_tests"]
    world_file = scratch / "world.json"
    if world_file.exists() and json.loads(world_file.read_text() or "{}"):
        valid = _with_truth(valid, world_file)
    combined = pd.concat([old, valid], ignore_index=True)
    write_table(past["videos"], out / "videos.parquet")
    write_table(past["pushes"], out / "pushes.parquet")
    write_table(combined, out / "ab_tests.parquet")
    aside = pd.concat([r for r in (rejected, bad) if len(r)] or [pd.DataFrame()], ignore_index=True)
    write_table(aside.astype(str).assign(step="ingest-feedback"), out / "rejected.parquet")
    if world_file.exists():
        shutil.copyfile(world_file, out / "world.json")
    shutil.rmtree(scratch, ignore_errors=True)
    report = {
        "window": window,
        "past_ab_tests_rows": len(old),
        "new_ab_tests_rows": len(valid),
        "new_tests": int(valid["test_id"].nunique()),
        "rejected_rows": len(aside),
        "served_requests": int(len(_served(serving_log))),
    }
    (out / "ingest_feedback.json").write_text(json.dumps(report, indent=2))
    return report
