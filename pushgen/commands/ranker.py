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

from pushgen.errors import ConfigError
from pushgen.ranker.model import HEADS
from pushgen.ranker.train import RankerTrainConfig


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
    t.add_argument("--backbone", help="HF encoder id or path (default: packaged all-MiniLM-L6-v2)")
    t.add_argument(
        "--head",
        default="segment_diff",
        choices=HEADS,
        help="cls: [CLS] classifier; segment_diff: score(a) - score(b) over a's and b's tokens; "
        "listwise: all candidates of a test in one sequence, one pass, K scores",
    )
    t.add_argument(
        "--listwise-loss",
        default=RankerTrainConfig.listwise_loss,
        choices=("pairwise", "plackett_luce"),
        help="listwise: weighted logistic over all arm pairs, or Plackett-Luce on the CTR order",
    )
    t.add_argument(
        "--positions",
        default=RankerTrainConfig.positions,
        choices=("reset", "sequential"),
        help="listwise: restart position ids per candidate (order-free) or number them in order",
    )
    t.add_argument(
        "--max-set-size",
        type=int,
        default=RankerTrainConfig.max_set_size,
        help="listwise: candidates per training sequence (larger tests become windows)",
    )
    t.add_argument(
        "--pool-layers",
        type=int,
        default=RankerTrainConfig.pool_layers,
        help="segment_diff: average the last N layers' token states before pooling",
    )
    t.add_argument("--epochs", type=float, default=RankerTrainConfig.epochs)
    t.add_argument("--batch-size", type=int, default=RankerTrainConfig.batch_size)
    t.add_argument(
        "--lr", type=float, default=RankerTrainConfig.learning_rate, help="encoder's peak rate"
    )
    t.add_argument(
        "--head-lr",
        type=float,
        default=RankerTrainConfig.head_learning_rate,
        help="the fresh head's peak rate (default: --lr)",
    )
    t.add_argument(
        "--max-length", type=int, default=RankerTrainConfig.max_length, help="tokens per pair"
    )
    t.add_argument("--max-p-value", type=float, default=0.1, help="train on pairs with p <= this")
    t.add_argument("--weight", default="uniform", choices=("uniform", "confidence", "posterior"))
    t.add_argument("--label", default="hard", choices=("hard", "posterior"))
    t.add_argument("--max-train-pairs", type=int, help="subsample training pairs (CPU budget)")
    t.add_argument("--val-fraction", type=float, default=0.2, help="share of tests held out")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", help="cpu / cuda (default: cuda when available)")
    t.add_argument("--pointwise", action="store_true", help="also train the pointwise ablation")
    t.add_argument(
        "--exclude-nonrandom",
        action="store_true",
        help="leave tests flagged for non-random assignment (Upworthy 2013-26..2014-02) out of training",
    )
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


def run_train(args: argparse.Namespace) -> int:
    """Train and save the ranker; print the headline validation figures."""
    _check_range("max-p-value", args.max_p_value, 0.0, 1.0)
    _check_range("val-fraction", args.val_fraction, 0.0, 0.99)
    from pushgen.ranker.pairs import PairConfig, StorySplitConfig
    from pushgen.ranker.recipe import RankerRecipeConfig, read_ab_tests, train_from_ab_tests
    from pushgen.ranker.train import RankerTrainConfig

    source = read_ab_tests(args.ab_tests, args.format, args.captions)
    cfg = RankerRecipeConfig(
        pairs=PairConfig(max_p_value=args.max_p_value, weight=args.weight),
        split=StorySplitConfig(val_fraction=args.val_fraction, seed=args.seed),
        train=RankerTrainConfig(
            backbone=args.backbone,
            head=args.head,
            pool_layers=args.pool_layers,
            listwise_loss=args.listwise_loss,
            positions=args.positions,
            max_set_size=args.max_set_size,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            head_learning_rate=args.head_lr,
            max_length=args.max_length,
            label=args.label,
            max_train_pairs=args.max_train_pairs,
            seed=args.seed,
            device=args.device,
        ),
        pointwise=args.pointwise,
        exclude_nonrandom=args.exclude_nonrandom,
    )
    metrics = train_from_ab_tests(source, args.out, cfg)
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
        from pushgen.simulator import World

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
