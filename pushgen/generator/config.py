"""The generator's training settings (`GeneratorTrainConfig`) and the tokenised data a run trains on
(`SFTData`). Their own module so that the data side (`generator.sft`) and the torch side
(`generator.trainer`) both import them without importing each other."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pushgen.core.errors import ConfigError
from pushgen.core.models import BF16_SETTINGS, check_bf16_setting
from pushgen.generator.prompts import PromptTemplate

FSDP_OPTIONS = ("full_shard", "shard_grad_op", "hybrid_shard", "offload", "auto_wrap")


def check_fsdp_setting(fsdp: str | None, save_merged: bool) -> None:
    """An FSDP setting is None ("" alike) or words from `FSDP_OPTIONS` (transformers `FSDPOption`) with one
    sharding strategy; merged weights cannot be written from a sharded LoRA run."""
    words = (fsdp or "").split()
    unknown = [w for w in words if w not in FSDP_OPTIONS]
    if unknown:
        raise ConfigError(f"fsdp: unknown option(s) {unknown}; choose from {FSDP_OPTIONS}")
    if words and sum(w in FSDP_OPTIONS[:3] for w in words) != 1:
        raise ConfigError(f"fsdp needs exactly one of {FSDP_OPTIONS[:3]}, got {fsdp!r}")
    if words and save_merged:
        raise ConfigError(
            "fsdp with save_merged: a sharded LoRA run writes the adapter only; merge it when "
            "loading (CandidateGenerator.from_pretrained merges by default)"
        )


@dataclass
class GeneratorTrainConfig:
    """Everything one LoRA SFT run of the generator needs, besides its data."""

    base_model: str = field(
        default="default",
        metadata={"help": "HF causal LM id or path; default: packaged SmolLM2-135M-Instruct"},
    )
    template: PromptTemplate = field(
        default_factory=PromptTemplate, metadata={"help": "prompt format and order"}
    )
    categories: list[str] | None = field(
        default=None, metadata={"help": "control categories; None: those found in the data"}
    )
    category_descriptions: dict[str, str] = field(
        default_factory=dict, metadata={"help": "extra or overriding category definitions"}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank: capacity of the adapter"})
    lora_alpha: int = field(
        default=32, metadata={"help": "LoRA scaling numerator (effective scale alpha / r)"}
    )
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA branch"})
    target_modules: list[str] | str = field(
        default="all-linear", metadata={"help": "which Linear layers get adapters"}
    )
    # LoRA tolerates larger steps than full fine-tuning; what 1e-3 reaches on the simulator is in
    # docs/results (the README's Results and measured-figures tables)
    learning_rate: float = field(
        default=1e-3, metadata={"help": "LoRA learning rate (its measured effect: README, Results)"}
    )
    max_steps: int = field(
        default=60, metadata={"help": "optimiser steps (short runs: the data set is small)"}
    )
    batch_size: int = field(default=8, metadata={"help": "samples per device step"})
    grad_accum: int = field(default=1, metadata={"help": "steps accumulated per optimiser update"})
    warmup_steps: int = field(
        default=3, metadata={"help": "linear warm-up steps before the constant rate"}
    )
    weight_decay: float = field(
        default=0.0, metadata={"help": "decoupled weight decay on adapter weights"}
    )
    max_length: int = field(
        default=320,
        metadata={"help": "prompt + push tokens per row; longer rows are set aside, not cut"},
    )
    val_fraction: float = field(
        default=0.15, metadata={"help": "share of videos held out for validation (0: none)"}
    )
    eval_steps: int = field(
        default=10, metadata={"help": "evaluate the validation loss every this many steps"}
    )
    max_eval_rows: int = field(
        default=128,
        metadata={"help": "validation rows per evaluation (sampled; bounds CPU time)"},
    )
    eval_before_training: bool = field(
        default=True, metadata={"help": "log the untrained validation loss as step 0"}
    )
    weight_column: str = field(
        default="confidence", metadata={"help": "per-sample loss weight column; empty: all 1"}
    )
    seed: int = field(default=0, metadata={"help": "data split, adapter init and data order"})
    device: str | None = field(
        default=None, metadata={"help": "cpu / cuda (default: cuda when available)"}
    )
    # Autocast; weights stay fp32. Never force "on" without bf16 units: emulated bf16 is many
    # times slower than fp32 (README, measured figures)
    bf16: str = field(
        default="auto",
        metadata={
            "help": "bf16 mixed precision (auto: where the hardware has bf16 units)",
            "choices": BF16_SETTINGS,
        },
    )
    save_merged: bool = field(
        default=False,
        metadata={"help": "also save merged weights (faster serving start-up, larger)"},
    )
    progress: bool = field(default=True, metadata={"help": "show the Trainer's progress bar"})
    fsdp: str | None = field(
        default=None,
        metadata={
            "help": "FSDP for a base that does not fit one GPU, e.g. 'full_shard auto_wrap' "
            "(none: DDP; docs/design.md, 'Several GPUs')"
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.template, dict):
            self.template = PromptTemplate.from_dict(self.template)
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        check_bf16_setting(self.bf16)
        check_fsdp_setting(self.fsdp, self.save_merged)
        for name in (
            "max_steps",
            "batch_size",
            "grad_accum",
            "lora_r",
            "max_length",
            "eval_steps",
            "max_eval_rows",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the manifest."""
        data = dataclasses.asdict(self)
        data["template"] = self.template.to_dict()
        return data


@dataclass
class SFTData:
    """Tokenised training and validation examples, plus what was rejected and why."""

    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    rejected: pd.DataFrame
    categories: dict[str, str]  # {category: description} used in prompts
    train_videos: list[str] = field(default_factory=list)
    val_videos: list[str] = field(default_factory=list)
