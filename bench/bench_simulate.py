"""Simulator throughput: pushes simulated per second (target: 1,000,000 pushes in <= 60 s).

    python -m bench.bench_simulate [--pushes 1000000]

The naive baseline is the per-row scorer `true_ctr` (the parser users call on generated text),
timed on a sample and extrapolated; the simulator computes the same truth with the per-video part
hoisted out of the loop.
"""

from __future__ import annotations

import argparse
import resource
import time

from rich.console import Console
from rich.table import Table

from bench.record import record
from pushgen.data.simulator import SimConfig, simulate, true_ctr


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=1_000_000, help="pushes to simulate")
    args = parser.parse_args(argv)
    n_videos = max(1, args.pushes // 8)

    start = time.perf_counter()
    sim = simulate(SimConfig(n_videos=n_videos, seed=0))
    elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    sample = sim.pushes.sample(2000, random_state=0)
    t0 = time.perf_counter()
    for v, t in zip(sample.video_id, sample.text, strict=True):
        true_ctr(sim.world, v, t)
    naive_per_row = (time.perf_counter() - t0) / len(sample)

    table = Table(
        title=f"simulate {len(sim.pushes):,} pushes, {n_videos:,} videos (2-core target: <= 60 s per 1M)"
    )
    for col in ("what", "seconds", "pushes/s", "peak RSS MB"):
        table.add_column(col, justify="right")
    table.add_row(
        "simulate (vectorised)",
        f"{elapsed:.1f}",
        f"{len(sim.pushes) / elapsed:,.0f}",
        f"{peak_mb:,.0f}",
    )
    naive_total = naive_per_row * len(sim.pushes)
    table.add_row(
        "naive: true_ctr per row (extrapolated, truth only)",
        f"{naive_total:.1f}",
        f"{1 / naive_per_row:,.0f}",
        "",
    )
    table.add_row(
        "ratio naive/vectorised (truth-only naive vs full simulation)",
        f"{naive_total / elapsed:.2f}x",
        "",
        "",
    )
    Console().print(table)
    record("simulate", f"{len(sim.pushes):,} pushes", elapsed, naive_total, "true_ctr per row")


if __name__ == "__main__":
    main()
