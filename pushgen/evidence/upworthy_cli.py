"""`pushgen results --upworthy ARCHIVE`: ingest, train, replay and report on the real archive.

    pushgen results --upworthy ../shared/data/upworthy_ab_dev.parquet      # or `make upworthy`

Runs `pushgen.evidence.upworthy.run_upworthy` in `runs/upworthy` (or `--out`), resuming after the
last finished stage, then publishes `docs/results/upworthy/` (or `--results`/upworthy) and rewrites
the README's real-data section from its results.json. `--upworthy-size small` runs a 600-story
sample (for a quick look; the README's figures come from the full size).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from pushgen.core.errors import ConfigError
from pushgen.evidence.upworthy import UpworthyRunConfig, run_upworthy
from pushgen.evidence.upworthy_report import publish

SIZES = {
    "full": UpworthyRunConfig(),
    "small": replace(UpworthyRunConfig(), max_stories=600, sft_steps=20, generate_stories=60),
}
# measured on the full size, 2 shared CPU cores (docs/results/upworthy/results.json, timings_s)
EXPECTED = "about an hour on 2 CPU cores (SFT and generation dominate)"


def run_upworthy_results(args: argparse.Namespace) -> int:
    """The `results --upworthy` form; returns the exit code."""
    if args.upworthy_size not in SIZES:
        raise ConfigError(f"--upworthy-size must be one of {sorted(SIZES)}")
    run = Path(args.out if args.out != "runs/results" else "runs/upworthy")
    out = Path(args.results) / "upworthy"
    size = args.upworthy_size
    print(f"real-data run in {run} ({size} size; {EXPECTED}); a rerun resumes", flush=True)
    started = time.perf_counter()
    run_upworthy(args.upworthy, run, SIZES[size], log=lambda m: print(m, flush=True))
    readme = Path(args.readme) if size == "full" else None
    command = f"pushgen results --upworthy {args.upworthy}" + (
        "" if size == "full" else f" --upworthy-size {size}"
    )
    publish(run, out, readme, command=command)
    print(
        f"done in {time.perf_counter() - started:.0f} s: {out}" + (f", {readme}" if readme else "")
    )
    return 0
