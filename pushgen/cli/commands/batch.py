"""`pushgen generate-batch`: pushes for a whole items table, sharded, as the `batch_generate`
pipeline makes them (serving/batch.py), here in this process or (`--kfp`) through kfp's local
runner, one step per shard.

    pushgen generate-batch --items items.parquet --model runs/demo/models --out runs/batch \
        [--shards 2] [--engine transformers|vllm] [--kfp]

`--model` is a release's models directory (generator/ and ranker/). The output directory gets
one table per shard (shards/), `pushes.parquet` (one row per item), `candidates.parquet`,
`set_aside.parquet` (rows refused, with the reason) and `summary.json`. A rerun skips the shards
already written. Bad input (no caption column, an unknown release, shards < 1) exits 2.
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    """Add `pushgen generate-batch`."""
    p = sub.add_parser("generate-batch", help="pushes for a table of items, sharded")
    p.add_argument("--items", required=True, help="parquet or csv with video_id, caption")
    p.add_argument("--model", required=True, help="release models dir (generator/, ranker/)")
    p.add_argument("--out", required=True, help="output directory (or store URI)")
    p.add_argument("--shards", type=int, default=1, help="how many shards (parallel steps)")
    p.add_argument("--engine", default="transformers", choices=["transformers", "vllm"])
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kfp", action="store_true", help="run the pipeline with kfp's local runner")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the inputs, generate every shard not yet written, merge, print the summary."""
    from pathlib import Path

    from pushgen.core.errors import PushgenError
    from serving.batch import BatchConfig, check_shards, load_items, merge_shards, run_shard

    check_shards(args.shards)
    load_items(args.items)  # no caption column: one line, exit 2, before any model loads
    models = Path(args.model)
    if not (models / "generator").is_dir() or not (models / "ranker").is_dir():
        raise PushgenError(f"unknown release {args.model}: no generator/ and ranker/ in it")
    cfg = BatchConfig(engine=args.engine, max_new_tokens=args.max_new_tokens, seed=args.seed)
    out = args.out if "://" in args.out else str(Path(args.out).resolve())
    if args.kfp:
        from pipelines.batch_generate import run_local

        params = {
            "items": str(Path(args.items).resolve()),
            "models": str(models.resolve()),
            "out_uri": out,
            "shards": args.shards,
            "engine": args.engine,
            "max_new_tokens": args.max_new_tokens,
            "seed": args.seed,
        }
        summary = run_local(params, Path(out + "-kfp") if "://" not in out else "runs/kfp")
    else:
        for shard in range(args.shards):
            run_shard(args.items, models, out, shard, args.shards, cfg)
        summary = merge_shards(args.items, out, args.shards)
    print(json.dumps(summary, indent=2))
    return 0
