"""Served pushes and their feedback become new A/B-test rows beside the past tables."""

import pandas as pd
import pytest

from pushgen.core.errors import ConfigError
from pushgen.data.simulator import SimConfig, simulate, write_simulation
from pushgen.loop.feedback import feedback_ab_tests, ingest_feedback
from pushgen.ranker.recipe import read_ab_tests


def _log(rows):
    cols = ["request_id", "video_id", "text", "selected"]
    return pd.DataFrame(rows, columns=cols).assign(category="Humor", reward_score=0.1)


LOG = _log(
    [
        ("r1", "v1", "A", True),
        ("r1", "v1", "B", False),
        ("r2", "v1", "B", True),  # explored: another text for v1
        ("r3", "v1", "A", True),  # the same text again: one arm, summed
        ("r4", "v2", "C", True),  # v2 has one served text: not a test
        ("r5", "v1", "D", True),  # no feedback
        ("r6", "ghost", "E", True),
        ("r7", "ghost", "F", True),
    ]
)
FEEDBACK = pd.DataFrame(
    {
        "request_id": ["r1", "r2", "r3", "r4", "r6", "r7"],
        "pv": [100, 50, 30, 10, 5, 5],
        "clicks": [5, 4, 1, 1, 0, 1],
    }
)


def test_served_texts_become_arms_of_one_test_per_video():
    new, aside = feedback_ab_tests(LOG, FEEDBACK, "w1", pd.Series(["v1", "v2"]))
    assert new["test_id"].unique().tolist() == ["srv-w1-v1"]
    arms = new.set_index("text")
    assert arms.loc["A", "pv"] == 130 and arms.loc["A", "clicks"] == 6
    assert arms.loc["B", "pv"] == 50 and arms.loc["B", "clicks"] == 4
    assert new["push_id"].is_unique
    reasons = aside.groupby("reject_reason").size().to_dict()
    assert reasons == {
        "served push without feedback": 1,
        "video unknown to the past tables": 2,
        "fewer than 2 served texts": 1,
    }
    with pytest.raises(ConfigError, match="min_arms"):
        feedback_ab_tests(LOG, FEEDBACK, "w1", min_arms=1)


def test_ingest_feedback_appends_to_the_past_tables(tmp_path):
    sim = simulate(SimConfig(n_videos=8, seed=2))
    write_simulation(sim, tmp_path / "lake")
    vids = sim.videos["video_id"].tolist()
    log = _log([(f"r{i}", vids[i % 2], f"text {i % 3}", True) for i in range(12)])
    fb = pd.DataFrame({"request_id": [f"r{i}" for i in range(12)], "pv": 40, "clicks": 3})
    report = ingest_feedback(log, fb, str(tmp_path / "lake"), tmp_path / "next", "w2")
    assert report["new_tests"] == 2 and report["new_ab_tests_rows"] == 6
    merged = pd.read_parquet(tmp_path / "next" / "ab_tests.parquet")
    assert len(merged) == len(sim.ab_tests) + 6
    new = merged[merged["test_id"].str.startswith("srv-w2-")]
    assert new["true_ctr"].notna().all()  # simulated data: the truth travels with the new arms
    assert (tmp_path / "next" / "world.json").exists()
    # the ranker's reader takes the merged table as it is
    assert read_ab_tests(tmp_path / "next" / "ab_tests.parquet").arms["test_id"].nunique() == (
        merged["test_id"].nunique()
    )
    with pytest.raises(ConfigError, match="past data location"):
        ingest_feedback(log, fb, "", tmp_path / "x", "w3")
