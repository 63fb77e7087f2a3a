"""Training: a tiny cross-encoder learns a planted preference; saved models load and rank."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

from pushgen.core.errors import ConfigError, DataContractError
from pushgen.ranker.config import RankerTrainConfig
from pushgen.ranker.pairs import build_pairs, split_by_story
from pushgen.ranker.pointwise import PointwiseScorer, train_pointwise
from pushgen.ranker.select import PairwiseRanker
from pushgen.ranker.train import train_ranker

SUBJECTS = ["the cat", "a chef", "this dog", "the team", "my neighbour", "a pilot", "the kids"]
ACTIONS = [
    "cooks pasta",
    "wins the game",
    "finds a secret",
    "sings live",
    "fixes the roof",
    "builds a boat",
]


def planted_ab_tests(n_tests: int = 160, seed: int = 0) -> pd.DataFrame:
    """Two arms per test; the arm phrased as a question has the higher CTR (5% vs 3%)."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_tests):
        s, a = rng.choice(SUBJECTS), rng.choice(ACTIONS)
        arms = [(f"did {s} really {a}?", 0.05), (f"{s} {a} today", 0.03)]
        for i, (text, ctr) in enumerate(arms[:: 1 if t % 2 else -1]):  # alternate arm order
            pv = 5000
            rows.append(
                {
                    "test_id": f"t{t}",
                    "video_id": f"v{t}",
                    "push_id": f"t{t}-{i}",
                    "text": text,
                    "pv": pv,
                    "clicks": int(rng.binomial(pv, ctr)),
                }
            )
    return pd.DataFrame(rows)


# Tiny random BERT, high learning rate: the planted signal is one token ('?'), so it is learnt fast.
TINY = dict(epochs=6, batch_size=16, learning_rate=3e-3, max_length=24, logging_steps=1000)


@pytest.fixture(scope="module")
def planted_run(tiny_encoder_dir, tmp_path_factory):
    ab = planted_ab_tests()
    train_ab, val_ab = split_by_story(ab)
    train_pairs, val_pairs = build_pairs(train_ab), build_pairs(val_ab)
    out = tmp_path_factory.mktemp("planted")
    cfg = RankerTrainConfig(backbone=str(tiny_encoder_dir), device="cpu", head="cls", **TINY)
    metrics = train_ranker(train_pairs, val_pairs, out, cfg)
    return out, metrics, train_pairs


def test_tiny_model_learns_the_planted_preference(planted_run):
    _, metrics, _ = planted_run
    val = metrics["val"]
    assert val["pairs"] >= 20
    assert val["accuracy"] >= 0.95  # question arms win: labels follow CTR, and CTR follows '?'
    assert val["auc"] >= 0.95
    assert metrics["train_loss"] < 0.5  # down from log(2) = 0.69 at the start
    assert metrics["train_examples"] == 2 * metrics["train_pairs"]  # both orders


def test_training_changes_weights_and_saves_safetensors(planted_run, tiny_encoder_dir):
    out, _, _ = planted_run
    assert (out / "model.safetensors").exists() and (out / "ranker_config.json").exists()
    assert json.loads((out / "ranker_config.json").read_text())["kind"] == "pairwise"
    before = load_file(tiny_encoder_dir / "model.safetensors")
    after = load_file(out / "model.safetensors")
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not np.allclose(before[name].numpy(), after[name].numpy())


def test_trained_model_is_nearly_antisymmetric_and_ranks_the_question_first(planted_run):
    out, metrics, _ = planted_run
    assert metrics["val"]["antisymmetry_error"] < 0.1  # trained on both orders
    ranker = PairwiseRanker.from_pretrained(out, device="cpu")
    texts = [
        "the team sings live today",
        "did the team really sing live?",
        "a pilot builds a boat today",
    ]
    for method in ("copeland", "bradley_terry", "knockout"):
        assert ranker.rank(texts, method=method).chosen == 1


def test_weights_and_posterior_labels_train(tiny_encoder_dir, tmp_path):
    pairs = build_pairs(planted_ab_tests(40))
    cfg = RankerTrainConfig(
        backbone=str(tiny_encoder_dir), device="cpu", label="posterior", **{**TINY, "epochs": 1}
    )
    metrics = train_ranker(pairs, None, tmp_path, cfg)
    assert np.isfinite(metrics["train_loss"]) and "val" not in metrics


def test_pointwise_ablation_trains_on_arms(tiny_encoder_dir, tmp_path):
    ab = planted_ab_tests(60)
    metrics = train_pointwise(
        ab,
        ab.head(20),
        tmp_path,
        RankerTrainConfig(backbone=str(tiny_encoder_dir), device="cpu", **TINY),
    )
    scorer = PointwiseScorer.from_pretrained(tmp_path, device="cpu")
    scores = scorer.score(["did the cat really sing live?", "the cat sings live today"])
    assert scores.shape == (2,) and scores[0] > scores[1]
    assert metrics["val_pearson"] > 0.5
    p = scorer.pair_probs(["did a chef really cook pasta?"], ["a chef cooks pasta today"])
    assert p[0] > 0.5


def test_bad_training_input_is_a_clear_error(tiny_encoder_dir, tmp_path):
    cfg = RankerTrainConfig(backbone=str(tiny_encoder_dir))
    with pytest.raises(DataContractError, match="missing column"):
        train_ranker(pd.DataFrame({"text_a": ["x"]}), None, tmp_path, cfg)
    empty = build_pairs(planted_ab_tests(4)).iloc[:0]
    with pytest.raises(DataContractError, match="no pairs"):
        train_ranker(empty, None, tmp_path, cfg)
    with pytest.raises(ConfigError, match="label"):
        train_ranker(build_pairs(planted_ab_tests(4)), None, tmp_path, RankerTrainConfig(label="x"))
    with pytest.raises(ConfigError, match="bf16"):
        train_ranker(build_pairs(planted_ab_tests(4)), None, tmp_path, RankerTrainConfig(bf16="x"))


@pytest.fixture(scope="module")
def segment_diff_run(tiny_encoder_dir, tmp_path_factory):
    ab = planted_ab_tests()
    train_ab, val_ab = split_by_story(ab)
    out = tmp_path_factory.mktemp("segment_diff")
    # pooled over both of the tiny encoder's layers, the head at its own rate
    cfg = RankerTrainConfig(
        backbone=str(tiny_encoder_dir),
        device="cpu",
        head="segment_diff",
        pool_layers=2,
        head_learning_rate=1e-2,
        **TINY,
    )
    metrics = train_ranker(build_pairs(train_ab), build_pairs(val_ab), out, cfg)
    return out, metrics


def test_segment_diff_head_learns_the_planted_preference_and_reloads(segment_diff_run):
    out, metrics = segment_diff_run
    assert metrics["val"]["accuracy"] >= 0.95 and metrics["val"]["auc"] >= 0.95
    assert metrics["val"]["antisymmetry_error"] < 0.1
    assert (out / "pair_head.safetensors").exists() and (out / "model.safetensors").exists()
    settings = json.loads((out / "ranker_config.json").read_text())
    assert settings["head"] == "segment_diff" and settings["pool_layers"] == 2
    ranker = PairwiseRanker.from_pretrained(out, device="cpu")
    assert ranker.model.pool_layers == 2
    texts = ["a chef cooks pasta today", "did a chef really cook pasta?"]
    assert ranker.rank(texts).chosen == 1
    # the head is read from its file, not initialised afresh on each load
    again = PairwiseRanker.from_pretrained(out, device="cpu").score_pairs(texts, texts[::-1])
    assert np.allclose(ranker.score_pairs(texts, texts[::-1]), again)


def test_segment_masks_split_a_b_and_a_caption_segment(tiny_encoder_dir):
    from transformers import AutoTokenizer

    from pushgen.ranker.segment_diff import segment_masks

    tok = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    enc = tok(
        ["a b c", "d"],
        [f"x y {tok.sep_token} some caption", "z"],
        padding=True,
        return_tensors="pt",
    )
    mask_a, mask_b = segment_masks(
        enc["input_ids"], enc["attention_mask"], tok.sep_token_id, tok.cls_token_id
    )
    n_a = [len(tok.tokenize(t)) for t in ("a b c", "d")]
    n_b = [len(tok.tokenize(t)) for t in ("x y", "z")]
    # a's and b's tokens are pooled; the caption (a third segment) and special tokens are not
    assert mask_a.sum(1).tolist() == n_a and mask_b.sum(1).tolist() == n_b
    assert not (mask_a & mask_b).any()


def test_pooling_more_layers_changes_the_score_and_never_exceeds_the_encoder(tiny_encoder_dir):
    import torch

    from pushgen.ranker.model import build_pair_model

    torch.manual_seed(0)
    last, tok = build_pair_model(str(tiny_encoder_dir), "segment_diff", pool_layers=1)
    both, _ = build_pair_model(str(tiny_encoder_dir), "segment_diff", pool_layers=5)
    assert both.pool_layers == 2  # the tiny encoder has 2 layers: "up to N" pools them all
    both.score.load_state_dict(last.score.state_dict())
    enc = tok(["did the cat cook?"], ["the cat cooks"], return_tensors="pt")
    with torch.no_grad():
        assert not torch.allclose(last.eval()(**enc).logits, both.eval()(**enc).logits)
    with pytest.raises(ConfigError, match="pool_layers"):
        build_pair_model(str(tiny_encoder_dir), "segment_diff", pool_layers=0)


def test_head_learning_rate_applies_to_the_head_only(tiny_encoder_dir):
    from pushgen.ranker.model import build_pair_model
    from pushgen.ranker.trainer import optimizer_with_head_rate

    for head, head_names in (
        ("segment_diff", {"score.weight"}),
        ("cls", {"classifier.weight", "classifier.bias"}),
    ):
        model, _ = build_pair_model(str(tiny_encoder_dir), head)
        cfg = RankerTrainConfig(learning_rate=1e-5, head_learning_rate=1e-3, weight_decay=0.1)
        opt = optimizer_with_head_rate(model, cfg)
        rate = {id(p): (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
        params = dict(model.named_parameters())
        assert len(rate) == len(params)
        for name, p in params.items():
            lr, decay = rate[id(p)]
            assert lr == (1e-3 if name in head_names else 1e-5), name
            assert decay == (0.1 if p.ndim >= 2 else 0.0), name
    with pytest.raises(ConfigError, match="head_learning_rate"):
        RankerTrainConfig(head_learning_rate=0.0)


def test_unknown_head_is_a_config_error(tiny_encoder_dir, tmp_path):
    with pytest.raises(ConfigError, match="head"):
        train_ranker(
            build_pairs(planted_ab_tests(4)), None, tmp_path, RankerTrainConfig(head="mlp")
        )


def test_calibration_fits_a_temperature_on_held_out_pairs_and_keeps_the_choices(planted_run):
    from pushgen.ranker.calibrate import calibration_tests, read_calibration

    out, metrics, _ = planted_run
    record = read_calibration(out)
    assert record == metrics["calibration"] and record["method"] == "temperature"
    assert record["temperature"] > 0 and record["calibration_pairs"] >= 8
    assert json.loads((out / "ranker_config.json").read_text())["temperature"] == pytest.approx(
        record["temperature"]
    )
    # monotone: every pair keeps its side of 0.5, so accuracy and the choices are unchanged
    assert record["accuracy_after"] == pytest.approx(record["accuracy_before"])
    ranker = PairwiseRanker.from_pretrained(out, device="cpu")
    texts = ["the team sings live today", "did the team really sing live?", "a chef cooks pasta"]
    calibrated = ranker.win_matrix(texts)
    ranker.settings.temperature = 1.0
    raw = ranker.win_matrix(texts)
    assert ((calibrated > 0.5) == (raw > 0.5)).all()
    # the ids split into two non-empty halves, stably
    ids = [f"t{i}" for i in range(40)]
    assert calibration_tests(ids) == calibration_tests(list(reversed(ids)))
    assert 0 < len(calibration_tests(ids)) < 40


def test_fit_temperature_undoes_overconfidence():
    from pushgen.ranker.calibrate import fit_temperature, scaled
    from pushgen.ranker.metrics import expected_calibration_error, symmetrised

    rng = np.random.default_rng(0)
    true_p = rng.uniform(0.2, 0.8, 4000)
    y = (rng.random(4000) < true_p).astype(float)
    over = scaled(true_p, 1 / 3.0)  # logits three times too large
    t = fit_temperature(over, 1 - over, y)
    assert t == pytest.approx(3.0, rel=0.15)
    before = expected_calibration_error(symmetrised(over, 1 - over), y)
    after = expected_calibration_error(symmetrised(scaled(over, t), scaled(1 - over, t)), y)
    assert after < before / 3
    assert fit_temperature(over[:3], 1 - over[:3], y[:3]) == 1.0  # too few pairs: left at 1
