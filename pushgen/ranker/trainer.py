"""The ranker's training step on the transformers `Trainer`: a per-example weighted loss on one
logit, and AdamW with the fresh head at its own rate. Shared by the pairwise cross-encoder
(`train.py`, BCE) and the pointwise ablation (`pointwise.py`, MSE).

Kept apart from `train.py`, whose `RankerTrainConfig` the CLI imports without torch.
"""

from __future__ import annotations

import tempfile
from typing import Any

import torch
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

from pushgen.core.distributed import rank_seed, weighted_mean_across_ranks
from pushgen.core.errors import ConfigError
from pushgen.core.models import pick_device, use_bf16_autocast
from pushgen.ranker.config import EncodedDataset, RankerTrainConfig
from pushgen.ranker.model import head_parameter_names

LOSSES = ("bce", "mse")  # BCE-with-logits for P(a beats b); MSE for the pointwise regressor


class WeightedTrainer(Trainer):
    """A Trainer whose loss is a per-example weighted BCE-with-logits or MSE on one logit.

    The weight column is popped before the forward pass (the model does not know it); weighted
    means divide by the batch's weight sum so the learning rate means the same for any weighting;
    under torchrun, the global batch's (`distributed.weighted_mean_across_ranks`).
    """

    def __init__(self, *args: Any, loss: str = "bce", **kwargs: Any) -> None:
        if loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, got {loss!r}")
        super().__init__(*args, **kwargs)
        self.weighted_loss = loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weight = inputs.pop("weight").float()
        target = inputs.pop("labels").float()
        outputs = model(**inputs)
        logit = outputs.logits[:, 0].float()
        if self.weighted_loss == "bce":
            per = torch.nn.functional.binary_cross_entropy_with_logits(
                logit, target, reduction="none"
            )
        else:
            per = (logit - target) ** 2
        value = weighted_mean_across_ranks(per, weight, floor=1e-8)
        return (value, outputs) if return_outputs else value


def optimizer_with_head_rate(model: torch.nn.Module, cfg: RankerTrainConfig) -> torch.optim.AdamW:
    """AdamW with the head's parameters at `cfg.head_learning_rate`, the encoder's at
    `cfg.learning_rate`; weight decay on matrices only (not on biases and LayerNorm gains)."""
    head = head_parameter_names(model)
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((name in head, param.ndim >= 2), []).append(param)
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "lr": cfg.head_learning_rate if is_head else cfg.learning_rate,
                "weight_decay": cfg.weight_decay if decays else 0.0,
            }
            for (is_head, decays), params in groups.items()
        ]
    )


def run_trainer(
    model: torch.nn.Module,
    tokenizer: Any,
    dataset: EncodedDataset,
    cfg: RankerTrainConfig,
    loss: str,
) -> Any:
    """Fit `model` on `dataset` with the weighted Trainer; returns the Trainer's train output."""
    device = pick_device(cfg.device)
    use_cpu = device == "cpu"
    bf16 = use_bf16_autocast(cfg.bf16, device)
    with tempfile.TemporaryDirectory(prefix="pushgen-ranker-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,  # nothing is checkpointed: the final model is saved by the caller
            num_train_epochs=cfg.epochs,
            per_device_train_batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            weight_decay=cfg.weight_decay,
            warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of the total steps
            logging_steps=cfg.logging_steps,
            save_strategy="no",
            report_to="none",
            seed=cfg.seed,
            data_seed=cfg.seed,  # one data order on every rank, whatever each rank's own seed
            use_cpu=use_cpu,
            bf16=bf16,  # autocast only: weights and optimiser state stay fp32
            dataloader_num_workers=0,  # tokenised up front; workers would only add fork cost
            disable_tqdm=None,
            remove_unused_columns=False,  # keep `weight`: compute_loss pops it before forward
        )
        # the Trainer builds the warm-up/decay schedule around a given optimiser's group rates
        optimizer = optimizer_with_head_rate(model, cfg) if cfg.head_learning_rate else None
        trainer = WeightedTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=DataCollatorWithPadding(tokenizer),
            optimizers=(optimizer, None),
            loss=loss,
        )
        set_seed(rank_seed(cfg.seed))  # dropout: each rank its own stream (rank 0: `seed`)
        return trainer.train()
