"""The ranker's training settings (`RankerTrainConfig`) and the tokenised pair data a run trains on
(`EncodedDataset`). Their own module so that the data side (`train`) and the torch side
(`trainer`) both import them without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pushgen.core.errors import ConfigError
from pushgen.core.models import BF16_SETTINGS, check_bf16_setting
from pushgen.ranker.heads import HEADS, POSITION_MODES, check_head

LABEL_MODES = ("hard", "posterior")
LISTWISE_LOSSES = ("pairwise", "plackett_luce")  # the listwise head's training losses


@dataclass
class RankerTrainConfig:
    """Training of the pairwise ranker (and of the pointwise ablation, which shares it)."""

    backbone: str | None = field(
        default=None,
        metadata={"help": "HF encoder id or path (default: packaged all-MiniLM-L6-v2)"},
    )
    # "segment_diff" leaves the log-2 plateau at once where "cls" sat on it for hundreds of
    # steps, and did better on held-out Upworthy stories (README, measured figures)
    head: str = field(
        default="segment_diff",
        metadata={
            "help": "cls: [CLS] classifier; segment_diff: score(a) - score(b) over a's and b's "
            "tokens; listwise: all candidates of a test in one sequence, one pass, K scores",
            "choices": HEADS,
        },
    )
    # 3 with the low encoder rate below scored 69.2-71.4% on held-out Upworthy significant pairs
    # (last layer, old rate: 68.5%) but lost on simulated data (0.742 vs 0.847): README.
    pool_layers: int = field(
        default=1,
        metadata={"help": "segment_diff: average the last N layers' token states before pooling"},
    )
    max_length: int = field(
        default=64,  # two push lines fit comfortably
        metadata={"help": "tokens per pair"},
    )
    epochs: float = field(
        default=2.0,
        metadata={"help": "passes over the training pairs (each pair counts twice: both orders)"},
    )
    batch_size: int = field(default=32, metadata={"help": "examples per optimiser step"})
    # At 5e-5 the pair logit sits at 0 (loss log 2, all P near 0.5) for most of a small run
    # before it moves; 2e-4 leaves that plateau early
    learning_rate: float = field(default=2e-4, metadata={"help": "encoder's peak rate"})
    # A high head rate lets the encoder rate go low (keeping what the pretrained layers know)
    # without the log-2 plateau.
    head_learning_rate: float | None = field(
        default=None, metadata={"help": "the fresh head's peak rate (default: --lr)"}
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW decoupled weight decay"})
    warmup_ratio: float = field(
        default=0.1, metadata={"help": "share of steps with a linear warm-up"}
    )
    label: str = field(
        default="hard",
        metadata={
            "help": "hard: 1 if a's CTR was higher; posterior: Beta-posterior P(a > b)",
            "choices": LABEL_MODES,
        },
    )
    use_weights: bool = field(
        default=True, metadata={"help": "scale each pair's loss by its evidence `weight` column"}
    )
    use_caption: bool = field(
        default=False,
        metadata={"help": "append the pair's `caption` column to the second segment"},
    )
    max_train_pairs: int | None = field(
        default=None, metadata={"help": "subsample training pairs (CPU budget)"}
    )
    seed: int = field(default=0, metadata={"help": "data order, head initialisation, subsampling"})
    logging_steps: int = field(default=50, metadata={"help": "optimiser steps between loss logs"})
    device: str | None = field(
        default=None, metadata={"help": "cpu / cuda (default: cuda when available)"}
    )
    # "auto" where the hardware has bf16 units (CUDA, CPU AMX/AVX512-BF16, where steps are faster)
    bf16: str = field(
        default="auto",
        metadata={"help": "bf16 mixed precision: auto, on or off (fp32)", "choices": BF16_SETTINGS},
    )
    # listwise head only (model: pushgen/ranker/listwise.py, training: listwise_train.py)
    listwise_loss: str = field(
        default="pairwise",
        metadata={
            "help": "listwise: weighted logistic over all arm pairs, or Plackett-Luce on the CTR "
            "order",
            "choices": LISTWISE_LOSSES,
        },
    )
    positions: str = field(
        default="reset",
        metadata={
            "help": "listwise: restart position ids per candidate (order-free) or number them "
            "in order",
            "choices": POSITION_MODES,
        },
    )
    max_set_size: int = field(
        default=8,
        metadata={
            "help": "listwise: candidates per training sequence (larger tests become windows)"
        },
    )
    candidate_tokens: int = field(
        default=32, metadata={"help": "listwise: token budget per candidate in the one sequence"}
    )

    def __post_init__(self) -> None:
        """Fail early on values that would waste a training run."""
        if self.label not in LABEL_MODES:
            raise ConfigError(f"label must be one of {LABEL_MODES}, got {self.label!r}")
        if self.epochs <= 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ConfigError("epochs, batch_size and learning_rate must be positive")
        if self.head_learning_rate is not None and self.head_learning_rate <= 0:
            raise ConfigError("head_learning_rate must be positive (or None)")
        if self.pool_layers < 1:
            raise ConfigError(f"pool_layers must be at least 1, got {self.pool_layers}")
        check_bf16_setting(self.bf16)
        check_head(self.head)
        if self.max_length < 8:
            raise ConfigError(f"max_length {self.max_length} is too short for a pair of texts")
        if self.listwise_loss not in LISTWISE_LOSSES:
            raise ConfigError(
                f"listwise_loss must be pairwise or plackett_luce, got {self.listwise_loss!r}"
            )
        if self.positions not in POSITION_MODES:
            raise ConfigError(f"positions must be reset or sequential, got {self.positions!r}")
        if self.max_set_size < 2 or self.candidate_tokens < 1:
            raise ConfigError("max_set_size must be >= 2 and candidate_tokens >= 1")


class EncodedDataset:
    """Tokenised (text, text_pair) examples with a float target and a loss weight per example."""

    def __init__(self, enc: dict, targets: np.ndarray, weights: np.ndarray) -> None:
        self.enc, self.targets, self.weights = enc, targets, weights

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict:
        item = {k: v[i] for k, v in self.enc.items()}
        item["labels"] = float(self.targets[i])
        item["weight"] = float(self.weights[i])
        return item
