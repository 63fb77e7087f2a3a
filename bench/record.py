"""Headline rows a benchmark hands to `make bench`'s summary table (no-op when run alone).

    from bench.record import record
    record("rank", "all pairs, one batch", seconds=0.63, baseline_seconds=1.67, baseline="one pair at a time")

`python -m bench` runs each benchmark in its own process with `PUSHGEN_BENCH_RECORD` naming a
JSON-lines file; every `record` call appends one row there. The ratio is baseline / seconds, so
above 1 means faster than the naive baseline measured in the same run.
"""

from __future__ import annotations

import json
import os

RECORD_ENV = "PUSHGEN_BENCH_RECORD"


def record(
    bench: str,
    case: str,
    seconds: float,
    baseline_seconds: float | None = None,
    baseline: str = "",
    note: str = "",
) -> None:
    """Append one row for the summary table (ignored unless `python -m bench` is collecting)."""
    path = os.environ.get(RECORD_ENV)
    if not path:
        return
    row = {
        "bench": bench,
        "case": case,
        "seconds": float(seconds),
        "baseline": baseline,
        "baseline_seconds": None if baseline_seconds is None else float(baseline_seconds),
        "note": note,
    }
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
