"""The monitor's detection table on independent traffic (bench/traffic.py), with seeds.

A healthy reference week (daily rhythm, day-to-day topic drift, skewed popularity) calibrates the
bands at each window size; then healthy windows (the false-alarm rate) and windows of each fault
of issue #27's table are judged exactly as `pushgen monitor` judges its latest window
(`request_table` -> maturity -> `judge` -> `verdict`), and each verdict is scored right or wrong
against what a person would need to hear (`EXPECTED`).

    python -m bench.detection                       # 100 healthy + 5 per fault, sizes 240 1000
    python -m bench.detection --healthy 20 --faults 2 --sizes 240    # quick look

It writes `docs/results/monitor_detection.json` and `.md` (the README's table comes from them).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pandas as pd

from bench.traffic import FAULTS, Traffic

OUT = Path("docs/results")
# what a right verdict says, per fault (healthy: no alert)
EXPECTED = {
    "healthy": "no alert",
    "collapse": "alert, generator blamed, retrain generator",
    "ranker_lowest": "alert, ranker blamed, retrain ranker",
    "late_clicks": "feedback blamed, no retrain",
    "no_exploration": "serving blamed (exploration), no retrain",
    "duplicates": "duplicates set aside and counted, no alert",
    "contract_only": "no alert, guard checks say column guard_ok missing",
    "latency_x10": "serving blamed (latency), no retrain",
}


def right(fault: str, v: dict, checks: list, counts: dict, dup_rows: int) -> bool:
    """Is this verdict what `EXPECTED[fault]` says?"""
    levels = {c.name: c for c in checks}
    if fault == "healthy":
        return v["verdict"] != "alert"
    if fault in ("collapse", "ranker_lowest"):
        part = "generator" if fault == "collapse" else "ranker"
        return v["blamed"] == part and v["retrain"] and v["retrain_targets"] == [part]
    if fault == "late_clicks":
        return v["blamed"] == "feedback" and not v["retrain"]
    if fault == "no_exploration":
        return (
            v["blamed"] == "serving"
            and levels["explored_share"].level == "alert"
            and not v["retrain"]
        )
    if fault == "latency_x10":
        lat = [c for c in checks if c.name.startswith("latency_") and c.level == "alert"]
        return v["blamed"] == "serving" and bool(lat) and not v["retrain"]
    if fault == "duplicates":
        set_aside = counts.get("rejected_reasons", {}).get("duplicate row", 0)
        return v["verdict"] != "alert" and set_aside == dup_rows
    if fault == "contract_only":
        guard = levels["guard_reject_share"]
        return (
            v["verdict"] != "alert"
            and not v["retrain"]
            and guard.level == "not evaluated"
            and "column guard_ok missing" in guard.detail
        )
    raise ValueError(fault)


def judge_window(traffic, n: int, fault: str, seed: int, cal, cfg) -> dict:
    """One window of `fault`, judged; returns its verdict row."""
    from monitoring.calibrate import judge, verdict
    from monitoring.monitor import mark_mature
    from monitoring.requests import request_table

    day = 7.5 + (seed * 0.618) % 14  # after the reference week, any hour of any day
    log, fb = traffic.window(n, fault, day=day, seed=seed)
    dup_rows = int(log.duplicated().sum())
    req, _, counts = request_table(log, fb)
    end = pd.to_datetime(log["served_at"], format="ISO8601").max()
    req, _ = mark_mature(req, replace(cfg, as_of=str(end + pd.Timedelta(days=3))))
    checks = judge(req, cal, counts["missing_columns"], req, cal)
    v = verdict(checks)
    return {
        "fault": fault,
        "requests": n,
        "seed": seed,
        "verdict": v["verdict"],
        "blamed": v["blamed"],
        "retrain": v["retrain_targets"],
        "retrain_reason": v["retrain_reason"],
        "alerting": [c.name for c in checks if c.level == "alert"],
        "right": right(fault, v, checks, counts, dup_rows),
    }


def detection_table(
    sizes: list[int], healthy: int, faults: int, per_day: int = 2000, n_boot: int = 200
) -> tuple[list[dict], list[dict]]:
    """(rows per fault and size, every judged window)."""
    from monitoring.calibrate import calibrate
    from monitoring.config import MonitorConfig
    from monitoring.requests import request_table

    traffic = Traffic(seed=0)
    ref_log, ref_fb = traffic.week(per_day)
    reference, _, _ = request_table(ref_log, ref_fb)
    reference = reference.assign(mature=True)
    cfg = MonitorConfig(n_boot=n_boot)
    windows, rows = [], []
    for n in sizes:
        cal = calibrate(reference, n, n_boot, cfg.false_alarm_rate, cfg.warn_rate, cfg.seed)
        for fault in FAULTS:
            count = healthy if fault == "healthy" else faults
            start = time.perf_counter()
            judged = [judge_window(traffic, n, fault, s, cal, cfg) for s in range(count)]
            windows += judged
            verdicts = Counter(j["verdict"] for j in judged)
            rows.append(
                {
                    "fault": fault,
                    "requests": n,
                    "windows": count,
                    "expected": EXPECTED[fault],
                    "verdicts": dict(verdicts),
                    "blamed": dict(Counter(j["blamed"] or "none" for j in judged)),
                    "retrain": dict(Counter("+".join(j["retrain"]) or "no" for j in judged)),
                    "right": sum(j["right"] for j in judged),
                    "alert_share": verdicts["alert"] / count,
                    "s_per_window": (time.perf_counter() - start) / count,
                }
            )
            print(markdown(rows[-1:], header=False), flush=True)
    return rows, windows


def markdown(rows: list[dict], header: bool = True) -> str:
    """The table as markdown."""
    lines = (
        [
            "| scenario | requests/window | windows | verdicts | blamed | retrain | right | expected |",
            "|---|---|---|---|---|---|---|---|",
        ]
        if header
        else []
    )
    for r in rows:
        fmt = lambda d: ", ".join(f"{k} {v}" for k, v in sorted(d.items()))  # noqa: E731
        lines.append(
            f"| {r['fault']} | {r['requests']} | {r['windows']} | {fmt(r['verdicts'])} | "
            f"{fmt(r['blamed'])} | {fmt(r['retrain'])} | {r['right']}/{r['windows']} | "
            f"{r['expected']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[240, 1000])
    p.add_argument("--healthy", type=int, default=100, help="healthy windows per size")
    p.add_argument("--faults", type=int, default=5, help="windows (seeds) per fault and size")
    p.add_argument("--per-day", type=int, default=2000, help="requests a day")
    p.add_argument("--boot", type=int, default=200, help="reference windows per size")
    p.add_argument("--out", default=str(OUT), help="where the results files go")
    args = p.parse_args(argv)
    start = time.perf_counter()
    rows, windows = detection_table(args.sizes, args.healthy, args.faults, args.per_day, args.boot)
    table = markdown(rows)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "command": "python -m bench.detection " + " ".join(argv or []),
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
        "windows": windows,
        "false_alarm_rate": {
            str(r["requests"]): r["alert_share"] for r in rows if r["fault"] == "healthy"
        },
        "all_right": all(r["right"] == r["windows"] for r in rows if r["fault"] != "healthy"),
    }
    (out / "monitor_detection.json").write_text(json.dumps(doc, indent=2, default=str))
    (out / "monitor_detection.md").write_text(table + "\n")
    print(f"written: {out / 'monitor_detection.md'} ({doc['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(__import__("sys").argv[1:]))
