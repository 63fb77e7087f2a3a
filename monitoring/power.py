"""The detection table: how often the monitor alerts, and whom it blames.

The sample-size rules (`required_n`, `windows_needed`) live in `monitoring.sample_size`.

`python -m monitoring.power` (or `pushgen monitor --evaluate`) builds log-shaped streams
(`monitoring.logsim`) over one simulated world, calibrates the bands on a healthy reference stream,
and judges many healthy windows and 20 windows of each fault at 240 and 1,000 requests a window:

    python -m monitoring.power                     # 20 fault windows, 100 healthy, sizes 240 1000
    python -m monitoring.power --windows 5 --healthy-windows 10 --sizes 240   # quick look
    python -m monitoring.power --weaker          # also weaker faults, to see where detection ends

It prints the table and writes `detection.json` and `detection.md` under `--out`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from monitoring.sample_size import windows_needed

EXPECTED = {
    "full_collapse": "generator",
    "partial_collapse": "generator",
    "ranker_invented": "ranker",
    "random_ranker": "ranker",
    "topic_shift": "inputs",
    "caption_outage": "inputs",
}


# weaker versions of the faults: where detection starts to fall off (reported, not required)
WEAKER = {
    "partial_collapse 5%": ("partial_collapse", {"collapse_share": 0.05}),
    "ranker_invented +0.5": ("ranker_invented", {"sensational_bias": 0.5}),
    "topic_shift 3 topics at 40%": ("topic_shift", {"shifted_share": 0.4}),
    "caption_outage 5%": ("caption_outage", {"outage_share": 0.05}),
}


def detection_table(
    sizes: list[int],
    windows: int = 20,
    healthy_windows: int = 100,
    reference_requests: int = 4000,
    n_videos: int = 300,
    n_boot: int = 200,
    seed: int = 0,
    weaker: bool = False,
) -> list[dict]:
    """One row per (regime, size): alert share, right-part share, blamed counts, windows needed."""
    from collections import Counter

    from tqdm import tqdm

    from monitoring.calibrate import calibrate, judge, verdict
    from monitoring.logsim import StreamConfig, simulate_log
    from monitoring.requests import request_table
    from pushgen.data.simulator import SimConfig, simulate

    world = simulate(SimConfig(n_videos=n_videos, seed=123)).world
    ref_log, ref_fb = simulate_log(world, StreamConfig(n_requests=reference_requests, seed=seed))
    reference, _, _ = request_table(ref_log, ref_fb)
    rows = []
    regimes = {"healthy": ("healthy", {}), **{f: (f, {}) for f in EXPECTED}}
    if weaker:
        regimes.update(WEAKER)
    jobs = [(name, n) for name in regimes for n in sizes]
    cals = {n: calibrate(reference, n, n_boot=n_boot, seed=seed) for n in sizes}
    for name, n in tqdm(jobs, desc="regimes", disable=None):
        fault, overrides = regimes[name]
        count = healthy_windows if fault == "healthy" else windows
        blamed: Counter = Counter()
        alerts = warns = 0
        start = time.perf_counter()
        for w in range(count):
            cfg = StreamConfig(n_requests=n, fault=fault, seed=10_000 + 1000 * w + n, **overrides)
            req, _, _ = request_table(*simulate_log(world, cfg))
            v = verdict(judge(req, cals[n]))
            alerts += v["verdict"] == "alert"
            warns += v["verdict"] == "warn"
            blamed[v["blamed"] or "none"] += 1
        expected = EXPECTED.get(fault)
        share = alerts / count
        rows.append(
            {
                "fault": name,
                "requests": n,
                "windows": count,
                "expected": expected or "-",
                "alert_share": share,
                "warn_share": warns / count,
                "right_part_share": blamed[expected] / count if expected else None,
                "blamed": dict(blamed),
                "windows_needed": windows_needed(share) if expected else None,
                "s_per_window": (time.perf_counter() - start) / count,
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    """The table as markdown (healthy rows report the false-alarm share)."""
    lines = [
        "| fault | requests/window | windows | part expected | alert share | "
        "right part blamed | blamed (counts) | windows needed (95%) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        right = "-" if r["right_part_share"] is None else f"{r['right_part_share']:.0%}"
        need = "-" if r["windows_needed"] is None else str(r["windows_needed"])
        name = "healthy (false alarms)" if r["fault"] == "healthy" else r["fault"]
        blamed = ", ".join(f"{k} {v}" for k, v in sorted(r["blamed"].items()))
        lines.append(
            f"| {name} | {r['requests']} | {r['windows']} | {r['expected']} | "
            f"{r['alert_share']:.0%} | {right} | {blamed} | {need} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=20, help="windows per fault and size")
    parser.add_argument("--healthy-windows", type=int, default=100, help="healthy windows per size")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[240, 1000], help="requests per window"
    )
    parser.add_argument("--reference", type=int, default=4000, help="healthy reference requests")
    parser.add_argument("--boot", type=int, default=200, help="bootstrap windows per size")
    parser.add_argument("--out", default="runs/monitor-power", help="where the table is written")
    parser.add_argument("--weaker", action="store_true", help="also weaker versions of the faults")
    args = parser.parse_args(argv)
    if min(args.windows, args.healthy_windows, args.reference, args.boot, *args.sizes) < 1:
        parser.error("--windows, --healthy-windows, --reference, --boot and --sizes must be >= 1")
    start = time.perf_counter()
    rows = detection_table(
        args.sizes,
        args.windows,
        args.healthy_windows,
        args.reference,
        n_boot=args.boot,
        weaker=args.weaker,
    )
    table = markdown(rows)
    print(table)
    print(f"({time.perf_counter() - start:.0f} s)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "detection.json").write_text(json.dumps(rows, indent=2))
    (out / "detection.md").write_text(table + "\n")
    print(f"written: {out / 'detection.md'}, {out / 'detection.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
