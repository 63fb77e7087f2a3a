"""KFP components of batch generation: plan the shards, generate one shard, merge them.

Thin steps over `serving.batch` (tested directly): `plan_shards` checks the items table and
the shard count before any generation is spent and returns the shard indices a `dsl.ParallelFor`
fans out over; `generate_shard` writes one shard's result table to the output store (a finished
shard is skipped, so a retried or rerun step redoes only what is missing); `merge_shards` checks
every item is there exactly once and writes `pushes.parquet` and `summary.json`.
"""

from kfp import dsl
from kfp.dsl import Metrics, Output

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def plan_shards(items: str, shards: int) -> list:
    """The shard indices 0..shards-1, once the items table reads (video_id, caption)."""
    from serving.batch import check_shards, load_items

    check_shards(shards)
    load_items(items)
    return list(range(shards))


@dsl.component(**COMPONENT_DEFAULTS)
def generate_shard(
    items: str,
    models: str,
    out_uri: str,
    shard: int,
    shards: int,
    metrics: Output[Metrics],
    engine: str = "transformers",
    max_new_tokens: int = 24,
    seed: int = 0,
) -> str:
    """Generate, guard and rank shard `shard` of `shards`; its summary as JSON."""
    import json

    from pushgen.core.run_report import log_metrics
    from serving.batch import BatchConfig, run_shard

    cfg = BatchConfig(engine=engine, max_new_tokens=max_new_tokens, seed=seed)
    done = run_shard(items, models, out_uri, shard, shards, cfg)
    log_metrics(metrics, {k: v for k, v in done.items() if isinstance(v, int | float)})
    return json.dumps(done)


@dsl.component(**COMPONENT_DEFAULTS)
def merge_shards(
    items: str, out_uri: str, shards: int, done: list, metrics: Output[Metrics]
) -> str:
    """Merge every shard (after all of `done`); the summary as JSON."""
    import json

    from pushgen.core.run_report import log_metrics
    from serving.batch import merge_shards as merge

    summary = merge(items, out_uri, shards)
    log_metrics(metrics, {k: v for k, v in summary.items() if isinstance(v, int | float)})
    return json.dumps(summary)
