"""Preference pairs from A/B tests: labels, evidence, ties, rejected arms, story split, Upworthy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pushgen.core.errors import ConfigError, DataContractError
from pushgen.ranker.pairs import (
    PairConfig,
    StorySplitConfig,
    assign_stories,
    beta_posterior_prob_a_beats_b,
    both_orders,
    build_pairs,
    build_pairs_report,
    split_by_story,
    two_proportion_p_value,
)
from pushgen.ranker.upworthy import (
    UPWORTHY_PAIR_MATCH,
    UPWORTHY_STORY_LINKS,
    upworthy_to_ab_tests,
)

# The real-data check reads the shared copy next to the repository (never committed here).


def arms(rows: list[tuple]) -> pd.DataFrame:
    """ab_tests rows from (test_id, text, pv, clicks)."""
    return pd.DataFrame(
        [
            {
                "test_id": t,
                "video_id": f"v-{t}",
                "push_id": f"{t}-{i}",
                "text": x,
                "pv": pv,
                "clicks": c,
            }
            for i, (t, x, pv, c) in enumerate(rows)
        ]
    )


@pytest.fixture
def two_tests() -> pd.DataFrame:
    return arms(
        [
            ("t1", "Can you guess?", 10_000, 500),
            ("t1", "Watch this", 10_000, 300),
            ("t1", "Big news today", 10_000, 310),
            ("t2", "A cat on a boat", 5_000, 50),
            ("t2", "Why is the cat on a boat?", 5_000, 120),
        ]
    )


def test_pairs_label_the_higher_ctr_and_never_cross_tests(two_tests):
    pairs = build_pairs(two_tests)
    assert len(pairs) == 3 + 1  # C(3,2) + C(2,2): every two arms of one test, nothing across
    assert set(pairs["test_id"]) == {"t1", "t2"}
    for _, p in pairs.iterrows():
        assert p["push_id_a"].split("-")[0] == p["push_id_b"].split("-")[0] == p["test_id"]
        assert p["label"] == float(p["ctr_a"] > p["ctr_b"])
    q = pairs[pairs["text_b"] == "Why is the cat on a boat?"].iloc[0]
    assert q["label"] == 0.0 and q["p_value"] < 1e-6 and q["p_a_beats_b"] < 1e-6


def test_p_value_matches_the_chi_square_test_and_weights_follow_evidence(two_tests):
    pairs = build_pairs(two_tests, PairConfig(weight="confidence"))
    for _, p in pairs.iterrows():
        table = [
            [p["clicks_a"], p["pv_a"] - p["clicks_a"]],
            [p["clicks_b"], p["pv_b"] - p["clicks_b"]],
        ]
        expected = stats.chi2_contingency(table, correction=False).pvalue
        assert p["p_value"] == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(pairs["weight"], 1 - pairs["p_value"])
    near = pairs[(pairs["text_a"] == "Watch this") & (pairs["text_b"] == "Big news today")].iloc[0]
    far = pairs[(pairs["text_a"] == "Can you guess?") & (pairs["text_b"] == "Watch this")].iloc[0]
    assert near["weight"] < 0.5 < far["weight"]  # 300 vs 310 clicks is noise, 500 vs 300 is not
    post = build_pairs(two_tests, PairConfig(weight="posterior"))
    np.testing.assert_allclose(post["weight"], np.abs(2 * post["p_a_beats_b"] - 1))


def test_beta_posterior_agrees_with_monte_carlo():
    rng = np.random.default_rng(0)
    ca, na, cb, nb = (
        np.array([30, 5, 200]),
        np.array([1000, 400, 9000]),
        np.array([22, 9, 210]),
        np.array([1000, 380, 9100]),
    )
    exact = beta_posterior_prob_a_beats_b(ca, na, cb, nb)
    draws = 200_000
    for i in range(3):
        xa = rng.beta(ca[i] + 1, na[i] - ca[i] + 1, draws)
        xb = rng.beta(cb[i] + 1, nb[i] - cb[i] + 1, draws)
        assert exact[i] == pytest.approx(np.mean(xa > xb), abs=0.005)


def test_two_proportion_p_value_is_one_without_clicks():
    assert two_proportion_p_value([0], [100], [0], [100])[0] == pytest.approx(1.0)


def test_ties_near_ties_and_significance_filter_are_set_aside_with_reasons(two_tests):
    res = build_pairs_report(two_tests, PairConfig(tie_rel_diff=0.05))
    assert len(res.pairs) == 3
    assert res.set_aside["reject_reason"].tolist() == ["tie"]  # 300 vs 310 clicks: within 5%
    half = build_pairs(two_tests, PairConfig(tie_rel_diff=0.05, ties="half"))
    assert (half["label"] == 0.5).sum() == 1
    strict = build_pairs_report(two_tests, PairConfig(max_p_value=0.05))
    assert (strict.pairs["p_value"] <= 0.05).all()
    assert len(strict.pairs) + len(strict.set_aside) == 4
    assert strict.set_aside["reject_reason"].str.startswith("p_value >").all()


def test_bad_arms_are_rejected_and_same_text_pairs_set_aside():
    ab = arms(
        [
            ("t1", "Same words", 1000, 10),
            ("t1", "Same words", 1000, 30),
            ("t1", "Different words", 1000, 20),
            ("t1", "Broken arm", 100, 500),  # clicks > pv
            ("t1", "", 100, 5),  # empty text
        ]
    )
    res = build_pairs_report(ab)
    assert sorted(res.rejected_arms["reject_reason"]) == ["clicks > pv", "empty text"]
    assert res.stats["arms_rejected"] == 2
    assert res.set_aside["reject_reason"].tolist() == ["same text"]
    assert len(res.pairs) == 2


def test_match_on_pairs_only_arms_with_the_same_image():
    ab = arms([("t1", "A", 1000, 10), ("t1", "B", 1000, 20), ("t1", "C", 1000, 30)])
    ab["eyecatcher_id"] = ["img1", "img1", "img2"]
    pairs = build_pairs(ab, PairConfig(match_on=("eyecatcher_id",)))
    assert pairs[["text_a", "text_b"]].values.tolist() == [["A", "B"]]


def test_config_errors_are_clear(two_tests):
    with pytest.raises(ConfigError, match="max_p_value"):
        build_pairs(two_tests, PairConfig(max_p_value=0))
    with pytest.raises(ConfigError, match="weight"):
        build_pairs(two_tests, PairConfig(weight="bogus"))
    with pytest.raises(DataContractError, match="missing column"):
        build_pairs(two_tests.drop(columns=["clicks"]))
    with pytest.raises(DataContractError, match="does not have"):
        build_pairs(two_tests, PairConfig(match_on=("eyecatcher_id",)))


def test_both_orders_is_antisymmetric(two_tests):
    pairs = build_pairs(two_tests)
    data = both_orders(pairs)
    assert len(data) == 2 * len(pairs)
    fwd, rev = data[data["order"] == 0].reset_index(), data[data["order"] == 1].reset_index()
    assert (fwd["text_a"] == rev["text_b"]).all() and (fwd["text_b"] == rev["text_a"]).all()
    np.testing.assert_allclose(fwd["label"] + rev["label"], 1.0)
    np.testing.assert_allclose(fwd["p_a_beats_b"] + rev["p_a_beats_b"], 1.0)
    np.testing.assert_allclose(fwd["weight"], rev["weight"])


def test_stories_link_tests_that_share_a_text_transitively():
    ab = arms(
        [
            ("t1", "Alpha", 100, 1),
            ("t1", "Beta", 100, 2),
            ("t2", "Beta", 100, 1),  # shares Beta with t1
            ("t2", "Gamma", 100, 2),
            ("t3", "Gamma", 100, 1),  # shares Gamma with t2, so with t1 too
            ("t4", "Delta", 100, 1),
            ("t4", "Epsilon", 100, 1),
        ]
    )
    story = assign_stories(ab, ("text",))
    assert story[ab.test_id == "t1"].iloc[0] == story[ab.test_id == "t3"].iloc[0]
    assert story[ab.test_id == "t1"].iloc[0] != story[ab.test_id == "t4"].iloc[0]
    assert story.nunique() == 2


def test_split_by_story_never_puts_a_story_on_both_sides(sim):
    ab = sim.ab_tests
    train, val = split_by_story(
        ab, StorySplitConfig(val_fraction=0.3, seed=1, link_columns=("text", "video_id"))
    )
    assert len(train) + len(val) == len(ab)
    assert not set(train["test_id"]) & set(val["test_id"])
    assert not set(train["text"]) & set(val["text"])
    assert not set(train["video_id"]) & set(val["video_id"])
    assert 0.1 < val["test_id"].nunique() / ab["test_id"].nunique() < 0.5


def upworthy_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clickability_test_id": ["x", "x", "x", "y", "y"],
            "headline": ["H1", "H2", "H1", "H3", "H4"],
            "lede": ["L", "L", "L", "M", "M"],
            "excerpt": [None] * 5,
            "impressions": [1000, 1000, 1000, 2000, 2000],
            "clicks": [10, 20, 15, 40, 10],
            "eyecatcher_id": ["i1", "i1", "i2", "j", "j"],
            "test_week": [201330, 201330, 201330, 201410, 201410],
        }
    )


def test_upworthy_adapter_maps_columns_and_flags_nonrandom_weeks():
    ab = upworthy_to_ab_tests(upworthy_frame())
    assert {"test_id", "video_id", "push_id", "text", "pv", "clicks"} <= set(ab.columns)
    assert ab["push_id"].is_unique
    assert ab["nonrandom_assignment"].tolist() == [True, True, True, False, False]
    pairs = build_pairs(
        ab, PairConfig(match_on=UPWORTHY_PAIR_MATCH, carry_test=("nonrandom_assignment",))
    )
    # x: H1/H2 share image i1 (the i2 arm has no partner); y: H3/H4
    assert sorted(map(tuple, pairs[["text_a", "text_b"]].values.tolist())) == [
        ("H1", "H2"),
        ("H3", "H4"),
    ]
    with pytest.raises(DataContractError, match="upworthy"):
        upworthy_to_ab_tests(upworthy_frame().drop(columns=["headline"]))


def test_real_upworthy_pairs_match_the_archive_description():
    """Real-data check on the Upworthy file the user names in PUSHGEN_UPWORTHY (skipped without)."""
    path = (
        Path(os.environ.get("PUSHGEN_UPWORTHY", "")) if os.environ.get("PUSHGEN_UPWORTHY") else None
    )
    if path is None or not path.is_file():
        pytest.skip("set PUSHGEN_UPWORTHY to an Upworthy archive parquet (real-data check only)")
    ab = upworthy_to_ab_tests(pd.read_parquet(path))
    res = build_pairs_report(ab, PairConfig(match_on=UPWORTHY_PAIR_MATCH))
    sig = (res.pairs["p_value"] < 0.05).mean()
    assert 0.2 < sig < 0.4  # the README: about 29% of headline pairs differ at p < 0.05
    train, val = split_by_story(ab, StorySplitConfig(link_columns=UPWORTHY_STORY_LINKS))
    assert not set(train["text"]) & set(val["text"])
    assert not set(train["lede"].dropna()) & set(val["lede"].dropna())


def test_captions_join_by_video_from_captions_or_videos_tables(two_tests):
    from pushgen.ranker.recipe import attach_captions

    captions = pd.DataFrame({"video_id": ["v-t1"], "caption": ["A chef in Rome"]})
    with_caps = attach_captions(two_tests, captions)
    assert with_caps.loc[with_caps.test_id == "t1", "caption"].eq("A chef in Rome").all()
    assert with_caps.loc[with_caps.test_id == "t2", "caption"].eq("").all()  # kept, not dropped
    videos = pd.DataFrame({"video_id": ["v-t2"], "title": ["Cat"], "description": ["On a boat."]})
    assert attach_captions(two_tests, videos)["caption"].iloc[-1] == "Cat. On a boat."
    with pytest.raises(DataContractError, match="caption"):
        attach_captions(two_tests, pd.DataFrame({"video_id": ["v-t1"]}))
    pairs = build_pairs(with_caps, PairConfig(carry_test=("caption",)))
    assert pairs.loc[pairs.test_id == "t1", "caption"].eq("A chef in Rome").all()
