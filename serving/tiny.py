"""Tiny served-model directories in the training pipeline's layout, for tests and benchmarks.

`build_tiny_models(out)` writes `out/generator/` (tiny Llama base + an untrained LoRA adapter + the
generator manifest, as `train_generator` saves them) and `out/ranker/` (tiny random BERT +
`ranker_config.json`). The tiny base is taught, in a few seconds, to write a different push per
category whatever the caption (`TINY_PUSHES`): two of them fail the guard (an invented number for
the first category, an invented name for Humor), so tests of the guard, the selection, degraded
mode and the serving log see distinct candidates and real rejections. `build_default_models(out)` does the same with the packaged SmolLM2 base and
MiniLM encoder (real sizes, untrained heads) for latency measurements. Both run offline.
"""

from __future__ import annotations

import json
from pathlib import Path

from pushgen.data.categories import CATEGORY_DESCRIPTIONS

# what the tiny generator writes per category; "Suspense" (the first category) and "Humor" fail the
# guard (invented number, invented name), the rest pass for any caption without those words
TINY_PUSHES: dict[str, str] = {
    "Suspense": "wait 99 secs",
    "Emotion": "so moving",
    "Practical": "a handy tip",
    "Humor": "ask Zed",
    "Curiosity": "why though",
    "Urgency": "see it now",
    "Social proof": "all love it",
    "Direct address": "this is for you",
}
TINY_GUARD_FAILS = ("Suspense", "Humor")
# short prompts (category right before "Push:") make the lesson quick to learn
TINY_TEMPLATE = {
    "task": "Write a push.",
    "order": "caption_first",
    "describe_categories": False,
    "max_caption_tokens": 16,
}
_WORDS = (
    "a the chef cat dog sofa Rome city night kids cook run fold sleep big small red blue old "
    "new Watch How This 5 2021 Portugal surfer wave Mia dumplings for in of"
).split()


def _tiny_lessons(tokenizer, template, n_captions: int = 40, seed: int = 0):  # noqa: ANN001
    """(prompt ids, target ids) for every category on random captions."""
    import random

    from pushgen.generator.prompts import encode_prompt, encode_target

    rng = random.Random(seed)
    captions = [" ".join(rng.choices(_WORDS, k=rng.randint(3, 12))) for _ in range(n_captions)]
    return [
        (encode_prompt(tokenizer, template, cap, cat), encode_target(tokenizer, template, text))
        for cap in captions
        for cat, text in TINY_PUSHES.items()
    ]


def teach_tiny_pushes(base: Path, max_steps: int = 400, seed: int = 0) -> Path:
    """Fine-tune the tiny base in place until greedy decoding writes `TINY_PUSHES` per category."""
    import random

    import torch

    from pushgen.core.models import load_causal_lm
    from pushgen.generator.generate import CandidateGenerator, GenerationConfig
    from pushgen.generator.prompts import PromptTemplate

    model, tokenizer = load_causal_lm(str(base), device="cpu")
    template = PromptTemplate(**TINY_TEMPLATE)
    lessons = _tiny_lessons(tokenizer, template, seed=seed)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    check = [
        "A chef in Rome folds 5 kinds of dumplings for her grandmother",
        "a cat sleeps on a sofa",
        "Watch how this surfer rides a wave in Portugal",
    ]
    for step in range(1, max_steps + 1):
        model.train()
        batch = rng.sample(lessons, 16)
        width = max(len(p) + len(t) for p, t in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (p, t) in enumerate(batch):
            ids[i, : len(p) + len(t)] = torch.tensor(p + t)
            mask[i, : len(p) + len(t)] = 1
            labels[i, len(p) : len(p) + len(t)] = torch.tensor(t)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 80 and step % 20 == 0:
            model.eval()
            gen = CandidateGenerator(model, tokenizer, template)
            cfg = GenerationConfig(max_new_tokens=12, do_sample=False)
            if all(
                [c.text for c in gen.generate(cap, list(TINY_PUSHES), 1, cfg)]
                == list(TINY_PUSHES.values())
                for cap in check
            ):
                break
    model.eval()
    model.save_pretrained(base)
    return base


def _write_generator_dir(base: str, out: Path, seed: int = 0, template: dict | None = None) -> Path:
    """A LoRA adapter (random init, as after 0 steps) on `base` plus the generator manifest."""
    import torch
    from peft import LoraConfig, get_peft_model

    from pushgen.core.models import load_causal_lm
    from pushgen.generator.generate import GENERATOR_MANIFEST
    from pushgen.generator.prompts import PromptTemplate

    model, tokenizer = load_causal_lm(base, device="cpu")
    torch.manual_seed(seed)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora)
    peft_model.save_pretrained(out)  # adapter_config.json + adapter_model.safetensors
    tokenizer.save_pretrained(out)
    manifest = {
        "base_model": str(base),
        "template": PromptTemplate(**(template or {})).to_dict(),
        "categories": dict(CATEGORY_DESCRIPTIONS),
    }
    (out / GENERATOR_MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out


def _write_ranker_dir(encoder_dir: Path, max_length: int = 48) -> Path:
    from pushgen.ranker.inputs import RankerSettings

    RankerSettings(max_length=max_length, backbone=str(encoder_dir)).save(encoder_dir)
    return encoder_dir


def build_tiny_models(out: str | Path) -> Path:
    """`out/generator` + `out/ranker` from tiny random models (a few seconds on CPU)."""
    from pushgen.core.models import build_tiny_causal_lm, build_tiny_encoder

    out = Path(out)
    base = teach_tiny_pushes(build_tiny_causal_lm(out / "generator-base"))
    _write_generator_dir(str(base), out / "generator", template=TINY_TEMPLATE)
    _write_ranker_dir(build_tiny_encoder(out / "ranker"))
    return out


def build_default_models(out: str | Path) -> Path:
    """`out/generator` (SmolLM2 + LoRA) + `out/ranker` (MiniLM, fresh head): real-size models."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pushgen.core.models import default_encoder_path

    out = Path(out)
    _write_generator_dir("default", out / "generator")
    encoder = AutoModelForSequenceClassification.from_pretrained(
        default_encoder_path(), num_labels=1
    )
    encoder.save_pretrained(out / "ranker")
    AutoTokenizer.from_pretrained(default_encoder_path()).save_pretrained(out / "ranker")
    _write_ranker_dir(out / "ranker", max_length=64)
    return out
