"""`pushgen monitor` (the latest serving-log window judged against a healthy reference) and
`pushgen report` (print a finished run).

    pushgen monitor --log runs/serving --feedback feedback.parquet \\
        --reference last_week_log.jsonl --reference-feedback last_week_feedback.parquet --out runs/monitor
    pushgen monitor --evaluate                # detection table on log-shaped fault streams
    pushgen report runs/monitor               # print the verdict and checks of a finished run

`--log` takes a serving-log table or the server's log directory. `monitor` writes report.html and
summary.json, prints the verdict and exits 0 (or 1 with `--fail-on-alert`, for cron jobs and CI).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pushgen.core.errors import ConfigError, DataContractError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `monitor` and `report` subcommands."""
    p = subparsers.add_parser(
        "monitor",
        help="judge the latest serving-log window: inputs, generator, ranker (calibrated bands)",
        description="Judge the latest window of a serving log against bands calibrated on a "
        "healthy reference (an earlier serving log, or this log's earlier windows).",
    )
    p.add_argument("--log", help="serving_log table (parquet/csv/jsonl) or the server's log dir")
    p.add_argument("--feedback", help="feedback table (request_id, pv, clicks)")
    p.add_argument(
        "--reference",
        help="an earlier, healthy serving log (table or dir); default: the log's earlier windows",
    )
    p.add_argument("--reference-feedback", help="feedback of the reference log")
    p.add_argument("--out", help="output directory for report.html and summary.json")
    p.add_argument("--config", help="JSON or YAML file of MonitorConfig settings")
    p.add_argument(
        "--window", help="split the log by served_at into windows (pandas offset: 1D, 6h)"
    )
    p.add_argument("--window-requests", type=int, help="requests per window (default 240)")
    p.add_argument(
        "--feedback-delay-h",
        type=float,
        help="hours until a request's clicks are all in (default 24): younger ones are not judged",
    )
    p.add_argument("--as-of", help="when the feedback was read (ISO time; default now)")
    p.add_argument("--screenshot", help="also render report.html to this PNG (headless Chromium)")
    p.add_argument("--fail-on-alert", action="store_true", help="exit 1 when an alert fires")
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="print the detection table on log-shaped fault streams (python -m monitoring.power)",
    )
    p.add_argument("--windows", type=int, default=20, help="--evaluate: windows per fault")
    p.add_argument("--healthy-windows", type=int, default=100, help="--evaluate: healthy windows")
    p.add_argument("--sizes", type=int, nargs="+", default=[240, 1000], help="--evaluate: sizes")
    p.set_defaults(func=run_monitor)

    r = subparsers.add_parser(
        "report", help="a training run's report (--run DIR) or a monitor run's alerts (PATH)"
    )
    r.add_argument("path", nargs="?", help="a monitor output directory or its summary.json")
    from pushgen.cli.commands.report import add_run_report_args

    add_run_report_args(r)
    r.set_defaults(func=report)


def report(args: argparse.Namespace) -> int:
    """`report --run DIR` builds a run report; `report PATH` prints a monitor summary."""
    if args.run:
        from pushgen.cli.commands.report import run_report

        return run_report(args)
    if not args.path:
        raise ConfigError("pushgen report needs --run DIR (a training run) or PATH (a monitor run)")
    return print_report(args)


def load_config(
    path: str | None,
    window: str | None,
    window_requests: int | None = None,
    **more: object,
):
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
    if window_requests is not None:
        values["window_requests"] = window_requests
    values.update({k: v for k, v in more.items() if v is not None})
    return MonitorConfig.from_dict(values)


def _read_log(path: str):
    """(serving log, lines set aside) from a table file, the server's log directory, or the
    windows it shipped to an artifact store (`s3://…/serving-log/<namespace>/pushgen` or a local
    store directory). A malformed JSONL line (a half-written last line) is set aside, never
    fatal."""
    from pushgen.core.store import is_remote
    from pushgen.data.contracts import check_columns, read_table
    from serving.serving_log import SERVING_LOG_GLOB, read_jsonl_files

    if is_remote(path) or (Path(path) / "windows").is_dir():
        from serving.serving_log import load_serving_windows

        log = load_serving_windows(path)  # validated (rejected rows kept aside) by the monitor
        if log.empty:
            raise DataContractError(f"no serving-log windows under {path}/windows")
        return log, None
    if Path(path).is_dir() or path.endswith(".jsonl"):
        files = sorted(Path(path).glob(SERVING_LOG_GLOB)) if Path(path).is_dir() else [Path(path)]
        if not files or not all(f.exists() for f in files):
            raise DataContractError(f"no {SERVING_LOG_GLOB} files in {path}")
        log, bad = read_jsonl_files(files)
        if log.empty:
            raise DataContractError(f"{path}: no readable serving-log row ({len(bad)} set aside)")
        check_columns("serving_log", log)
        return log, bad
    return read_table(path, "serving_log"), None


def run_monitor(args: argparse.Namespace) -> int:
    """Read the tables, run the monitor, print the verdict (or, with --evaluate, the table)."""
    if args.evaluate:
        from monitoring.power import main as power_main

        argv = [
            "--windows",
            str(args.windows),
            "--healthy-windows",
            str(args.healthy_windows),
            "--sizes",
            *map(str, args.sizes),
            "--out",
            args.out or "runs/monitor-power",
        ]
        return power_main(argv)
    if not args.log or not args.out:
        raise ConfigError("pushgen monitor needs --log and --out (or --evaluate)")
    from monitoring.report import alert_lines, run_monitoring
    from pushgen.data.contracts import read_table

    cfg = load_config(
        args.config,
        args.window,
        args.window_requests,
        feedback_delay_h=args.feedback_delay_h,
        as_of=args.as_of,
    )
    log, bad_lines = _read_log(args.log)
    feedback = read_table(args.feedback, "feedback") if args.feedback else None
    reference = _read_log(args.reference)[0] if args.reference else None
    ref_fb = read_table(args.reference_feedback, "feedback") if args.reference_feedback else None
    summary = run_monitoring(
        log, feedback, reference, args.out, cfg, reference_feedback=ref_fb, set_aside=bad_lines
    )
    print("\n".join(alert_lines(summary)))
    counts = summary["counts"]
    rejected = {k: v for k, v in counts.items() if k.startswith("rejected_")}
    print(
        f"{counts['requests']} requests ({counts['degraded']} degraded, {counts['all_rejected']} "
        f"with nothing servable, {counts['explored']} explored), {counts['with_feedback']} with "
        f"feedback; rows set aside: {rejected or 'none'}"
    )
    print(f"report: {summary['report_html']}  summary: {Path(args.out) / 'summary.json'}")
    if args.screenshot:
        from monitoring.render import screenshot

        print(f"screenshot: {screenshot(summary['report_html'], args.screenshot)}")
    return 1 if args.fail_on_alert and summary["verdict"] == "alert" else 0


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
    print(
        f"{'part':<10}{'check':<26}{'level':<14}{'current':>10}{'alert below':>12}{'alert above':>12}"
    )
    for c in summary["checks"]:
        cells = [
            ("n/a" if c[k] is None else f"{c[k]:.4g}") for k in ("value", "alert_lo", "alert_hi")
        ]
        print(
            f"{c['part']:<10}{c['name']:<26}{c['level']:<14}{cells[0]:>10}{cells[1]:>12}{cells[2]:>12}"
        )
    return 0
