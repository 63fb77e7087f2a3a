"""The generator's training step: batches, the confidence-weighted push loss, LoRA, and the
transformers `Trainer` that fits it (`fit`). `sft.py` prepares the data and runs the recipe.

Kept apart from `sft.py`, whose data side (`build_sft_table`, `sim_data`) loads without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from transformers import Trainer, TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from pushgen.core.distributed import rank_seed, weighted_mean_across_ranks
from pushgen.core.models import use_bf16_autocast
from pushgen.generator.config import GeneratorTrainConfig, SFTData


# --- batches -----------------------------------------------------------------------------------
def collate_sft(batch: list[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Right-pad a batch: pads get attention 0 and label -100; weights become a float tensor."""
    width = max(len(e["input_ids"]) for e in batch)
    input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e["input_ids"])
        input_ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        attention_mask[i, :n] = 1
    weight = torch.tensor([float(e["weight"]) for e in batch], dtype=torch.float32)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "weight": weight,
    }


# --- loss and trainer ------------------------------------------------------------------------
def weighted_push_loss(logits: Any, labels: Any, weight: Any) -> Any:
    """Confidence-weighted mean over samples of each sample's mean push-token cross-entropy.

    Under torchrun the mean is over the global batch (every rank's samples), so N processes train
    exactly as one with the same global batch (`distributed.weighted_mean_across_ranks`).

    `logits` may cover only the last `logits.shape[1]` positions of the sequence (the model run
    with `logits_to_keep`): they are aligned with the end of `labels`.
    """
    kept = logits.shape[1]
    shift_logits = logits[:, :-1, :]
    shift_labels = labels[:, labels.shape[1] - kept + 1 :]
    mask = shift_labels != -100
    # cross-entropy on the push tokens only, as rows of one contiguous (tokens, vocab) matrix
    token_loss = torch.zeros(mask.shape, dtype=torch.float32, device=logits.device)
    token_loss[mask] = F.cross_entropy(
        shift_logits[mask].float(), shift_labels[mask], reduction="none"
    )
    per_sample = token_loss.sum(1) / mask.sum(1).clamp(min=1).float()
    return weighted_mean_across_ranks(per_sample, weight)


def logits_needed(labels: Any) -> int:
    """How many final positions of a right-padded batch the loss needs logits for: from the
    token before the earliest push token to the end (the prompt's logits are never used, and
    over a 49k vocabulary they cost more than the rest of the step)."""
    has_label = (labels != -100).any(dim=0)
    if not bool(has_label.any()):
        return 1
    first = int(torch.nonzero(has_label)[0])
    return labels.shape[1] - max(first - 1, 0)


class WeightedSFTTrainer(Trainer):
    """`Trainer` with the confidence-weighted push loss (`weighted_push_loss`)."""

    # Our loss is a per-batch mean, so the Trainer must divide it for gradient accumulation.
    loss_is_scaled_for_ga = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)  # the eval loop reads labels from the caller's dict afterwards
        labels, weight = inputs.pop("labels"), inputs.pop("weight")
        outputs = model(**inputs, logits_to_keep=logits_needed(labels))
        loss = weighted_push_loss(outputs.logits, labels, weight)
        return (loss, outputs) if return_outputs else loss


class LossBarCallback(ProgressCallback):
    """A progress bar that shows the latest losses instead of printing a dict per step."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        bar = getattr(self, "training_bar", None)
        if bar is not None and logs:
            shown = {k: f"{logs[k]:.3f}" for k in ("loss", "eval_loss") if k in logs}
            if shown:
                bar.set_postfix(shown, refresh=False)


def build_lora_model(model: Any, cfg: GeneratorTrainConfig) -> Any:
    """Wrap `model` with fresh LoRA adapters; the base weights are frozen by peft."""
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


# FSDP for bases that do not fit one GPU (transformers `TrainingArguments.fsdp_config`): wrap each
# decoder layer, keep the original parameters so the frozen base and the LoRA weights may share a
# wrapped unit, and load the base on rank 0 only (the others get it by broadcast).
FSDP_CONFIG: dict[str, Any] = {
    "version": 2,
    "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
    "use_orig_params": True,
    "cpu_ram_efficient_loading": True,
    "state_dict_type": "FULL_STATE_DICT",
}


@dataclass
class FitResult:
    """A finished SFT run: the adapted model and its loss curves."""

    model: Any  # the peft model (base frozen, adapters trained)
    train_loss: list[dict[str, float]]  # [{step, loss}] one per optimiser step
    val_loss: list[dict[str, float]]  # [{step, eval_loss}], step 0 = before training
    steps: int
    trainer: Any = None  # the Trainer (saves a sharded model: `save_adapter`)
    samples_per_second: float = float("nan")  # the Trainer's figure, over all ranks


def save_adapter(result: FitResult, out: Path | None) -> None:
    """Write the trained adapter to `out` (rank 0; other ranks pass None). Under FSDP every rank
    must call it: the Trainer gathers the sharded adapter and its main process writes it."""
    if result.trainer is not None and result.trainer.is_fsdp_enabled:
        result.trainer.save_model(str(out) if out else result.trainer.args.output_dir)
    elif out is not None:
        result.model.save_pretrained(out)


def fit(
    model: Any, tokenizer: Any, data: SFTData, cfg: GeneratorTrainConfig, work_dir: str | Path
) -> FitResult:
    """Train LoRA adapters on `data` with the weighted loss in the transformers Trainer."""
    set_seed(cfg.seed)
    peft_model = build_lora_model(model, cfg)
    has_val = bool(data.val)
    args = TrainingArguments(
        output_dir=str(work_dir),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type="constant_with_warmup",  # short runs: no need to decay
        weight_decay=cfg.weight_decay,
        logging_steps=1,  # a loss per step is the training curve the metrics report
        eval_strategy="steps" if has_val else "no",
        eval_steps=cfg.eval_steps,
        save_strategy="no",
        report_to="none",
        seed=cfg.seed,
        data_seed=cfg.seed,  # one data order on every rank, whatever each rank's own seed
        ddp_find_unused_parameters=False,  # every adapter takes part in every step
        fsdp=cfg.fsdp
        or None,  # "" (DDP) or e.g. "full_shard auto_wrap" (docs/design.md, "Several GPUs")
        fsdp_config=FSDP_CONFIG if cfg.fsdp else None,
        remove_unused_columns=False,  # keep `weight`: the collator and loss need it
        prediction_loss_only=True,
        use_cpu=str(model.device) == "cpu",
        bf16=model.dtype == torch.bfloat16 or use_bf16_autocast(cfg.bf16, str(model.device)),
        disable_tqdm=True,  # our own bar below, without a printed dict per step
        dataloader_num_workers=0,
    )
    trainer = WeightedSFTTrainer(
        model=peft_model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.val or None,
        data_collator=lambda batch: collate_sft(batch, tokenizer.pad_token_id),
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if cfg.progress:
        trainer.add_callback(LossBarCallback())
    set_seed(rank_seed(cfg.seed))  # dropout: each rank its own stream (rank 0: `seed`, as alone)
    initial = []
    if has_val and cfg.eval_before_training:
        # train() starts a fresh log history, so the untuned loss is kept here as step 0
        initial = [{"step": 0, "eval_loss": trainer.evaluate()["eval_loss"]}]
    trainer.train()
    if has_val and trainer.state.global_step % cfg.eval_steps:
        trainer.evaluate()  # so the validation curve ends at the last step
    train_curve, val_curve = loss_history(trainer.state.log_history)
    speed = [
        e["train_samples_per_second"]
        for e in trainer.state.log_history
        if "train_samples_per_second" in e
    ]
    return FitResult(
        peft_model,
        train_curve,
        initial + val_curve,
        trainer.state.global_step,
        trainer,
        speed[-1] if speed else float("nan"),
    )


def loss_history(log_history: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """(train [{step, loss}], validation [{step, eval_loss}]) from a Trainer's log history."""
    train = [{"step": e["step"], "loss": e["loss"]} for e in log_history if "loss" in e]
    val = [
        {"step": e["step"], "eval_loss": e["eval_loss"]} for e in log_history if "eval_loss" in e
    ]
    return train, val
