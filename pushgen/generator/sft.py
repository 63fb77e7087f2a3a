"""LoRA supervised fine-tuning of the generator, loss on push tokens, weighted by confidence.

Each row (video_id, caption, category, text, confidence) becomes `prompt(task, category, caption)
-> text`. The loss is the mean token cross-entropy over the push tokens only (prompt tokens are
masked), and a batch's loss is the confidence-weighted mean of its samples' losses, so a
zero-weight sample contributes nothing. Training runs in the transformers `Trainer` (the loss,
collator and `fit` are in `trainer.py`); a validation set is held out by video so no video's
pushes sit on both sides.

    metrics = train_generator(labelled_df, "runs/generator", GeneratorTrainConfig(max_steps=30))

The output dir holds the adapter (safetensors), the tokenizer, `prompt_template.json`,
`pushgen_generator.json` (base model, template, categories, config) and `metrics.json`; it loads
by itself with `CandidateGenerator.from_pretrained(out_dir)`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pushgen.core.errors import ConfigError, DataContractError
from pushgen.data.categories import CATEGORY_DESCRIPTIONS
from pushgen.data.contracts import write_rejected
from pushgen.generator.config import GeneratorTrainConfig, SFTData
from pushgen.generator.generate import GENERATOR_MANIFEST, MERGED_SUBDIR
from pushgen.generator.prompts import encode_prompt, encode_target

SPLIT_FILE = "split.json"  # which videos trained and which were held out (for evaluation)
SFT_COLUMNS = ("video_id", "caption", "category", "text", "confidence")


# --- data: validate, tokenise, split by video ------------------------------------------------
def _row_reasons(df: pd.DataFrame, known: set[str], weight_column: str) -> pd.Series:
    """First failing rule per row ('' if fine); vectorised."""
    reason = pd.Series("", index=df.index, dtype=object)

    def mark(mask: pd.Series, why: str) -> None:
        reason[mask.fillna(True).astype(bool) & (reason == "")] = why

    mark(df["video_id"].isna() | (df["video_id"].astype(str).str.strip() == ""), "missing video_id")
    for col in ("caption", "text"):
        mark(df[col].isna() | (df[col].astype(str).str.strip() == ""), f"empty {col}")
    mark(~df["category"].isin(known), "unknown category")
    if weight_column:
        weight = pd.to_numeric(df[weight_column], errors="coerce")
        mark(weight.isna() | (weight < 0) | ~np.isfinite(weight), f"bad {weight_column}")
    return reason


def _choose_categories(df: pd.DataFrame, cfg: GeneratorTrainConfig) -> dict[str, str]:
    known = {**CATEGORY_DESCRIPTIONS, **cfg.category_descriptions}
    if cfg.categories is not None:
        missing = [c for c in cfg.categories if c not in known]
        if missing:
            raise ConfigError(
                f"categories {missing} have no description; pass category_descriptions"
            )
        return {c: known[c] for c in cfg.categories}
    present = set(df["category"].dropna().astype(str))
    ordered = [c for c in known if c in present]  # the canonical order, not data order
    if not ordered:
        raise DataContractError(
            f"no row has a known category; found {sorted(present)[:10]}, known {sorted(known)}"
        )
    return {c: known[c] for c in ordered}


def _split_videos(video_ids: pd.Series, fraction: float, seed: int) -> set:
    """Video ids held out for validation: a seeded share of the distinct videos."""
    videos = np.array(sorted(video_ids.astype(str).unique()))
    if fraction <= 0 or len(videos) < 2:
        return set()
    n_val = min(len(videos) - 1, max(1, round(fraction * len(videos))))
    rng = np.random.default_rng(seed)
    return set(rng.choice(videos, size=n_val, replace=False))


def prepare_sft_data(df: pd.DataFrame, tokenizer: Any, cfg: GeneratorTrainConfig) -> SFTData:
    """Validate rows, tokenise prompt -> push, and split train/validation by video."""
    columns = SFT_COLUMNS if cfg.weight_column else SFT_COLUMNS[:-1]
    columns = tuple(c if c != "confidence" else cfg.weight_column for c in columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataContractError(f"SFT data: missing column(s) {missing}; got {list(df.columns)}")
    if df.empty:
        raise DataContractError("SFT data: the table has no rows")
    categories = _choose_categories(df, cfg)
    reason = _row_reasons(df, set(categories), cfg.weight_column)
    examples: dict[Any, dict[str, Any]] = {}
    for idx, row in df[reason == ""].iterrows():
        prompt = encode_prompt(
            tokenizer,
            cfg.template,
            str(row["caption"]),
            row["category"],
            categories[row["category"]],
        )
        target = encode_target(tokenizer, cfg.template, str(row["text"]))
        if len(prompt) + len(target) > cfg.max_length:
            reason[idx] = f"over max_length ({cfg.max_length} tokens)"
            continue
        weight = float(row[cfg.weight_column]) if cfg.weight_column else 1.0
        examples[idx] = {
            "input_ids": prompt + target,
            "labels": [-100] * len(prompt) + target,  # loss on the push tokens only
            "weight": weight,
            "video_id": str(row["video_id"]),
        }
    rejected = df[reason != ""].copy()
    rejected["reject_reason"] = reason[reason != ""]
    if not examples:
        raise DataContractError(
            f"SFT data: every row was rejected ({dict(Counter(rejected['reject_reason']))})"
        )
    kept = df.loc[list(examples)]
    val_videos = _split_videos(kept["video_id"], cfg.val_fraction, cfg.seed)
    train = [e for e in examples.values() if e["video_id"] not in val_videos]
    val = [e for e in examples.values() if e["video_id"] in val_videos]
    if len(val) > cfg.max_eval_rows:  # a fixed sample: every evaluation scores the same rows
        keep = np.random.default_rng(cfg.seed).choice(len(val), cfg.max_eval_rows, replace=False)
        val = [val[i] for i in sorted(keep)]
    train_videos = sorted(set(kept["video_id"].astype(str)) - val_videos)
    return SFTData(train, val, rejected, categories, train_videos, sorted(val_videos))


SFT_WEIGHTINGS = ("data", "bounded", "literal", "none")


def apply_weighting(table: pd.DataFrame, weighting: str = "data") -> tuple[pd.DataFrame, str]:
    """(table, weight column) for an SFT weighting: `data` keeps the table's `confidence`;
    `bounded`/`literal` recompute it from `ctr` and `pv` (`pushgen.data.clean.confidence_weight`);
    `none` trains every sample at weight 1 (the ablation)."""
    from pushgen.data.clean import confidence_weight

    if weighting not in SFT_WEIGHTINGS:
        raise ConfigError(f"weighting must be one of {SFT_WEIGHTINGS}, got {weighting!r}")
    if weighting == "none":
        return table, ""
    if weighting == "data":
        return table, "confidence"
    missing = {"ctr", "pv"} - set(table.columns)
    if missing:
        raise ConfigError(f"weighting {weighting!r} needs the columns {sorted(missing)}")
    return table.assign(
        confidence=confidence_weight(table["ctr"], table["pv"], weighting)
    ), "confidence"


def build_sft_table(
    pushes: pd.DataFrame, captions: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Join labelled, cleaned pushes with their video's caption: (SFT table, rows without one).

    `pushes` needs video_id, text, category and confidence; `captions` video_id and caption.
    """
    for name, df, cols in (
        ("pushes", pushes, ("video_id", "text", "category", "confidence")),
        ("captions", captions, ("video_id", "caption")),
    ):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataContractError(f"{name}: missing column(s) {missing}; got {list(df.columns)}")
    lookup = captions.drop_duplicates("video_id").set_index("video_id")["caption"]
    table = pushes.drop(columns=["caption"], errors="ignore").copy()
    table["caption"] = table["video_id"].map(lookup)
    no_caption = table["caption"].isna()
    rejected = table[no_caption].assign(reject_reason="no caption for video")
    return table[~no_caption].reset_index(drop=True), rejected


# --- the recipe: load -> data -> model + LoRA -> train -> save ---------------------------------
def train_generator(
    data: pd.DataFrame, out_dir: str | Path, cfg: GeneratorTrainConfig | None = None
) -> dict[str, Any]:
    """Fine-tune the generator on labelled, cleaned pushes; write the adapter dir; return metrics.

    Under `torchrun` every rank loads the model and the data once and trains its share of each
    global batch (DDP, or FSDP with `cfg.fsdp`); rank 0 alone writes `out_dir`, staged and
    published whole when training succeeded (`pushgen.core.distributed.staged_output`).
    """
    from pushgen.core.distributed import staged_output

    cfg = cfg or GeneratorTrainConfig()
    with staged_output(out_dir) as out:
        return _train_generator(data, out, cfg)


def _train_generator(
    data: pd.DataFrame, out: Path | None, cfg: GeneratorTrainConfig
) -> dict[str, Any]:
    """`train_generator`'s body; `out` is rank 0's staging dir (None on the other ranks)."""
    from pushgen.core.distributed import ranks
    from pushgen.core.models import load_causal_lm
    from pushgen.generator.trainer import fit, save_adapter  # torch and the Trainer: not at start

    rank = ranks()
    started = time.perf_counter()
    # model and tokenizer (the tokenizer defines the prompt tokens)
    model, tokenizer = load_causal_lm(cfg.base_model, device=cfg.device)
    # data: rejected rows are written aside with their reason, never dropped silently
    sft = prepare_sft_data(data, tokenizer, cfg)
    split = {"train_videos": sft.train_videos, "val_videos": sft.val_videos}
    if out is not None:
        write_rejected(sft.rejected, out, step="train-generator")
        (out / SPLIT_FILE).write_text(json.dumps(split))
    # train; the adapter is saved before the scratch dir goes (FSDP saves through the Trainer)
    with tempfile.TemporaryDirectory(prefix="pushgen-sft-") as work_dir:
        result = fit(model, tokenizer, sft, cfg, work_dir)
        save_adapter(result, out)
    peft_model, train_curve, val_curve = result.model, result.train_loss, result.val_loss
    trainable, total = peft_model.get_nb_trainable_parameters()
    if out is None:  # not rank 0: nothing to write
        return {"rank": rank.rank, "steps": int(result.steps)}
    # save: tokenizer + template + manifest (+ merged weights when asked)
    tokenizer.save_pretrained(out)
    cfg.template.save(out / "prompt_template.json")
    manifest = {
        "base_model": cfg.base_model,
        "template": cfg.template.to_dict(),
        "categories": sft.categories,
        "config": cfg.to_dict(),
    }
    (out / GENERATOR_MANIFEST).write_text(json.dumps(manifest, indent=2))
    if cfg.save_merged:
        merged = peft_model.merge_and_unload()
        merged.save_pretrained(out / MERGED_SUBDIR)
        tokenizer.save_pretrained(out / MERGED_SUBDIR)

    metrics = {
        "n_rows": int(len(data)),
        "n_train": len(sft.train),
        "n_val": len(sft.val),
        "n_train_videos": len(sft.train_videos),
        "n_val_videos": len(sft.val_videos),
        "n_rejected": int(len(sft.rejected)),
        "rejected_reasons": dict(Counter(sft.rejected.get("reject_reason", []))),
        "categories": list(sft.categories),
        "trainable_params": int(trainable),
        "total_params": int(total),
        "train_loss": train_curve,
        "val_loss": val_curve,
        "first_train_loss": train_curve[0]["loss"] if train_curve else None,
        "final_train_loss": train_curve[-1]["loss"] if train_curve else None,
        "initial_val_loss": val_curve[0]["eval_loss"] if val_curve else None,
        "final_val_loss": val_curve[-1]["eval_loss"] if val_curve else None,
        "steps": int(result.steps),
        "train_seconds": round(time.perf_counter() - started, 2),
        "processes": rank.world_size,
        "train_samples_per_second": round(float(result.samples_per_second), 3),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def train_from_files(
    labelled_path: str | Path,
    captions_path: str | Path,
    out_dir: str | Path,
    rejected_path: str | Path,
    cfg: GeneratorTrainConfig,
) -> dict[str, float]:
    """The pipeline step: join labelled pushes with captions, train, write every row set aside.

    Returns the scalar figures (finite floats) the KFP component logs as Metrics.
    """
    import math

    from pushgen.data.contracts import read_table, write_table

    table, no_caption = build_sft_table(
        read_table(labelled_path), read_table(captions_path, "captions")
    )
    result = train_generator(table, out_dir, cfg)
    if "n_train" not in result:  # not rank 0 under torchrun: rank 0 writes and reports
        return {}
    # Everything set aside, in one table, always written so downstream reads never fail.
    parts = [no_caption.assign(step="join-captions")]
    if (Path(out_dir) / "rejected.parquet").exists():
        parts.append(pd.read_parquet(Path(out_dir) / "rejected.parquet"))
    parts = [p.astype(str) for p in parts if len(p)]
    aside = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"reject_reason": []})
    write_table(aside, rejected_path)
    figures = {
        "train_rows": result["n_train"],
        "val_rows": result["n_val"],
        "rejected_rows": result["n_rejected"] + len(no_caption),
        "steps": result["steps"],
        "first_train_loss": result["first_train_loss"],
        "final_train_loss": result["final_train_loss"],
        "initial_val_loss": result["initial_val_loss"],
        "final_val_loss": result["final_val_loss"],
        "trainable_params": result["trainable_params"],
        "train_seconds": result["train_seconds"],
    }
    # KFP metrics must be finite numbers; a figure that cannot be computed is left out.
    return {k: float(v) for k, v in figures.items() if v is not None and math.isfinite(v)}
