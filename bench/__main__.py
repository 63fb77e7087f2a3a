"""Run every benchmark in `bench/`, each in its own process, and print one table over all of them.

    python -m bench                      # every benchmark, short settings (make bench)
    python -m bench bench_rank           # only the named ones
    python -m bench --full               # each benchmark's own default (long) settings

Each benchmark prints its own tables and hands its headline rows over through `bench.record`; the
summary adds each process's peak memory (RSS) and writes `docs/results/bench.json` with the
machine's name. One failing benchmark is reported and the others still run.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench
from bench.record import RECORD_ENV

# Short settings so `make bench` stays within minutes on 2 cores; `--full` drops them.
SHORT_ARGS: dict[str, list[str]] = {
    "bench_simulate": ["--pushes", "200000"],
    "bench_clean": ["--rows", "200000", "--repeat", "1"],
    "bench_generate": ["--captions", "1", "--repeats", "1"],
    "bench_rank": [
        "--repeats",
        "5",
        "--naive-repeats",
        "2",
        "--agreement-sets",
        "0",
        "--train-pairs",
        "0",
    ],
    "bench_serving": ["--tiny", "--seconds", "3", "--chain-seconds", "5"],
    "bench_abuse": [],
    "bench_sft_ddp": ["--tiny", "--steps", "10", "--json", ""],
}
OUT = Path("docs/results/bench.json")


def run_one(name: str, args: list[str], record_file: str) -> tuple[int, float, float]:
    """(exit code, seconds, peak RSS MiB of the benchmark's process tree's largest process)."""
    env = {**os.environ, RECORD_ENV: record_file, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", f"bench.{name}", *args], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - start, usage.ru_maxrss / 1024


def summary_rows(rows: list[dict]) -> list[str]:
    """The one table over every benchmark, as text lines."""
    head = f"{'benchmark':<16}{'case':<46}{'s':>9}{'naive s':>9}{'ratio':>8}{'peak MiB':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        base = r.get("baseline_seconds")
        ratio = f"{base / r['seconds']:.2f}x" if base and r["seconds"] > 0 else "-"
        lines.append(
            f"{r['bench']:<16}{r['case'][:45]:<46}{r['seconds']:>9.3f}"
            f"{(f'{base:.3f}' if base else '-'):>9}{ratio:>8}{r['peak_mib']:>10.0f}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    from pushgen.core.machine import describe_machine
    from pushgen.evidence.provenance import BENCH_RELEVANT, provenance

    argv = sys.argv[1:] if argv is None else argv
    full = "--full" in argv
    only = [a for a in argv if not a.startswith("--")]
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    prov = provenance(
        ["make", "bench"] if not argv else ["python", "-m", "bench", *argv], BENCH_RELEVANT
    )
    rows, failed = [], []
    for name in names:
        if only and name not in only:
            continue
        print(f"\n=== {name} ===", flush=True)
        with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as rec:
            code, seconds, peak = run_one(name, [] if full else SHORT_ARGS.get(name, []), rec.name)
            found = [json.loads(line) for line in rec.read().splitlines() if line.strip()]
        if code:
            failed.append(name)
            print(f"{name} failed (exit {code})")
        found = found or [
            {
                "bench": name,
                "case": "(whole benchmark, no rows recorded)",
                "seconds": seconds,
                "baseline_seconds": None,
            }
        ]
        rows += [{**r, "peak_mib": peak, "module": name} for r in found]
        print(f"({name}: {seconds:.0f} s, peak RSS {peak:.0f} MiB)")
    print(
        "\n=== all benchmarks (ratio = naive baseline / this, same run; peak RSS of its process) ==="
    )
    print("\n".join(summary_rows(rows)))
    load = os.getloadavg()
    doc = {
        "machine": describe_machine(),
        "provenance": prov,
        "benchmarks": [n for n in names if not only or n in only],
        "not_run": [n for n in names if only and n not in only],
        "load_average_at_end": load,
        "short": not full,
        "failed": failed,
        "rows": rows,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=2))
    print(f"wrote {OUT} (machine: {doc['machine']}; load average at the end {load[0]:.1f})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
