"""`pushgen train-generator` and `pushgen eval-generator`: category-controlled LoRA SFT.

    pushgen simulate --out runs/sim                      # (or real tables)
    pushgen train-generator --sim runs/sim --out runs/generator --max-steps 40
    pushgen train-generator --data labelled.parquet --captions captions.parquet --out runs/gen
    pushgen eval-generator --model runs/generator --sim runs/sim --n-videos 24 \\
        --json runs/generator/eval.json

`--data` is a table with video_id, category, text, confidence (and caption, or pass
`--captions`); `--sim` builds it from a simulator dir (caption, clean, label). Training prints
sample candidates per category for a few held-out videos at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from pushgen.core.errors import ConfigError
from pushgen.core.settings import add_options, in_cli_terms, options_from
from pushgen.generator.config import GeneratorTrainConfig

# GeneratorTrainConfig fields that are `train-generator` options, with the flags that differ
# from --field-name
TRAIN_OPTIONS: dict[str, str | None] = {
    "base_model": None,
    "max_steps": None,
    "batch_size": None,
    "learning_rate": "--lr",
    "lora_r": None,
    "lora_dropout": None,
    "val_fraction": None,
    "eval_steps": None,
    "max_length": None,
    "max_eval_rows": None,
    "seed": None,
    "device": None,
    "bf16": None,
    "save_merged": None,
    "fsdp": None,
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train-generator` and `eval-generator` subcommands."""
    t = subparsers.add_parser(
        "train-generator",
        help="LoRA fine-tune the push generator (category-controlled, confidence-weighted)",
        description="Supervised LoRA fine-tuning on prompts task + category + caption -> push, "
        "loss on push tokens only, weighted per sample by confidence; validation held out by video.",
    )
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="table: video_id, category, text, confidence[, caption]")
    src.add_argument("--sim", help="simulator output dir (videos/pushes): caption, clean, label")
    t.add_argument("--captions", help="captions table (video_id, caption) when --data lacks them")
    t.add_argument("--out", required=True, help="output directory (adapter, tokenizer, metrics)")
    train = GeneratorTrainConfig()
    add_options(t, train, TRAIN_OPTIONS)
    add_options(t, train.template, {"order": "--prompt-order"})
    t.add_argument("--categories", help="comma-separated control categories (default: in data)")
    t.add_argument("--max-rows", type=int, help="subsample training rows (CPU budget)")
    t.add_argument(
        "--weighting",
        default="data",
        choices=("data", "bounded", "literal", "none"),
        help="per-sample loss weight: the data's confidence (default), recomputed "
        "bounded/literal from ctr and pv, or none (all 1)",
    )
    t.add_argument("--samples", type=int, default=2, help="held-out videos to show candidates for")
    t.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "eval-generator",
        help="evaluate base vs fine-tuned generator on the simulator",
        description="For held-out videos, one candidate per category from the base model and "
        "the fine-tuned one: controllability, style mix, beat-baseline rate, diversity, guard.",
    )
    e.add_argument("--model", required=True, help="train-generator output dir")
    e.add_argument("--sim", required=True, help="simulator dir (videos, pushes, world.json)")
    e.add_argument("--base-model", help="base to compare against (default: the model's own base)")
    e.add_argument("--no-base", action="store_true", help="evaluate the fine-tuned model only")
    e.add_argument("--n-videos", type=int, default=24)
    e.add_argument("--max-new-tokens", type=int, default=32)
    e.add_argument("--temperature", type=float, default=0.8)
    decoding = e.add_mutually_exclusive_group()
    decoding.add_argument(
        "--greedy", action="store_true", help="greedy decoding, as served (the default)"
    )
    decoding.add_argument(
        "--sample", action="store_true", help="sample at --temperature instead of greedy"
    )
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", help="cpu / cuda")
    e.add_argument("--json", dest="json_out", help="write the report here")
    e.add_argument("--candidates", help="write every scored candidate here (parquet)")
    e.set_defaults(func=run_eval)


def _training_table(args: argparse.Namespace):
    """(SFT table, rows rejected before training) from --data/--captions or --sim."""
    import pandas as pd

    from pushgen.data.contracts import read_table
    from pushgen.generator.sft import build_sft_table

    if args.sim:
        from pushgen.generator.sim_data import load_simulation_tables, sft_table_from_tables

        tables = load_simulation_tables(args.sim)
        return sft_table_from_tables(tables["videos"], tables["pushes"])
    data = read_table(args.data)
    if args.captions:
        return build_sft_table(data, read_table(args.captions, "captions"))
    return data, pd.DataFrame()


def config_from_args(args: argparse.Namespace) -> GeneratorTrainConfig:
    """The training config the options ask for; a bad value is reported under its flag."""
    from pushgen.generator.prompts import PromptTemplate

    try:
        return GeneratorTrainConfig(
            **options_from(args, TRAIN_OPTIONS),
            template=PromptTemplate(order=args.order),
            categories=[c.strip() for c in args.categories.split(",")] if args.categories else None,
            lora_alpha=2 * args.lora_r,  # keep the effective LoRA scale alpha / r fixed
        )
    except ConfigError as exc:
        raise in_cli_terms(exc, TRAIN_OPTIONS, TRAIN_OPTIONS) from None


def run_train(args: argparse.Namespace) -> int:
    """Train, save, print the loss curve ends and sample candidates per category."""
    cfg = config_from_args(args)
    from pushgen.core.distributed import ranks
    from pushgen.data.contracts import write_rejected
    from pushgen.generator.sft import apply_weighting, train_generator

    table, upstream_rejected = _training_table(args)
    table, weight_column = apply_weighting(table, args.weighting)
    cfg = dataclasses.replace(cfg, weight_column=weight_column)
    if args.max_rows and len(table) > args.max_rows:
        table = table.sample(args.max_rows, random_state=args.seed)
    metrics = train_generator(table, args.out, cfg)
    if not ranks().is_main:  # under torchrun rank 0 alone writes and reports
        return 0
    if len(upstream_rejected):
        write_rejected(upstream_rejected, Path(args.out) / "upstream", step="prepare-sft-data")
    print(
        f"trained {metrics['steps']} steps on {metrics['n_train']} pushes "
        f"({metrics['n_train_videos']} videos; {metrics['n_rejected']} rows rejected) "
        f"in {metrics['train_seconds']:.0f} s"
    )
    print(f"train loss {metrics['first_train_loss']:.3f} -> {metrics['final_train_loss']:.3f}")
    if metrics["val_loss"]:
        print(f"val loss   {metrics['initial_val_loss']:.3f} -> {metrics['final_val_loss']:.3f}")
    if args.samples > 0:
        _print_samples(args, table, metrics)
    print(f"wrote {args.out}")
    return 0


def _print_samples(args: argparse.Namespace, table, metrics: dict) -> None:
    """Candidates per category from the trained model for a few held-out captions."""
    from pushgen.generator.generate import CandidateGenerator, GenerationConfig

    split = json.loads((Path(args.out) / "split.json").read_text())
    held_out = split["val_videos"] or split["train_videos"]
    captions = table.drop_duplicates("video_id").set_index("video_id")["caption"]
    generator = CandidateGenerator.from_pretrained(args.out, device=args.device)
    for vid in held_out[: args.samples]:
        caption = str(captions[vid])
        print(f"\n{vid}: {caption[:110]}{'...' if len(caption) > 110 else ''}")
        cands = generator.generate(caption, metrics["categories"], config=GenerationConfig())
        for c in cands:
            flag = "" if c.guard_ok else f"   [guard: {'; '.join(c.guard_reasons)}]"
            print(f"  {c.category:<15} {c.text}{flag}")


def run_eval(args: argparse.Namespace) -> int:
    """Generate for held-out videos with base and fine-tuned models; print and save the report."""
    if args.n_videos < 1:
        raise ConfigError("--n-videos must be at least 1")
    from pushgen.core.errors import PushgenError
    from pushgen.data.contracts import write_table
    from pushgen.data.simulator import World
    from pushgen.generator.evaluate import (
        GeneratorEvalConfig,
        evaluate_generators,
        pick_eval_videos,
        report_table,
    )
    from pushgen.generator.generate import GENERATOR_MANIFEST, CandidateGenerator, GenerationConfig
    from pushgen.generator.sim_data import captions_for, load_simulation_tables

    model_dir = Path(args.model)
    manifest_path = model_dir / GENERATOR_MANIFEST
    if not manifest_path.exists():
        raise PushgenError(f"{model_dir} is not a train-generator output (no {GENERATOR_MANIFEST})")
    manifest = json.loads(manifest_path.read_text())
    tables = load_simulation_tables(args.sim)
    world = World.load(Path(args.sim) / "world.json")
    split_path = model_dir / "split.json"
    split = json.loads(split_path.read_text()) if split_path.exists() else {}
    videos = pick_eval_videos(
        tables["videos"]["video_id"].tolist(),
        split.get("val_videos", []),
        split.get("train_videos", []),
        args.n_videos,
        args.seed,
    )
    if not videos:
        raise PushgenError("no held-out video to evaluate on (all were used for training)")
    chosen = tables["videos"][tables["videos"]["video_id"].isin(videos)]
    captions = dict(zip(*captions_for(chosen)[["video_id", "caption"]].T.values, strict=True))
    generation = GenerationConfig(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        do_sample=args.sample,
        seed=args.seed,
    )
    cfg = GeneratorEvalConfig(
        n_videos=args.n_videos, categories=list(manifest["categories"]), generation=generation
    )
    generators = {}
    if not args.no_base:
        base = args.base_model or manifest["base_model"]
        generators["base"] = CandidateGenerator.from_pretrained(base, device=args.device)
    generators["sft"] = CandidateGenerator.from_pretrained(model_dir, device=args.device)
    if "base" in generators:
        # the base sees the same prompt format, so only the fine-tuning differs
        generators["base"].template = generators["sft"].template
        generators["base"].category_descriptions = generators["sft"].category_descriptions
    report, candidates = evaluate_generators(generators, captions, world, tables["pushes"], cfg)
    print(report_table(report))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json_out}")
    if args.candidates:
        write_table(candidates, args.candidates)
    return 0
