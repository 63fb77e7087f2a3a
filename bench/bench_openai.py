"""Generation over the OpenAI completions path (transformer -> generator) against the direct path
(the generator's own v1 route), K=8 candidates x 24 new tokens, and batch generation's items/s at
1 and 2 shards, on this machine's CPU.

    python -m bench.bench_openai [--tiny] [--requests 8] [--items 8] [--out docs/results/openai_bench.json]

Both paths run on one local stack (real KServe ModelServers on 127.0.0.1); the OpenAI figure is
the transformer's own `timings_ms.generate` (one completions request for the 8 prompts, the
prompts built in the transformer), the direct figure the client's time for the generator's v1
predict with the same caption. Batch runs `serving.batch` shard by shard in this process (the
pipeline's steps, without kfp's process start-up). Default models: SmolLM2 + MiniLM at real size
(`serving.tiny.build_default_models`); `--tiny` for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from bench.record import record

CAPTIONS = [
    "A chef in Rome folds 5 kinds of dumplings for her grandmother",
    "A surfer in Portugal rides a huge wave at sunrise",
    "Kids build a cardboard city in the living room",
    "An old dog learns to swim in a mountain lake",
    "A street artist paints a mural of a blue whale",
    "A grandmother teaches her grandson to bake bread",
    "A cat watches a robot vacuum clean the kitchen",
    "Two friends cycle across the Alps in winter",
]


def _pct(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny models (smoke run)")
    p.add_argument("--requests", type=int, default=8)
    p.add_argument("--items", type=int, default=8)
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)

    from serving.batch import BatchConfig, merge_shards, run_shard
    from serving.stack import LocalStack, StackConfig
    from serving.tiny import build_default_models, build_tiny_models

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = (build_tiny_models if args.tiny else build_default_models)(tmp / "models")
        cfg = StackConfig(log_dir=tmp / "log", max_new_tokens=24, explore_epsilon=0.0)
        openai_ms, direct_ms = [], []
        with LocalStack(models, None, config=cfg) as stack:
            for i in range(args.requests + 1):  # the first of each is a warm-up
                caption = CAPTIONS[i % len(CAPTIONS)]
                answer = httpx.post(
                    f"{stack.url}/v1/models/pushgen:predict",
                    json={"caption": caption},
                    timeout=300,
                ).json()["predictions"][0]
                t0 = time.perf_counter()
                httpx.post(
                    f"{stack.generator_url}/v1/models/generator:predict",
                    json={"caption": caption},
                    timeout=300,
                ).raise_for_status()
                if i:
                    openai_ms.append(answer["timings_ms"]["generate"])
                    direct_ms.append((time.perf_counter() - t0) * 1000)
        items = pd.DataFrame(
            {
                "video_id": [f"v{i:03d}" for i in range(args.items)],
                "caption": [CAPTIONS[i % len(CAPTIONS)] + f" ({i})" for i in range(args.items)],
            }
        )
        items.to_parquet(tmp / "items.parquet")
        batch = {}
        for shards in (1, 2):
            out = str(tmp / f"batch{shards}")
            timings = [
                run_shard(tmp / "items.parquet", models, out, s, shards, BatchConfig())
                for s in range(shards)
            ]
            merge_shards(tmp / "items.parquet", out, shards)
            # shards run in parallel steps: the batch takes as long as its slowest shard
            slowest = max(t["seconds"] for t in timings)
            batch[shards] = {"items_per_s": args.items / slowest, "slowest_shard_s": slowest}
    (o50, o95), (d50, d95) = _pct(openai_ms), _pct(direct_ms)
    figures = {
        "models": "tiny"
        if args.tiny
        else "SmolLM2-135M + MiniLM (serving.tiny.build_default_models)",
        "k": 8,
        "max_new_tokens": 24,
        "requests": args.requests,
        "openai_generate_ms": {"p50": round(o50, 1), "p95": round(o95, 1)},
        "direct_generate_ms": {"p50": round(d50, 1), "p95": round(d95, 1)},
        "batch_items": args.items,
        "batch": {str(k): {n: round(v, 3) for n, v in b.items()} for k, b in batch.items()},
    }
    print("| path | p50 ms | p95 ms |\n| --- | --- | --- |")
    print(f"| OpenAI completions (transformer -> generator) | {o50:.0f} | {o95:.0f} |")
    print(f"| direct v1 predict | {d50:.0f} | {d95:.0f} |")
    print("| batch shards | items/s (slowest shard) |\n| --- | --- |")
    for k, b in batch.items():
        print(f"| {k} | {b['items_per_s']:.2f} |")
    record("openai", "K=8 x 24 tokens, OpenAI path p50", o50 / 1000, d50 / 1000, "direct v1")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
