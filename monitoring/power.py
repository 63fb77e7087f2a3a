"""How often the monitor alerts on healthy, collapsed and shuffled windows (false alarms vs power).

Runs the checks (no files written) on many simulated serving windows per regime and window size
and prints the alert rate of each signal beside two naive detectors: "alert when Evidently's
category-drift test fails" and "alert when any Evidently drift test fails".

    python -m monitoring.power                       # 8 seeds x windows of 60 and 240 requests
    python -m monitoring.power --seeds 20 --sizes 30 60 120 480 --videos 500
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from monitoring.config import MonitorConfig
from monitoring.report import evaluate
from monitoring.simulate_feedback import MODES, ServingSimConfig, reference_pushes, simulate_serving


def alert_rates(n_videos: int, sizes: list[int], seeds: int, cfg: MonitorConfig) -> list[dict]:
    """Alert rate per (regime, window size) over `seeds` simulated windows."""
    from pushgen.simulator import SimConfig, simulate

    sim = simulate(SimConfig(n_videos=n_videos, seed=123))
    reference = reference_pushes(sim)
    rows = []
    jobs = [(mode, n) for mode in MODES for n in sizes]
    for mode, n in tqdm(jobs, desc="regimes", disable=None):
        hits = {"style_collapse": 0, "reward_drift": 0, "naive_category": 0, "naive_any": 0}
        start = time.perf_counter()
        for seed in range(seeds):
            log, feedback = simulate_serving(
                sim.world, ServingSimConfig(n_requests=n, mode=mode, seed=1000 + seed)
            )
            summary, _, _ = evaluate(log, feedback, reference, cfg)
            evidence = {c["name"]: c["alert"] for c in summary["checks"] if c["role"] == "evidence"}
            hits["style_collapse"] += summary["style_collapse"]
            hits["reward_drift"] += summary["reward_drift"]
            hits["naive_category"] += evidence["category_drift"]
            hits["naive_any"] += any(evidence.values())
        per_run = (time.perf_counter() - start) / seeds
        rows.append(
            {"mode": mode, "n": n, **{k: v / seeds for k, v in hits.items()}, "s_per_run": per_run}
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="windows per regime and size")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[60, 240], help="requests per window"
    )
    parser.add_argument("--videos", type=int, default=300, help="videos in the simulated world")
    args = parser.parse_args(argv)
    rows = alert_rates(args.videos, args.sizes, args.seeds, MonitorConfig())
    table = Table(title=f"alert rate over {args.seeds} windows (reference: simulated push history)")
    for col in (
        "regime",
        "requests",
        "style_collapse",
        "reward_drift",
        "naive: category drift",
        "naive: any Evidently drift",
        "s/run",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["mode"],
            str(r["n"]),
            f"{r['style_collapse']:.2f}",
            f"{r['reward_drift']:.2f}",
            f"{r['naive_category']:.2f}",
            f"{r['naive_any']:.2f}",
            f"{r['s_per_run']:.2f}",
        )
    Console(width=120).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
