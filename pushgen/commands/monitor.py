"""`pushgen monitor` (style collapse + reward drift on a serving-log window) and `pushgen report`.

    pushgen monitor --log serving_log.parquet --feedback feedback.parquet \\
        --reference pushes_labelled.parquet --out runs/monitor
    pushgen report runs/monitor          # print the alerts and checks of a finished run

`monitor` writes report.html (Evidently) and summary.json, prints the alerts and exits 0 (or 1
with `--fail-on-alert`, for cron jobs and CI).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pushgen.errors import ConfigError, DataContractError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `monitor` and `report` subcommands."""
    p = subparsers.add_parser(
        "monitor",
        help="check a serving-log window for style collapse and reward drift (Evidently report)",
        description="Compare the pushes the ranker selected (and their feedback) with a reference: "
        "labelled historical pushes or an earlier serving-log window.",
    )
    p.add_argument("--log", required=True, help="serving_log table (parquet/csv/jsonl)")
    p.add_argument(
        "--feedback",
        help="feedback table (request_id, pv, clicks); without it the "
        "reward correlation is not evaluated",
    )
    p.add_argument(
        "--reference",
        required=True,
        help="labelled pushes (category, text, ctr) or an earlier serving log",
    )
    p.add_argument("--out", required=True, help="output directory for report.html and summary.json")
    p.add_argument("--config", help="JSON or YAML file of MonitorConfig thresholds")
    p.add_argument(
        "--window", help="split the log by served_at into windows (pandas offset: 1D, 6h)"
    )
    p.add_argument("--fail-on-alert", action="store_true", help="exit 1 when an alert fires")
    p.set_defaults(func=run_monitor)

    r = subparsers.add_parser(
        "report", help="a training run's report (--run DIR) or a monitor run's alerts (PATH)"
    )
    r.add_argument("path", nargs="?", help="a monitor output directory or its summary.json")
    from pushgen.commands.report import add_run_report_args

    add_run_report_args(r)
    r.set_defaults(func=report)


def report(args: argparse.Namespace) -> int:
    """`report --run DIR` builds a run report; `report PATH` prints a monitor summary."""
    if args.run:
        from pushgen.commands.report import run_report

        return run_report(args)
    if not args.path:
        raise ConfigError("pushgen report needs --run DIR (a training run) or PATH (a monitor run)")
    return print_report(args)


def load_config(path: str | None, window: str | None):
    """MonitorConfig from an optional JSON/YAML file, with `--window` on top."""
    from monitoring.config import MonitorConfig

    values: dict = {}
    if path:
        file = Path(path)
        if not file.exists():
            raise ConfigError(f"no such config file: {file}")
        try:
            if file.suffix in (".yaml", ".yml"):
                import yaml

                values = yaml.safe_load(file.read_text()) or {}
            else:
                values = json.loads(file.read_text())
        except (ValueError, ImportError) as exc:
            raise ConfigError(f"cannot parse {file}: {exc}".splitlines()[0]) from exc
        if not isinstance(values, dict):
            raise ConfigError(f"{file} must hold a mapping of MonitorConfig fields")
    if window:
        values["window"] = window
    return MonitorConfig.from_dict(values)


def run_monitor(args: argparse.Namespace) -> int:
    """Read the tables, run the monitor, print the alerts."""
    from monitoring.report import alert_lines, run_monitoring
    from pushgen.contracts import read_table

    cfg = load_config(args.config, args.window)
    log = read_table(args.log, "serving_log")
    feedback = read_table(args.feedback, "feedback") if args.feedback else None
    reference = read_table(args.reference)
    summary = run_monitoring(log, feedback, reference, args.out, cfg)
    print("\n".join(alert_lines(summary)))
    counts = summary["counts"]
    rejected = {k: v for k, v in counts.items() if k.startswith("rejected_")}
    print(
        f"{counts['selected_pushes']} selected pushes, {counts['with_ctr']} with CTR; "
        f"rejected: {rejected or 'none'}"
    )
    print(f"report: {Path(args.out) / 'report.html'}  summary: {Path(args.out) / 'summary.json'}")
    return 1 if args.fail_on_alert and summary["retrain"] else 0


def print_report(args: argparse.Namespace) -> int:
    """Print a finished run's alerts and a line per check."""
    from monitoring.report import SUMMARY_JSON, alert_lines

    path = Path(args.path)
    if path.is_dir():
        path = path / SUMMARY_JSON
    if not path.exists():
        raise DataContractError(f"no monitor summary at {path} (run `pushgen monitor` first)")
    try:
        summary = json.loads(path.read_text())
        lines = alert_lines(summary)
    except (ValueError, KeyError, TypeError) as exc:
        raise DataContractError(f"{path} is not a monitor summary: {exc}") from exc
    print("\n".join(lines))
    print(f"{'check':<26}{'role':<10}{'current':>10}{'reference':>11}{'threshold':>11}  verdict")
    for c in summary["checks"]:
        cur = "n/a" if c["value"] is None else f"{c['value']:.4g}"
        ref = "n/a" if c["reference"] is None else f"{c['reference']:.4g}"
        verdict = "ALERT" if c["alert"] else ("ok" if c["evaluated"] else "not evaluated")
        print(f"{c['name']:<26}{c['role']:<10}{cur:>10}{ref:>11}{c['threshold']:>11g}  {verdict}")
    return 0
