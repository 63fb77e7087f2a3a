"""Labelling: the default zero-shot labeller recovers the simulator's styles, the frozen-LM
labeller scores categories exactly, unknown categories fail at start, labels round-trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pushgen.core.errors import ConfigError, DataContractError
from pushgen.data.categories import DEFAULT_CATEGORIES
from pushgen.data.contracts import read_table, write_table
from pushgen.data.label import (
    EmbeddingLabeller,
    LLMLabeller,
    label_metrics,
    label_pushes,
    label_report,
    label_with_rejects,
    make_labeller,
)


@pytest.fixture(scope="module")
def minilm_labeller() -> EmbeddingLabeller:
    return EmbeddingLabeller()  # the packaged all-MiniLM-L6-v2


def test_default_labeller_recovers_simulated_styles(sim, minilm_labeller):
    # 400 pushes keep this fast; `pushgen label` on a whole simulated history prints the same figure
    sample = sim.pushes.sample(400, random_state=0)
    labelled = label_pushes(sample, minilm_labeller)
    report = label_report(labelled, minilm_labeller.categories)
    assert report["accuracy"] >= 0.80, report["recall_by_true_category"]
    assert sum(r["count"] for r in report["distribution"].values()) == 400
    assert set(report["distribution"]) == set(DEFAULT_CATEGORIES)
    flat = label_metrics(report)
    assert flat["accuracy"] == report["accuracy"] and "share.Suspense" in flat


def test_label_round_trip(sim, minilm_labeller, tmp_path):
    sample = sim.pushes.head(40)
    labelled = label_pushes(sample, minilm_labeller)
    write_table(labelled, tmp_path / "labelled.parquet")
    back = read_table(tmp_path / "labelled.parquet", "pushes")
    pd.testing.assert_frame_equal(back, labelled.reset_index(drop=True), check_dtype=False)
    assert back["category"].isin(DEFAULT_CATEGORIES).all()
    # labelling is deterministic: labelling the labelled table again changes nothing
    again = label_pushes(back, minilm_labeller)
    assert (again["category"] == back["category"]).all()


def test_unknown_category_fails_before_any_model_loads():
    with pytest.raises(ConfigError, match="unknown category"):
        make_labeller("embedding", ["Suspense", "Clickbait"], "/no/such/model")
    with pytest.raises(ConfigError, match="labeller must be"):
        make_labeller("regex", None)


def test_custom_categories_with_descriptions(tiny_encoder_dir):
    labeller = EmbeddingLabeller(
        {"Recipe": "cooking instructions and ingredients", "Humor": "funny"}, tiny_encoder_dir
    )
    assert labeller.categories == ["Recipe", "Humor"]
    predictions = labeller.predict(["how to bake bread", "lol", "a quick pasta recipe"])
    assert set(predictions) <= {"Recipe", "Humor"} and len(predictions) == 3
    assert labeller.predict([]) == []


def test_nearest_head_is_available(tiny_encoder_dir):
    labeller = EmbeddingLabeller(["Humor", "Urgency"], tiny_encoder_dir, head="nearest")
    scores = labeller.scores(["Hurry, watch now"])
    assert scores.shape == (1, 2) and np.all(scores <= 1.0001)
    with pytest.raises(ConfigError, match="head"):
        EmbeddingLabeller(["Humor"], tiny_encoder_dir, head="svm")


def test_rows_without_text_are_set_aside(tiny_encoder_dir):
    pushes = pd.DataFrame(
        {"push_id": ["a", "b", "c"], "video_id": "v1", "text": ["Hurry, live now", "  ", None]}
    )
    labeller = EmbeddingLabeller(["Humor", "Urgency"], tiny_encoder_dir)
    labelled, rejected = label_with_rejects(pushes, labeller)
    assert list(labelled["push_id"]) == ["a"] and list(rejected["push_id"]) == ["b", "c"]
    assert (rejected["reject_reason"] == "empty text").all()
    with pytest.raises(DataContractError, match="text"):
        label_with_rejects(pushes.drop(columns="text"), labeller)
    with pytest.raises(DataContractError, match="no rows"):
        label_with_rejects(pushes.iloc[:0], labeller)


def test_llm_labeller_scores_match_one_by_one_computation(tiny_causal_lm_dir):
    import torch

    labeller = LLMLabeller(tiny_causal_lm_dir, ["Suspense", "Humor", "Social proof"])
    texts = ["You won't believe this", "Hilarious cat", "Millions watched this today"]
    batched = labeller.scores(texts)
    # the same log-probabilities, one unpadded sequence at a time
    for i, text in enumerate(texts):
        prompt = labeller.tokenizer(labeller.prompt(text))["input_ids"]
        for k, answer in enumerate(labeller._answers):
            ids = torch.tensor([prompt + answer])
            with torch.inference_mode():
                logp = torch.log_softmax(labeller.model(input_ids=ids).logits[0].float(), -1)
            expected = np.mean([logp[len(prompt) - 1 + j, t].item() for j, t in enumerate(answer)])
            assert batched[i, k] == pytest.approx(expected, abs=1e-4)
    predictions = labeller.predict(texts)
    assert predictions == [labeller.categories[k] for k in batched.argmax(axis=1)]


def test_cli_label(sim_dir, tiny_encoder_dir, tmp_path, capsys):
    from pushgen.cli.main import main

    pushes = read_table(sim_dir / "pushes.parquet").head(30)
    pushes.loc[pushes.index[0], "text"] = ""
    write_table(pushes, tmp_path / "pushes.parquet")
    out = tmp_path / "labelled.parquet"
    argv = [
        "label",
        "--pushes",
        str(tmp_path / "pushes.parquet"),
        "--out",
        str(out),
        "--model",
        str(tiny_encoder_dir),
        "--categories",
        "Humor",
        "Urgency",
    ]
    assert main(argv) == 0
    assert "accuracy vs true_category" in capsys.readouterr().out
    labelled = pd.read_parquet(out)
    assert len(labelled) == 29 and set(labelled["category"]) <= {"Humor", "Urgency"}
    assert len(pd.read_parquet(tmp_path / "labelled.rejected.parquet")) == 1
    assert json.loads((tmp_path / "labelled.report.json").read_text())["rows"] == 29
    assert main([*argv[:-2], "Humour"]) == 2
    assert "unknown category ['Humour']" in capsys.readouterr().err
