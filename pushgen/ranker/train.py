"""Train the pairwise reward model: a cross-encoder `[CLS] a [SEP] b [SEP] -> P(a beats b)`.

The recipe reads top to bottom: pairs in both orders -> tokenised dataset -> BERT-style encoder with
a one-logit head -> transformers Trainer with an evidence-weighted BCE loss -> save (safetensors,
tokenizer, `ranker_config.json`) -> validation metrics. Any HF encoder id or path works as the
backbone; the default is the packaged all-MiniLM-L6-v2.

    metrics = train_ranker(train_pairs, val_pairs, "runs/ranker", RankerTrainConfig(epochs=2))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pushgen.errors import ConfigError, DataContractError
from pushgen.models import BF16_SETTINGS, check_bf16_setting
from pushgen.ranker.metrics import pairwise_metrics
from pushgen.ranker.model import HEADS, POSITION_MODES, build_pair_model, check_head
from pushgen.ranker.pairs import both_orders
from pushgen.ranker.select import PairwiseRanker, RankerSettings, caption_segment

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


def _pair_inputs(pairs: pd.DataFrame, tokenizer, cfg: RankerTrainConfig) -> tuple[list, list]:
    second = pairs["text_b"].astype(str).tolist()
    if cfg.use_caption:
        if "caption" not in pairs.columns:
            raise DataContractError("use_caption is set but the pairs have no `caption` column")
        captions = pairs["caption"].astype(str)
        second = [
            caption_segment(b, c, tokenizer.sep_token)
            for b, c in zip(second, captions, strict=True)
        ]
    return pairs["text_a"].astype(str).tolist(), second


def pair_dataset(pairs: pd.DataFrame, tokenizer, cfg: RankerTrainConfig) -> EncodedDataset:
    """Both orders of every pair, tokenised, with targets and weights from `cfg`."""
    data = both_orders(pairs)
    first, second = _pair_inputs(data, tokenizer, cfg)
    enc = tokenizer(first, second, truncation=True, max_length=cfg.max_length)
    target = data["p_a_beats_b"] if cfg.label == "posterior" else data["label"]
    weight = data["weight"] if cfg.use_weights else np.ones(len(data))
    return EncodedDataset(dict(enc), np.asarray(target, float), np.asarray(weight, float))


def _check_pairs(pairs: pd.DataFrame, what: str) -> None:
    missing = [c for c in ("text_a", "text_b", "label", "weight") if c not in pairs.columns]
    if missing:
        raise DataContractError(f"{what}: missing column(s) {missing}; build them with build_pairs")
    if pairs.empty:
        raise DataContractError(
            f"{what}: no pairs (loosen PairConfig.max_p_value or check the data)"
        )


def train_ranker(
    pairs_train: pd.DataFrame,
    pairs_val: pd.DataFrame | None,
    out_dir: str | Path,
    cfg: RankerTrainConfig | None = None,
) -> dict:
    """Train the pairwise cross-encoder on both orders of `pairs_train`, save it to `out_dir`,
    and return metrics (training loss and speed; validation accuracy, AUC, ECE, antisymmetry).
    The recipe (`train_from_ab_tests`) writes them, with the pair statistics, to
    `train_metrics.json`."""
    from pushgen.ranker.trainer import run_trainer  # torch and the Trainer: not at CLI start

    cfg = cfg or RankerTrainConfig()
    _check_pairs(pairs_train, "training pairs")
    if cfg.max_train_pairs and len(pairs_train) > cfg.max_train_pairs:
        pairs_train = pairs_train.sample(cfg.max_train_pairs, random_state=cfg.seed)

    if cfg.head == "listwise":  # one sequence per test, not one per pair
        from pushgen.ranker.listwise_train import groups_from_pairs, train_listwise

        return train_listwise(groups_from_pairs(pairs_train), pairs_val, out_dir, cfg)
    # model: a pretrained encoder with a fresh one-logit head (logit of P(a beats b))
    model, tokenizer = build_pair_model(cfg.backbone, cfg.head, cfg.pool_layers)
    # data: both orders, so the model is taught P(a, b) = 1 - P(b, a) on every pair
    dataset = pair_dataset(pairs_train, tokenizer, cfg)
    # train: weighted BCE through the transformers Trainer
    result = run_trainer(model, tokenizer, dataset, cfg, loss="bce")
    # save: safetensors + tokenizer + the settings inference needs
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    RankerSettings(
        "pairwise",
        cfg.max_length,
        cfg.use_caption,
        cfg.backbone or "default",
        head=cfg.head,
        pool_layers=cfg.pool_layers,
    ).save(out)

    metrics = {
        "train_pairs": len(pairs_train),
        "train_examples": len(dataset),
        "train_loss": float(result.training_loss),
        "train_runtime_s": float(result.metrics.get("train_runtime", float("nan"))),
        "train_examples_per_s": float(result.metrics.get("train_samples_per_second", float("nan"))),
        "config": asdict(cfg),
    }
    if pairs_val is not None and not pairs_val.empty:
        ranker = PairwiseRanker.from_pretrained(out, device=cfg.device)
        metrics["val"] = score_and_measure(ranker, pairs_val)
    return metrics


def score_both_orders(ranker: PairwiseRanker, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Raw model P(a beats b) and P(b beats a) for every pair (captions used when the model was
    trained with them and the pairs carry them). A listwise ranker scores each test in one pass
    over all its texts, and its P(b beats a) is 1 - P(a beats b) exactly."""
    if hasattr(ranker, "score_sets"):
        from pushgen.ranker.listwise_train import listwise_pair_probs

        p = listwise_pair_probs(ranker, pairs)
        return p, 1.0 - p
    a, b = pairs["text_a"].astype(str).tolist(), pairs["text_b"].astype(str).tolist()
    if ranker.settings.use_caption and "caption" in pairs.columns:
        sep = ranker.tokenizer.sep_token
        caps = pairs["caption"].astype(str).tolist()
        b_cap = [caption_segment(x, c, sep) for x, c in zip(b, caps, strict=True)]
        a_cap = [caption_segment(x, c, sep) for x, c in zip(a, caps, strict=True)]
        ranker_caption_free = RankerSettings(**{**asdict(ranker.settings), "use_caption": False})
        plain = PairwiseRanker(ranker.model, ranker.tokenizer, ranker_caption_free, ranker.device)
        return plain.score_pairs(a, b_cap), plain.score_pairs(b, a_cap)
    return ranker.score_pairs(a, b), ranker.score_pairs(b, a)


def score_and_measure(ranker: PairwiseRanker, pairs: pd.DataFrame) -> dict:
    """Pairwise metrics of `ranker` on `pairs` (both orders scored, decisions symmetrised)."""
    p_ab, p_ba = score_both_orders(ranker, pairs)
    p_value = pairs["p_value"].to_numpy() if "p_value" in pairs.columns else None
    return pairwise_metrics(p_ab, pairs["label"].to_numpy(), p_ba=p_ba, p_value=p_value)
