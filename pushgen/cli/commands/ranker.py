"""`pushgen train-ranker` and `pushgen eval-ranker`: the pairwise reward model from A/B tests.

    pushgen train-ranker --ab-tests ab_tests.parquet --out runs/ranker --epochs 2 --pointwise
    pushgen train-ranker --ab-tests data/upworthy_ab.parquet --out runs/rk-upworthy
    pushgen eval-ranker --model runs/ranker --ab-tests ab_tests.parquet --world sim/world.json \\
        --json runs/ranker/eval.json

The model directory keeps the story split of its training run, so `eval-ranker` on the same file
scores only held-out stories (and fits the surface-feature floor on the training stories).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pushgen.core.errors import ConfigError
from pushgen.core.settings import add_options, in_cli_terms, options_from
from pushgen.ranker.config import RankerTrainConfig
from pushgen.ranker.pairs import PairConfig, StorySplitConfig
from pushgen.ranker.recipe import RankerRecipeConfig

# RankerTrainConfig fields that are `train-ranker` options, with the flags that differ from
# --field-name
TRAIN_OPTIONS: dict[str, str | None] = {
    "backbone": None,
    "head": None,
    "listwise_loss": None,
    "positions": None,
    "max_set_size": None,
    "pool_layers": None,
    "epochs": None,
    "batch_size": None,
    "learning_rate": "--lr",
    "head_learning_rate": "--head-lr",
    "max_length": None,
    "label": None,
    "max_train_pairs": None,
    "seed": None,
    "device": None,
}
PAIR_OPTIONS = ("max_p_value", "weight")  # PairConfig fields (defaults: the recipe's pairs)
SPLIT_OPTIONS = ("val_fraction", "seed")  # StorySplitConfig fields (--seed is shared)
RECIPE_OPTIONS = ("pointwise", "exclude_nonrandom")  # RankerRecipeConfig switches


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train-ranker` and `eval-ranker` subcommands."""
    t = subparsers.add_parser(
        "train-ranker",
        help="train the pairwise reward model (cross-encoder) on A/B tests",
        description="Build preference pairs from arms of the same A/B test, split by story, and "
        "fine-tune a BERT-style cross-encoder [CLS] a [SEP] b [SEP] -> P(a beats b).",
    )
    t.add_argument("--ab-tests", required=True, help="ab_tests table, or the Upworthy archive")
    t.add_argument("--out", required=True, help="output model directory")
    t.add_argument("--format", default="auto", choices=("auto", "ab_tests", "upworthy"))
    t.add_argument(
        "--captions",
        help="captions (or videos) table: the caption joins each pair as context (by video_id)",
    )
    recipe = RankerRecipeConfig()
    add_options(t, recipe.train, TRAIN_OPTIONS)
    add_options(t, recipe.pairs, PAIR_OPTIONS)
    add_options(t, recipe.split, ("val_fraction",))  # --seed is added with the train options
    add_options(t, recipe, RECIPE_OPTIONS)
    t.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "eval-ranker",
        help="evaluate a trained ranker on A/B tests (accuracy, AUC, calibration, selection)",
    )
    e.add_argument("--model", required=True, help="model directory from train-ranker")
    e.add_argument("--ab-tests", required=True, help="ab_tests table, or the Upworthy archive")
    e.add_argument("--format", default="auto", choices=("auto", "ab_tests", "upworthy"))
    e.add_argument("--captions", help="captions (or videos) table, as given to train-ranker")
    e.add_argument("--json", required=True, dest="json_out", help="where to write the report")
    e.add_argument("--world", help="simulator world (truth: Bayes-optimal accuracy, true CTRs)")
    e.add_argument("--significance", type=float, default=0.05, help="p-value for 'significant'")
    e.add_argument("--all-tests", action="store_true", help="ignore the training split")
    e.add_argument("--device", help="cpu / cuda")
    e.set_defaults(func=run_eval)


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not lo < value <= hi:
        raise ConfigError(f"--{name} must be in ({lo}, {hi}], got {value}")


def recipe_from_args(args: argparse.Namespace) -> RankerRecipeConfig:
    """The training recipe the options ask for; a bad value is reported under its flag."""
    try:
        return RankerRecipeConfig(
            pairs=PairConfig(**options_from(args, PAIR_OPTIONS)),
            split=StorySplitConfig(**options_from(args, SPLIT_OPTIONS)),
            train=RankerTrainConfig(**options_from(args, TRAIN_OPTIONS)),
            **options_from(args, RECIPE_OPTIONS),
        )
    except ConfigError as exc:
        names = [*TRAIN_OPTIONS, *PAIR_OPTIONS, *SPLIT_OPTIONS]
        raise in_cli_terms(exc, names, TRAIN_OPTIONS) from None


def run_train(args: argparse.Namespace) -> int:
    """Train and save the ranker; print the headline validation figures."""
    cfg = recipe_from_args(args)
    from pushgen.core.distributed import ranks
    from pushgen.ranker.recipe import read_ab_tests, train_from_ab_tests

    source = read_ab_tests(args.ab_tests, args.format, args.captions)
    metrics = train_from_ab_tests(source, args.out, cfg)
    if not ranks().is_main:
        return 0  # not rank 0 under torchrun: rank 0 writes and reports
    val = metrics.get("val", {})
    print(
        f"trained on {metrics['train_pairs']} pairs ({metrics['train_examples']} examples, "
        f"{metrics['train_examples_per_s']:.1f}/s); validation accuracy "
        f"{val.get('accuracy', float('nan')):.3f} on {val.get('pairs', 0)} pairs -> {args.out}"
    )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate, write the JSON report, print the headline figures."""
    _check_range("significance", args.significance, 0.0, 1.0)
    from pushgen.ranker.evaluate import EvalConfig, evaluate_model_dir, headline_lines
    from pushgen.ranker.recipe import read_ab_tests

    source = read_ab_tests(args.ab_tests, args.format, args.captions)
    world = None
    if args.world:
        from pushgen.data.simulator import World

        if not Path(args.world).exists():
            raise ConfigError(f"no such world file: {args.world}")
        world = World.load(args.world)
    cfg = EvalConfig(
        significance=args.significance, use_split=not args.all_tests, device=args.device
    )
    report = evaluate_model_dir(args.model, source, cfg, world=world)
    out = Path(args.json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    for line in headline_lines(report):
        print(line)
    print(f"report -> {out}")
    return 0
