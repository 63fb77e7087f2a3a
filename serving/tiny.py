"""Tiny served-model directories in the training pipeline's layout, for tests and benchmarks.

`build_tiny_models(out)` writes `out/generator/` (tiny random Llama base + an untrained LoRA adapter
+ the generator manifest, as `train_generator` saves them) and `out/ranker/` (tiny random BERT +
`ranker_config.json`). `build_default_models(out)` does the same with the packaged SmolLM2 base and
MiniLM encoder (real sizes, untrained heads) for latency measurements. Both run offline.
"""

from __future__ import annotations

import json
from pathlib import Path

from pushgen.categories import CATEGORY_DESCRIPTIONS


def _write_generator_dir(base: str, out: Path, seed: int = 0) -> Path:
    """A LoRA adapter (random init, as after 0 steps) on `base` plus the generator manifest."""
    import torch
    from peft import LoraConfig, get_peft_model

    from pushgen.generator.generate import GENERATOR_MANIFEST
    from pushgen.generator.prompts import PromptTemplate
    from pushgen.models import load_causal_lm

    model, tokenizer = load_causal_lm(base, device="cpu")
    torch.manual_seed(seed)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora)
    peft_model.save_pretrained(out)  # adapter_config.json + adapter_model.safetensors
    tokenizer.save_pretrained(out)
    manifest = {
        "base_model": str(base),
        "template": PromptTemplate().to_dict(),
        "categories": dict(CATEGORY_DESCRIPTIONS),
    }
    (out / GENERATOR_MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out


def _write_ranker_dir(encoder_dir: Path, max_length: int = 48) -> Path:
    from pushgen.ranker.select import RankerSettings

    RankerSettings(max_length=max_length, backbone=str(encoder_dir)).save(encoder_dir)
    return encoder_dir


def build_tiny_models(out: str | Path) -> Path:
    """`out/generator` + `out/ranker` from tiny random models (a few seconds on CPU)."""
    from pushgen.models import build_tiny_causal_lm, build_tiny_encoder

    out = Path(out)
    base = build_tiny_causal_lm(out / "generator-base")
    _write_generator_dir(str(base), out / "generator")
    _write_ranker_dir(build_tiny_encoder(out / "ranker"))
    return out


def build_default_models(out: str | Path) -> Path:
    """`out/generator` (SmolLM2 + LoRA) + `out/ranker` (MiniLM, fresh head): real-size models."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pushgen.models import default_encoder_path

    out = Path(out)
    _write_generator_dir("default", out / "generator")
    encoder = AutoModelForSequenceClassification.from_pretrained(
        default_encoder_path(), num_labels=1
    )
    encoder.save_pretrained(out / "ranker")
    AutoTokenizer.from_pretrained(default_encoder_path()).save_pretrained(out / "ranker")
    _write_ranker_dir(out / "ranker", max_length=64)
    return out
