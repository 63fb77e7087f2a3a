"""LoRA SFT of the generator on a tiny Llama: adapters learn, base stays frozen, weights count."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pushgen.core.errors import DataContractError
from pushgen.generator.config import GeneratorTrainConfig
from pushgen.generator.generate import CandidateGenerator, GenerationConfig
from pushgen.generator.sft import prepare_sft_data, train_generator
from pushgen.generator.trainer import collate_sft, fit, weighted_push_loss

PUSHES = {
    "Humor": "Hilarious! The cat steals the show",
    "Practical": "3 tips to cook pasta faster today",
    "Suspense": "You won't believe what happens next",
}


def _table(n_videos: int = 6) -> pd.DataFrame:
    rows = [
        {
            "video_id": f"v{v}",
            "caption": f"video {v}: a cat and a pot of pasta",
            "category": cat,
            "text": text,
            "confidence": 0.4 + 0.1 * v,
        }
        for v in range(n_videos)
        for cat, text in PUSHES.items()
    ]
    return pd.DataFrame(rows)


def _cfg(base, **kw) -> GeneratorTrainConfig:
    defaults = dict(
        base_model=str(base),
        max_steps=30,
        batch_size=6,
        learning_rate=2e-2,
        eval_steps=10,
        lora_dropout=0.0,
        progress=False,
        device="cpu",
    )
    return GeneratorTrainConfig(**{**defaults, **kw})


def test_lora_trains_only_adapters_and_lowers_loss(tiny_causal_lm_dir, tmp_path) -> None:
    import torch

    from pushgen.core.models import load_causal_lm

    model, tokenizer = load_causal_lm(tiny_causal_lm_dir, device="cpu")
    # Wider (tied) embeddings than the 0.02 init: with a frozen output layer of that scale the
    # final RMSNorm caps every logit near zero, so no adapter could fit anything.
    torch.manual_seed(0)
    with torch.no_grad():
        model.get_input_embeddings().weight.normal_(0, 0.5)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    cfg = _cfg(tiny_causal_lm_dir, val_fraction=0.0)
    data = prepare_sft_data(_table(), tokenizer, cfg)
    result = fit(model, tokenizer, data, cfg, tmp_path)

    lora = {n: p for n, p in result.model.named_parameters() if "lora_" in n}
    assert lora and all(p.requires_grad for p in lora.values())
    assert any(n.endswith("lora_B.default.weight") and p.abs().sum() > 0 for n, p in lora.items())
    frozen = [p for n, p in result.model.named_parameters() if "lora_" not in n]
    assert not any(p.requires_grad for p in frozen)
    # the wrapped base modules still hold their original tensors, unchanged
    base_after = result.model.get_base_model().state_dict()
    for name, tensor in before.items():
        key = name if name in base_after else name.replace(".weight", ".base_layer.weight")
        assert torch.equal(base_after[key], tensor), name
    losses = [e["loss"] for e in result.train_loss]
    assert len(losses) == 30
    assert losses[0] > 10 and sum(losses[-3:]) / 3 < 1.5  # memorises the tiny set


def test_zero_weight_sample_does_not_move_the_loss(tiny_causal_lm_dir) -> None:
    import torch

    from pushgen.core.models import load_causal_lm

    model, tokenizer = load_causal_lm(tiny_causal_lm_dir, device="cpu")
    cfg = _cfg(tiny_causal_lm_dir, val_fraction=0.0)
    table = _table(2).assign(confidence=[1.0, 0.5, 2.0, 0.0, 1.0, 1.0])
    examples = prepare_sft_data(table, tokenizer, cfg).train

    def loss_and_grad(batch):
        model.zero_grad()
        inputs = collate_sft(batch, tokenizer.pad_token_id)
        logits = model(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        ).logits
        loss = weighted_push_loss(logits, inputs["labels"], inputs["weight"])
        loss.backward()
        return loss.detach(), model.lm_head.weight.grad.clone()

    with_zero, grad_with = loss_and_grad(examples)
    without, grad_without = loss_and_grad([e for e in examples if e["weight"] > 0])
    torch.testing.assert_close(with_zero, without)
    torch.testing.assert_close(grad_with, grad_without)
    # and the weights matter: changing a non-zero weight changes the loss
    reweighted = [dict(e, weight=1.0) for e in examples]
    assert not torch.isclose(loss_and_grad(reweighted)[0], with_zero)


def test_train_generator_writes_a_loadable_dir(tiny_causal_lm_dir, tmp_path) -> None:
    table = pd.concat(
        [
            _table(),
            pd.DataFrame(
                [
                    {
                        "video_id": "x1",
                        "caption": "",
                        "category": "Humor",
                        "text": "t",
                        "confidence": 1.0,
                    },
                    {
                        "video_id": "x2",
                        "caption": "c",
                        "category": "Nope",
                        "text": "t",
                        "confidence": 1.0,
                    },
                    {
                        "video_id": "x3",
                        "caption": "c",
                        "category": "Humor",
                        "text": "t",
                        "confidence": -1.0,
                    },
                ]
            ),
        ],
        ignore_index=True,
    )
    out = tmp_path / "gen"
    metrics = train_generator(table, out, _cfg(tiny_causal_lm_dir, val_fraction=0.34))

    assert metrics["n_rejected"] == 3
    assert metrics["rejected_reasons"] == {
        "empty caption": 1,
        "unknown category": 1,
        "bad confidence": 1,
    }
    rejected = pd.read_parquet(out / "rejected.parquet")
    assert set(rejected["video_id"]) == {"x1", "x2", "x3"}
    assert metrics["n_val_videos"] == 2 and metrics["n_train_videos"] == 4
    assert [e["step"] for e in metrics["val_loss"]] == [0, 10, 20, 30]
    assert metrics["final_val_loss"] < metrics["initial_val_loss"]
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "prompt_template.json",
        "pushgen_generator.json",
        "metrics.json",
    ):
        assert (out / name).exists(), name
    manifest = json.loads((out / "pushgen_generator.json").read_text())
    assert manifest["base_model"] == str(tiny_causal_lm_dir)
    assert manifest["categories"].keys() == {"Humor", "Practical", "Suspense"}

    greedy = GenerationConfig(do_sample=False, max_new_tokens=12)
    merged = CandidateGenerator.from_pretrained(out, device="cpu")
    unmerged = CandidateGenerator.from_pretrained(out, device="cpu", merge=False)
    by_adapter = CandidateGenerator.from_pretrained(tiny_causal_lm_dir, adapter_dir=out)
    caption = "video 9: a cat and a pot of pasta"
    texts = [c.text for c in merged.generate(caption, list(PUSHES), config=greedy)]
    assert texts == [c.text for c in unmerged.generate(caption, list(PUSHES), config=greedy)]
    assert texts == [c.text for c in by_adapter.generate(caption, list(PUSHES), config=greedy)]
    base = CandidateGenerator.from_pretrained(tiny_causal_lm_dir)
    assert texts != [c.text for c in base.generate(caption, list(PUSHES), config=greedy)]


def test_bad_tables_are_clear_errors(tiny_causal_lm_dir, tmp_path) -> None:
    cfg = _cfg(tiny_causal_lm_dir)
    with pytest.raises(DataContractError, match="missing column"):
        train_generator(_table().drop(columns=["confidence"]), tmp_path / "a", cfg)
    with pytest.raises(DataContractError, match="every row was rejected"):
        train_generator(_table().assign(text=""), tmp_path / "b", cfg)


def test_loss_on_the_kept_logits_equals_the_loss_on_all_logits(tiny_causal_lm_dir):
    """The trainer asks the model for the final positions only (`logits_needed`): same loss,
    same gradient as computing every position's logits."""
    import torch

    from pushgen.core.models import load_causal_lm
    from pushgen.generator.trainer import logits_needed

    model, tokenizer = load_causal_lm(tiny_causal_lm_dir, device="cpu")
    cfg = _cfg(tiny_causal_lm_dir, val_fraction=0.0)
    table = _table(2).assign(confidence=[1.0, 0.5, 2.0, 0.3, 1.0, 1.0])
    inputs = collate_sft(prepare_sft_data(table, tokenizer, cfg).train, tokenizer.pad_token_id)
    keep = logits_needed(inputs["labels"])
    assert 1 < keep < inputs["labels"].shape[1]  # the prompts' logits are skipped

    def loss_and_grad(**kwargs):
        model.zero_grad()
        logits = model(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], **kwargs
        ).logits
        loss = weighted_push_loss(logits, inputs["labels"], inputs["weight"])
        loss.backward()
        return loss.detach(), model.lm_head.weight.grad.clone()

    full_loss, full_grad = loss_and_grad()
    kept_loss, kept_grad = loss_and_grad(logits_to_keep=keep)
    torch.testing.assert_close(kept_loss, full_loss)
    torch.testing.assert_close(kept_grad, full_grad)
