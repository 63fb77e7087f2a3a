"""Selection: Copeland, Bradley-Terry and knockout on hand-made win matrices; the ranker's batch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from pushgen.core.errors import ConfigError, PushgenError
from pushgen.ranker.aggregate import (
    aggregate,
    bradley_terry_scores,
    copeland_scores,
    knockout,
    knockout_from_matrix,
)
from pushgen.ranker.inputs import RankerSettings
from pushgen.ranker.select import PairwiseRanker


def bt_matrix(strengths: list[float]) -> np.ndarray:
    s = np.asarray(strengths, float)
    return expit(s[:, None] - s[None, :])


def test_copeland_counts_wins_and_breaks_ties_by_mean_probability():
    # 2 beats everyone, 0 beats 1 and 3, 1 beats 3
    w = np.array(
        [
            [0.5, 0.6, 0.2, 0.7],
            [0.4, 0.5, 0.1, 0.9],
            [0.8, 0.9, 0.5, 0.6],
            [0.3, 0.1, 0.4, 0.5],
        ]
    )
    scores = copeland_scores(w)
    assert np.floor(scores).tolist() == [2, 1, 3, 0]
    assert aggregate(w, "copeland").chosen == 2
    # rock-paper-scissors: one win each; the tie-break is the mean win probability
    cycle = np.array([[0.5, 0.9, 0.4], [0.1, 0.5, 0.6], [0.6, 0.4, 0.5]])
    scores = copeland_scores(cycle)
    assert np.floor(scores).tolist() == [1, 1, 1]
    assert int(np.argmax(scores)) == 0  # (0.9 + 0.4) / 2 is the best mean


def test_bradley_terry_recovers_the_strengths_that_made_the_matrix():
    true = np.array([1.5, -0.5, 0.0, 0.7, -1.7])
    fitted = bradley_terry_scores(bt_matrix(true), l2=1e-8)
    np.testing.assert_allclose(fitted, true - true.mean(), atol=1e-3)
    assert aggregate(bt_matrix(true), "bradley_terry").chosen == 0


def test_bradley_terry_stays_finite_when_one_candidate_always_wins():
    w = np.array([[0.5, 1.0, 1.0], [0.0, 0.5, 0.5], [0.0, 0.5, 0.5]])
    s = bradley_terry_scores(w)
    assert np.isfinite(s).all() and np.argmax(s) == 0 and s[1] == pytest.approx(s[2], abs=1e-4)


def test_knockout_uses_k_minus_one_comparisons_in_log_rounds():
    rounds = []

    def compare(pairs):
        rounds.append(pairs)
        return np.array([bt_matrix(list(range(7)))[i, j] for i, j in pairs])

    winner, compared = knockout(7, compare)
    assert winner == 6  # the strongest of 7 (a Condorcet winner) always survives
    assert len(compared) == 6
    assert len(rounds) == 3  # ceil(log2 7) batched rounds
    assert knockout(1, compare)[0] == 0


def test_knockout_plays_its_bracket_and_leaves_other_pairs_unscored():
    # 0 beats 1, 1 beats 2, 2 beats 0, and 2 beats 3 while 0 and 1 lose to 3 less clearly
    w = np.array(
        [
            [0.5, 0.9, 0.3, 0.45],
            [0.1, 0.5, 0.8, 0.45],
            [0.7, 0.2, 0.5, 0.9],
            [0.55, 0.55, 0.1, 0.5],
        ]
    )
    winner, compared = knockout_from_matrix(w)
    assert compared == [(0, 1), (2, 3), (0, 2)] and winner == 2
    assert aggregate(w, "copeland").chosen == 2
    ko = aggregate(w, "knockout")
    assert ko.chosen == 2 and np.isnan(np.array(ko.win_matrix)[0, 3])


def test_aggregate_rejects_bad_input():
    with pytest.raises(ConfigError, match="unknown ranking method"):
        aggregate(np.full((2, 2), 0.5), "borda")
    with pytest.raises(ConfigError, match="square"):
        aggregate(np.zeros((2, 3)))


@pytest.fixture(scope="module")
def tiny_ranker_dir(tiny_encoder_dir, tmp_path_factory):
    """The tiny random encoder saved as a pairwise ranker (random weights: shape checks only)."""
    import shutil

    out = tmp_path_factory.mktemp("tiny_ranker")
    shutil.copytree(tiny_encoder_dir, out, dirs_exist_ok=True)
    RankerSettings("pairwise", 32, False, "tiny").save(out)
    return out


TEXTS = [
    "Can you guess what happens?",
    "Watch this now",
    "3 tips for dumplings",
    "Hilarious cat!",
    "Millions are watching",
    "Hey, this is for you",
    "Breaking: flood rescue",
    "Why do cats purr?",
]


def test_win_matrix_scores_all_pairs_in_one_forward_pass(tiny_ranker_dir):
    ranker = PairwiseRanker.from_pretrained(tiny_ranker_dir, device="cpu")
    calls = []
    hook = ranker.model.register_forward_hook(lambda m, i, o: calls.append(o.logits.shape[0]))
    try:
        w = ranker.win_matrix(TEXTS)
    finally:
        hook.remove()
    assert calls == [8 * 7]  # K(K-1) ordered pairs, one batch
    assert w.shape == (8, 8)
    np.testing.assert_allclose(np.diag(w), 0.5)
    np.testing.assert_allclose(w + w.T, 1.0, atol=1e-6)
    raw = ranker.raw_win_matrix(TEXTS)
    np.testing.assert_allclose(w, (raw + 1 - raw.T) / 2)


def test_rank_returns_scores_matrix_and_choice(tiny_ranker_dir):
    ranker = PairwiseRanker.from_pretrained(tiny_ranker_dir, device="cpu")
    for method in ("copeland", "bradley_terry"):
        res = ranker.rank(TEXTS, method=method)
        assert res.method == method and len(res.scores) == 8
        assert res.chosen == int(np.argmax(res.scores))
    ko = ranker.rank(TEXTS, method="knockout")
    assert np.isnan(np.array(ko.win_matrix)).sum() == 8 * 7 - 2 * 7  # only K-1 matches filled
    assert ko.to_dict()["win_matrix"][0][0] == 0.5
    single = ranker.rank(["only one"])
    assert single.chosen == 0


def test_rank_rejects_bad_candidates(tiny_ranker_dir, tmp_path):
    ranker = PairwiseRanker.from_pretrained(tiny_ranker_dir, device="cpu")
    with pytest.raises(ConfigError, match="no candidates"):
        ranker.rank([])
    with pytest.raises(ConfigError, match="empty"):
        ranker.rank(["fine", "  "])
    with pytest.raises(ConfigError, match="unknown ranking method"):
        ranker.rank(TEXTS, method="borda")
    with pytest.raises(PushgenError, match="not a pushgen ranker"):
        PairwiseRanker.from_pretrained(tmp_path)


def test_caption_is_part_of_the_input_only_when_the_model_was_trained_with_it(tiny_ranker_dir):
    ranker = PairwiseRanker.from_pretrained(tiny_ranker_dir, device="cpu")
    plain = ranker.raw_win_matrix(TEXTS[:3])
    np.testing.assert_allclose(ranker.raw_win_matrix(TEXTS[:3], caption="A chef in Rome"), plain)
    ranker.settings.use_caption = True
    with_caption = ranker.raw_win_matrix(TEXTS[:3], caption="A chef in Rome folds dumplings")
    assert not np.allclose(with_caption, plain)


def test_numeric_modes_load_and_stay_close_to_fp32(tiny_ranker_dir):
    ref = PairwiseRanker.from_pretrained(tiny_ranker_dir, device="cpu", dtype="float32")
    assert ref.dtype == "float32"
    w_ref = ref.win_matrix(TEXTS)
    for dtype in ("bfloat16", "int8"):
        ranker = PairwiseRanker.from_pretrained(tiny_ranker_dir, device="cpu", dtype=dtype)
        assert ranker.dtype == dtype
        w = ranker.win_matrix(TEXTS)
        np.testing.assert_allclose(w + w.T, 1.0, atol=1e-6)  # probabilities computed in fp32
        assert np.abs(w - w_ref).max() < 0.05  # a random tiny model: only closeness, not choice
    assert PairwiseRanker.from_pretrained(tiny_ranker_dir, device="cpu").dtype == "float32"
    auto = PairwiseRanker.from_pretrained(tiny_ranker_dir, device="cpu", dtype="auto")
    assert auto.dtype in ("float32", "bfloat16")
    with pytest.raises(ConfigError, match="dtype must be one of"):
        PairwiseRanker.from_pretrained(tiny_ranker_dir, device="cpu", dtype="fp8")
