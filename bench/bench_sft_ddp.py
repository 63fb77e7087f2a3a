"""SFT throughput at 1 and N processes under torchrun (DDP): samples per second, as the Trainer
counts them (optimiser steps x per-device batch x processes / training seconds).

Each run is `torchrun --standalone --nproc-per-node N -m pushgen train-generator ...` on the same
table, the same per-device batch and steps; each process gets `--threads` threads (1 by default),
and on GPU one GPU each. The figures go to a JSON file (`--json`) and to `make bench`'s summary.

    python -m bench.bench_sft_ddp                              # CPU: 1 and 2 processes
    python -m bench.bench_sft_ddp --tiny --steps 20 --json docs/results/sft_ddp_tiny.json
    python -m bench.bench_sft_ddp --device cuda --procs 1,8    # a GPU machine: 1 and 8 GPUs
    python -m bench.bench_sft_ddp --device cuda --model HF_ID --batch-size 8 --steps 30

The default base is the packaged SmolLM2-135M-Instruct with LoRA r=16 (the project default).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.record import record

CATEGORIES = ("Humor", "Practical", "Suspense", "Curiosity")


def sft_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """A synthetic SFT table (varied captions and pushes, confidence weights)."""
    import random

    rng = random.Random(seed)
    words = "chef cat dog city night kids cook fold sleep surfer wave dumplings market".split()
    out = []
    for i in range(rows):
        caption = " ".join(rng.choices(words, k=rng.randint(8, 24)))
        push = " ".join(rng.choices(words, k=rng.randint(4, 10)))
        out.append(
            {
                "video_id": f"v{i // 4}",
                "caption": caption,
                "category": CATEGORIES[i % len(CATEGORIES)],
                "text": push,
                "confidence": rng.uniform(0.2, 1.0),
            }
        )
    return pd.DataFrame(out)


def run(procs: int, args: argparse.Namespace, data: Path, work: Path) -> dict:
    """One training run at `procs` processes; its throughput figures."""
    out = work / f"gen-{procs}"
    threads = args.threads or max(1, (os.cpu_count() or 1) // procs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
        *("--nproc-per-node", str(procs), "-m", "pushgen", "train-generator"),
        *("--data", str(data), "--out", str(out), "--base-model", args.model),
        *("--max-steps", str(args.steps), "--batch-size", str(args.batch_size)),
        *("--val-fraction", "0", "--samples", "0", "--device", args.device),
    ]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=not args.verbose)
    wall = time.perf_counter() - started
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "processes": procs,
        "threads_per_process": threads,
        "samples_per_second": metrics["train_samples_per_second"],
        "samples": args.steps * args.batch_size * procs,
        "train_seconds": metrics["train_seconds"],
        "wall_seconds": round(wall, 2),
        "final_train_loss": metrics["final_train_loss"],
    }


def main(argv: list[str] | None = None) -> int:
    """Measure, print a table, write `--json`."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--procs", default="1,2", help="process counts, comma-separated")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--model", default="default", help="base model (default: SmolLM2-135M)")
    p.add_argument(
        "--tiny", action="store_true", help="the tests' tiny Llama (2 layers, hidden 32) instead"
    )
    p.add_argument("--steps", type=int, default=8, help="optimiser steps per run")
    p.add_argument("--batch-size", type=int, default=8, help="samples per process per step")
    p.add_argument("--rows", type=int, default=512, help="rows in the synthetic SFT table")
    p.add_argument("--json", dest="json_out", default="docs/results/sft_ddp.json")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per process (0: cores / processes; on a shared machine OpenMP's spinning "
        "threads collapse under load, so the default is 1)",
    )
    p.add_argument("--verbose", action="store_true", help="show each run's output")
    args = p.parse_args(argv)
    procs = [int(n) for n in args.procs.split(",")]
    with tempfile.TemporaryDirectory(prefix="pushgen-bench-ddp-") as tmp:
        data = Path(tmp) / "sft.parquet"
        sft_table(args.rows).to_parquet(data)
        if args.tiny:
            from pushgen.core.models import build_tiny_causal_lm

            args.model = str(build_tiny_causal_lm(Path(tmp) / "tiny-llama"))
        rows = [run(n, args, data, Path(tmp)) for n in procs]
    base = rows[0]["samples_per_second"]
    print(f"{'processes':>10}{'threads':>9}{'samples/s':>11}{'speed-up':>10}{'wall s':>9}")
    for r in rows:
        r["speedup"] = round(r["samples_per_second"] / base, 3)
        print(
            f"{r['processes']:>10}{r['threads_per_process']:>9}{r['samples_per_second']:>11.2f}"
            f"{r['speedup']:>10.2f}{r['wall_seconds']:>9.1f}"
        )
        record(
            "sft_ddp",
            f"{args.device} x{r['processes']}: {r['samples_per_second']:.1f} samples/s",
            seconds=r["samples"] / r["samples_per_second"],
            baseline_seconds=r["samples"] / base,
            baseline="1 process, same samples",
        )
    result = {
        "machine": platform.node(),
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 1),
        "device": args.device,
        "model": "tiny Llama (build_tiny_causal_lm)" if args.tiny else args.model,
        "steps": args.steps,
        "batch_size_per_process": args.batch_size,
        "runs": rows,
    }
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
