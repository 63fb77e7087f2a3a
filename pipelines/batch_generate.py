"""The `batch_generate` pipeline: pushes for a table of items, one shard per parallel step.

    plan_shards --> ParallelFor(shard) { generate_shard (retried alone, 1 GPU on a cluster) }
               --> merge_shards (after every shard: pushes.parquet + summary.json)

Every shard writes its own result table to the output store; a finished shard is skipped, so a
retried step (`set_retry`) or a rerun of the whole pipeline redoes only the missing shards, and
the merge checks every item is there exactly once. `make_pipeline(gpus=1)` asks one GPU per
shard step (`engine="vllm"` then runs vLLM where the image has it); the default is CPU.

    compile_pipeline("batch_generate.yaml", gpus=1)
    run_local({"items": "items.parquet", "models": "runs/demo/models", "out_uri": "runs/batch"},
              "runs/batch-pipeline")
"""

from pathlib import Path
from typing import Any

from kfp import compiler, dsl

from components.batch_generate import generate_shard, merge_shards, plan_shards
from pushgen.core.errors import ConfigError

PIPELINE_NAME = "batch-generate"
SHARD_RETRIES = 2  # a failed shard is retried alone this many times


def make_pipeline(gpus: int = 0) -> Any:
    """The pipeline, with `gpus` GPUs per shard step (0: CPU)."""

    @dsl.pipeline(name=PIPELINE_NAME, description="sharded batch generation of pushes")
    def batch_generate(
        items: str,
        models: str,
        out_uri: str,
        shards: int = 2,
        engine: str = "transformers",
        max_new_tokens: int = 24,
        seed: int = 0,
    ) -> str:
        plan = plan_shards(items=items, shards=shards)
        with dsl.ParallelFor(plan.output) as shard:
            gen = generate_shard(
                items=items,
                models=models,
                out_uri=out_uri,
                shard=shard,
                shards=shards,
                engine=engine,
                max_new_tokens=max_new_tokens,
                seed=seed,
            )
            gen.set_retry(num_retries=SHARD_RETRIES, backoff_duration="30s")
            gen.set_caching_options(False)  # the store decides what is done, not kfp's cache
            if gpus:
                gen.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(gpus)
        merge = merge_shards(
            items=items, out_uri=out_uri, shards=shards, done=dsl.Collected(gen.outputs["Output"])
        )
        merge.set_caching_options(False)
        return merge.outputs["Output"]

    return batch_generate


batch_generate = make_pipeline()


def compile_pipeline(path: str | Path, gpus: int = 0) -> Path:
    """Write the pipeline spec (YAML) to `path`."""
    compiler.Compiler().compile(make_pipeline(gpus), str(path))
    return Path(path)


def run_local(params: dict, pipeline_root: str | Path) -> dict:
    """Run it with kfp's local SubprocessRunner; returns the merge's summary."""
    import json

    from pipelines.training import run_in_process

    if int(params.get("shards", 2)) < 1:
        raise ConfigError(f"shards must be at least 1, got {params['shards']}")
    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return json.loads(run_in_process(batch_generate, params, root).output)
