"""Run the whole monitor: inputs -> Evidently drift -> style and reward checks -> alerts on disk.

    from monitoring.report import run_monitoring
    summary = run_monitoring(serving_log, feedback, reference, "runs/monitor")

writes `report.html` (the Evidently report with an alert banner on top), `summary.json`
(`{"style_collapse", "reward_drift", "retrain", "retrain_targets", "checks", ...}`) and, when any
row was set aside, `rejected.parquet` (with `source` and `reject_reason`).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from monitoring.checks import (
    REWARD_DRIFT,
    STYLE_COLLAPSE,
    Check,
    category_checks,
    reward_checks,
    wording_checks,
)
from monitoring.config import MonitorConfig
from monitoring.drift import run_drift
from monitoring.inputs import load_inputs
from pushgen.contracts import write_rejected

REPORT_HTML = "report.html"
SUMMARY_JSON = "summary.json"
# which model a signal sends back to training
RETRAIN_TARGET = {STYLE_COLLAPSE: "generator", REWARD_DRIFT: "ranker"}


def summarise(checks: list[Check], windows: list[dict], counts: dict, cfg: MonitorConfig) -> dict:
    """The alert verdicts and everything behind them, JSON-ready."""
    fired = {
        signal: any(c.alert for c in checks if c.signal == signal and c.role == "alert")
        for signal in (STYLE_COLLAPSE, REWARD_DRIFT)
    }
    return {
        **fired,
        "retrain": any(fired.values()),
        "retrain_targets": [RETRAIN_TARGET[s] for s, on in fired.items() if on],
        "checks": [c.to_dict() for c in checks],
        "reward_windows": windows,
        "counts": counts,
        "config": cfg.to_dict(),
    }


def alert_lines(summary: dict) -> list[str]:
    """Human-readable verdicts: one line per signal, then one per firing check."""
    lines = []
    for signal in (STYLE_COLLAPSE, REWARD_DRIFT):
        lines.append(f"{signal}: {'ALERT' if summary[signal] else 'ok'}")
        for c in summary["checks"]:
            if c["signal"] == signal and c["alert"]:
                value = "n/a" if c["value"] is None else f"{c['value']:.3f}"
                ref = "" if c["reference"] is None else f" (reference {c['reference']:.3f})"
                lines.append(
                    f"  {c['name']} = {value}{ref}, threshold {c['threshold']:g} [{c['role']}]"
                )
    targets = ", ".join(summary["retrain_targets"]) or "nothing"
    lines.append(f"retrain: {'yes' if summary['retrain'] else 'no'} ({targets})")
    return lines


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def banner_html(summary: dict) -> str:
    """A plain HTML block with the verdicts and every check, put above the Evidently widgets."""
    head = "".join(
        f"<b style='color:{'#c0392b' if summary[s] else '#1e8449'}'>{s}: "
        f"{'ALERT' if summary[s] else 'ok'}</b> &nbsp; "
        for s in (STYLE_COLLAPSE, REWARD_DRIFT)
    )
    rows = "".join(
        f"<tr style='color:{'#c0392b' if c['alert'] else 'inherit'}'><td>{html.escape(c['name'])}</td>"
        f"<td>{c['signal']}</td><td>{c['role']}</td><td>{_fmt(c['value'])}</td>"
        f"<td>{_fmt(c['reference'])}</td><td>{c['threshold']:g}</td>"
        f"<td>{'ALERT' if c['alert'] else ('ok' if c['evaluated'] else 'not evaluated')}</td>"
        f"<td>{html.escape(c['detail'])}</td></tr>"
        for c in summary["checks"]
    )
    return (
        "<div style='font-family:sans-serif;padding:12px;border-bottom:1px solid #ccc'>"
        f"<h2>pushgen monitor</h2><p>{head} retrain: {'yes' if summary['retrain'] else 'no'}</p>"
        "<table border='1' cellpadding='4' style='border-collapse:collapse;font-size:13px'>"
        "<tr><th>check</th><th>signal</th><th>role</th><th>current</th><th>reference</th>"
        f"<th>threshold</th><th>verdict</th><th>detail</th></tr>{rows}</table></div>"
    )


def write_report(snapshot, summary: dict, out_dir: Path) -> Path:
    """The Evidently HTML with the verdict banner inserted at the top of the body."""
    page = snapshot.get_html_str(as_iframe=False)
    page = page.replace("<body>", "<body>" + banner_html(summary), 1)
    path = out_dir / REPORT_HTML
    path.write_text(page, encoding="utf-8")
    return path


def evaluate(
    serving_log: pd.DataFrame,
    feedback: pd.DataFrame | None,
    reference: pd.DataFrame,
    cfg: MonitorConfig | None = None,
) -> tuple[dict, object, pd.DataFrame]:
    """The checks without touching disk: (summary, Evidently snapshot, rejected rows)."""
    cfg = cfg or MonitorConfig()
    # inputs: the selected push per request (+ feedback) and the reference, bad rows set aside
    inputs = load_inputs(serving_log, feedback, reference, cfg.min_pv)
    # Evidently: drift tests per column, then our checks on top of its verdicts
    snapshot, drift = run_drift(inputs.reference, inputs.current, cfg)
    checks = category_checks(inputs.reference, inputs.current, drift, cfg)
    checks += wording_checks(inputs.reference, inputs.current, drift, cfg)
    reward, windows = reward_checks(inputs.reference, inputs.current, drift, cfg)
    return summarise(checks + reward, windows, inputs.counts, cfg), snapshot, inputs.rejected


def run_monitoring(
    serving_log: pd.DataFrame,
    feedback: pd.DataFrame | None,
    reference: pd.DataFrame,
    out_dir: str | Path,
    cfg: MonitorConfig | None = None,
) -> dict:
    """Check a serving-log window against a reference; write report.html + summary.json.

    Raises `DataContractError` for an unusable table (missing columns, no rows, nothing selected);
    bad rows are set aside in `rejected.parquet` and counted in `summary["counts"]`.
    """
    summary, snapshot, rejected = evaluate(serving_log, feedback, reference, cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_rejected(rejected, out_dir, "monitor")
    # outputs: the HTML for people, the JSON for pipelines
    summary["report_html"] = str(write_report(snapshot, summary, out_dir))
    (out_dir / SUMMARY_JSON).write_text(
        json.dumps(summary, indent=2, default=str), encoding="utf-8"
    )
    return summary
