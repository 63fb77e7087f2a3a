"""Train the pairwise reward model: a cross-encoder `[CLS] a [SEP] b [SEP] -> P(a beats b)`.

The recipe reads top to bottom: pairs in both orders -> tokenised dataset -> BERT-style encoder with
a one-logit head -> transformers Trainer with an evidence-weighted BCE loss -> save (safetensors,
tokenizer, `ranker_config.json`) -> validation metrics. Any HF encoder id or path works as the
backbone; the default is the packaged all-MiniLM-L6-v2.

    metrics = train_ranker(train_pairs, val_pairs, "runs/ranker", RankerTrainConfig(epochs=2))
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from pushgen.core.errors import DataContractError
from pushgen.ranker.config import EncodedDataset, RankerTrainConfig
from pushgen.ranker.inputs import RankerSettings, caption_segment
from pushgen.ranker.model import build_pair_model
from pushgen.ranker.pairs import both_orders
from pushgen.ranker.scoring import score_and_measure
from pushgen.ranker.select import PairwiseRanker


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
    out_dir: str | Path | None,
    cfg: RankerTrainConfig | None = None,
) -> dict:
    """Train the pairwise cross-encoder on both orders of `pairs_train`, save it to `out_dir`,
    and return metrics (training loss and speed; validation accuracy, AUC, ECE, antisymmetry).
    The recipe (`train_from_ab_tests`) writes them, with the pair statistics, to
    `train_metrics.json`. Under torchrun every rank trains its share of each batch (DDP) and only
    rank 0 saves: the other ranks pass `out_dir=None` and get the training figures alone."""
    from pushgen.ranker.trainer import run_trainer  # torch and the Trainer: not at CLI start

    cfg = cfg or RankerTrainConfig()
    _check_pairs(pairs_train, "training pairs")
    if cfg.max_train_pairs and len(pairs_train) > cfg.max_train_pairs:
        pairs_train = pairs_train.sample(cfg.max_train_pairs, random_state=cfg.seed)

    if cfg.head == "listwise":  # one sequence per test, not one per pair
        from pushgen.ranker.listwise_train import groups_from_pairs, train_listwise

        return train_listwise(groups_from_pairs(pairs_train), pairs_val, out_dir, cfg)
    # model: a pretrained encoder with a fresh one-logit head (logit of P(a beats b)), seeded, so
    # a run repeats and every torchrun rank starts from the same head
    from transformers import set_seed

    set_seed(cfg.seed)
    model, tokenizer = build_pair_model(cfg.backbone, cfg.head, cfg.pool_layers)
    # data: both orders, so the model is taught P(a, b) = 1 - P(b, a) on every pair
    dataset = pair_dataset(pairs_train, tokenizer, cfg)
    # train: weighted BCE through the transformers Trainer
    result = run_trainer(model, tokenizer, dataset, cfg, loss="bce")
    metrics = {
        "train_pairs": len(pairs_train),
        "train_examples": len(dataset),
        "train_loss": float(result.training_loss),
        "train_runtime_s": float(result.metrics.get("train_runtime", float("nan"))),
        "train_examples_per_s": float(result.metrics.get("train_samples_per_second", float("nan"))),
        "config": asdict(cfg),
    }
    if out_dir is None:  # not rank 0 under torchrun: rank 0 saves and validates
        return metrics
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
    if pairs_val is not None and not pairs_val.empty:
        # calibrate: temperature scaling on half the held-out tests (monotone: same choices)
        from pushgen.ranker.calibrate import calibrate_ranker

        metrics["calibration"] = calibrate_ranker(out, pairs_val, cfg.device)
        ranker = PairwiseRanker.from_pretrained(out, device=cfg.device)
        metrics["val"] = score_and_measure(ranker, pairs_val)
    return metrics
