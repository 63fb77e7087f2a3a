"""Run the monitor and write what a person reads: report.html (one page) and summary.json.

    from monitoring.report import run_monitoring
    summary = run_monitoring(serving_log, feedback, reference, "runs/monitor")

The page has one verdict banner (it is computed from the same rows it sits above), the checks of
the latest window grouped by part with their calibrated healthy bands, an evidence section kept
apart from the alerts (shares, the CTR of picks with its interval, exploration estimates, rows set
aside, Evidently's drift tests), and one chart per signal over the last windows with its band.
`monitoring/render.py` screenshots it with headless Chromium.
"""

from __future__ import annotations

import html
import json
import warnings
from pathlib import Path

import pandas as pd

from monitoring.config import MonitorConfig
from monitoring.monitor import evaluate
from monitoring.signals import BY_NAME, PARTS
from pushgen.data.contracts import write_rejected

REPORT_HTML = "report.html"
SUMMARY_JSON = "summary.json"
COLORS = {"ok": "#1e8449", "warn": "#b9770e", "alert": "#c0392b", "not evaluated": "#7f8c8d"}


def fmt(value: float | None, unit: str) -> str:
    """A value as people read it: shares and CTRs in percent."""
    if value is None:
        return "n/a"
    if unit == "share":
        return f"{value:.1%}"
    if unit == "ctr":
        return f"{value:.2%}"
    if unit == "chars":
        return f"{value:.1f}"
    if unit == "ms":
        return f"{value:.0f} ms"
    return f"{value:.3f}"


def _band_text(c: dict) -> str:
    lo, hi = c["alert_lo"], c["alert_hi"]
    if lo is None and hi is None:
        return "n/a"
    if lo is None:
        return f"≤ {fmt(hi, c['unit'])}"
    if hi is None:
        return f"≥ {fmt(lo, c['unit'])}"
    return f"{fmt(lo, c['unit'])} … {fmt(hi, c['unit'])}"


def _why_not(c: dict) -> str:
    """Why a check was not evaluated, in a few words."""
    detail = c["detail"]
    if detail.startswith("column "):
        return detail.split(";")[0]
    if "mature feedback" in detail:
        return f"{c['units']} of {c['needed']} requests with mature feedback"
    if "units in this window" in detail:
        return f"{c['units']} of {c['needed']} units"
    return detail.split(";")[0]


def unevaluated(summary: dict, limit: int = 4) -> str:
    """The checks that were not evaluated, each with why ('' when none)."""
    skipped = [c for c in summary["checks"] if c["level"] == "not evaluated"]
    if not skipped:
        return ""
    named = "; ".join(f"{c['name']} ({_why_not(c)})" for c in skipped[:limit])
    more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return f"not evaluated: {named}{more}"


def headline(summary: dict) -> str:
    """The banner sentence, derived from the checks it sits above."""
    checks = summary["checks"]
    level = summary["verdict"]
    skipped = unevaluated(summary)
    tail_skip = f". {skipped[0].upper()}{skipped[1:]}" if skipped else ""
    if level == "alert":
        firing = [c for c in checks if c["level"] == "alert" and c["part"] == summary["blamed"]]
        what = "; ".join(
            f"{c['name']} {fmt(c['value'], c['unit'])} (healthy {_band_text(c)})" for c in firing
        )
        also = summary.get("also_alerting") or []
        tail = f". Also alerting, on weaker evidence: {', '.join(also)}" if also else ""
        return f"ALERT: look at the {summary['blamed']}: {what}{tail}"
    if level == "warn":
        near = [c["name"] for c in checks if c["level"] == "warn"]
        return f"WARN: no alert, but {', '.join(near)} left the inner band{tail_skip}"
    if level == "ok":
        n = sum(c["level"] == "ok" for c in checks)
        return f"OK: all {n} evaluated checks inside their healthy bands{tail_skip}"
    return f"NOT EVALUATED: {summary.get('reason', 'too little data')}"


def alert_lines(summary: dict) -> list[str]:
    """Plain-text verdict for the CLI: the banner, each part, each check that is not ok."""
    lines = [headline(summary)]
    for part, level in summary.get("parts", {}).items():
        lines.append(f"  {part}: {level}")
    for c in summary["checks"]:
        if c["level"] in ("warn", "alert"):
            lines.append(
                f"  {c['level']:<5} {c['part']}/{c['name']} = {fmt(c['value'], c['unit'])}"
                f" (healthy {_band_text(c)})"
            )
    targets = ", ".join(summary["retrain_targets"]) or "nothing"
    why = summary.get("retrain_reason")
    lines.append(
        f"retrain: {'yes' if summary['retrain'] else 'no'} ({targets})"
        + (f": {why}" if why else "")
    )
    return lines


def _chart(name: str, summary: dict, width: int = 290, height: int = 110) -> str:
    """One SVG line chart: the signal over the last windows, its warn band and alert lines."""
    sig = BY_NAME[name]
    check = next((c for c in summary["checks"] if c["name"] == name), None)
    points = [(h["values"].get(name), h["levels"].get(name)) for h in summary["history"]]
    vals = [v for v, _ in points if v is not None]
    edges = [
        check[k]
        for k in ("alert_lo", "alert_hi", "warn_lo", "warn_hi", "center")
        if check and check[k] is not None
    ]
    title = f"<div class='ct'>{html.escape(name)} <span>({html.escape(sig.part)})</span></div>"
    if not vals:
        return f"<div class='chart'>{title}<div class='none'>not evaluated</div></div>"
    lo, hi = min(vals + edges), max(vals + edges)
    pad = (hi - lo) * 0.15 or abs(hi) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad
    left, right, top, bottom = 44, width - 8, 8, height - 18

    def y(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    n = max(len(points) - 1, 1)

    def x(i: int) -> float:
        return left + i / n * (right - left)

    parts = [f"<svg width='{width}' height='{height}'>"]
    if check:
        wl = check["warn_lo"] if check["warn_lo"] is not None else lo
        wh = check["warn_hi"] if check["warn_hi"] is not None else hi
        parts.append(
            f"<rect x='{left}' y='{y(wh):.1f}' width='{right - left}' "
            f"height='{max(y(wl) - y(wh), 0):.1f}' fill='#d5f5e3'/>"
        )
        for k in ("alert_lo", "alert_hi"):
            if check[k] is not None:
                parts.append(
                    f"<line x1='{left}' x2='{right}' y1='{y(check[k]):.1f}' "
                    f"y2='{y(check[k]):.1f}' stroke='#c0392b' stroke-dasharray='4 3'/>"
                )
    path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, (v, _) in enumerate(points) if v is not None)
    parts.append(f"<polyline points='{path}' fill='none' stroke='#2c3e50' stroke-width='1.5'/>")
    for i, (v, lv) in enumerate(points):
        if v is not None:
            parts.append(
                f"<circle cx='{x(i):.1f}' cy='{y(v):.1f}' r='3.5' "
                f"fill='{COLORS.get(lv, '#7f8c8d')}'/>"
            )
    for v in (lo + pad, hi - pad):
        parts.append(
            f"<text x='{left - 4}' y='{y(v) + 4:.1f}' text-anchor='end'>"
            f"{html.escape(fmt(v, sig.unit))}</text>"
        )
    parts.append(
        f"<text x='{left}' y='{height - 4}'>window 1</text>"
        f"<text x='{right}' y='{height - 4}' text-anchor='end'>latest</text></svg>"
    )
    return f"<div class='chart'>{title}{''.join(parts)}</div>"


CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:0;padding:16px 24px;color:#222;max-width:1240px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:22px 0 8px;border-bottom:1px solid #ddd}
.sub{color:#555;font-size:13px} .banner{color:#fff;font-size:18px;padding:14px 18px;margin:12px 0;
border-radius:6px;font-weight:bold} .pills span{display:inline-block;padding:4px 12px;margin-right:8px;
border-radius:12px;color:#fff;font-size:13px} table{border-collapse:collapse;font-size:13px}
td,th{padding:4px 8px;border-bottom:1px solid #eee;text-align:left} th{background:#f4f6f7}
.lv{font-weight:bold} .grid{display:flex;flex-wrap:wrap;gap:10px} .chart{border:1px solid #e5e5e5;
border-radius:4px;padding:4px} .ct{font-size:12px;font-weight:bold} .ct span{color:#888;font-weight:normal}
svg text{font-size:10px;fill:#666} .none{color:#999;font-size:12px;padding:30px 60px} .ev td{color:#333}
"""


def page(summary: dict, evidently: list[dict] | None = None) -> str:
    """The whole report as one self-contained HTML page."""
    level = summary["verdict"]
    w, ref = summary["window"], summary["reference"]
    pills = "".join(
        f"<span style='background:{COLORS[summary['parts'].get(p, 'not evaluated')]}'>{p}: "
        f"{summary['parts'].get(p, 'not evaluated')}</span>"
        for p in PARTS
    )
    rows = []
    for part in PARTS:
        for c in (c for c in summary["checks"] if c["part"] == part):
            rows.append(
                f"<tr><td>{part}</td><td>{html.escape(c['name'])}</td>"
                f"<td class='lv' style='color:{COLORS[c['level']]}'>{c['level']}</td>"
                f"<td>{fmt(c['value'], c['unit'])}</td><td>{_band_text(c)}</td>"
                f"<td>{fmt(c['center'], c['unit'])}</td><td>{c['units']} / {c['needed']}</td>"
                f"<td>{html.escape(c['detail'])}</td></tr>"
            )
    ev = summary["evidence"]
    shares = ev["window_shares"]
    ctr, rctr = ev["chosen_ctr"], ev.get("reference_chosen_ctr") or {}
    expl = ev["exploration"]

    def pct(v, d=2):
        return "n/a" if v is None else f"{v:.{d}%}"

    rho = expl.get("explored_rank_corr")
    rho_text = "n/a" if rho is None else f"{rho:.2f}"

    ev_rows = [
        (
            "requests in the window",
            f"{w['requests']} (served {pct(shares['served'], 1)}, degraded "
            f"{pct(shares['degraded'], 1)}, nothing servable {pct(shares['all_rejected'], 1)}, "
            f"explored {pct(shares['explored'], 1)})",
        ),
        (
            "CTR of the ranker's picks",
            f"{pct(ctr['ctr'])} [95% CI {pct(ctr['lo'])} … "
            f"{pct(ctr['hi'])}] on {ctr['n']} requests; reference {pct(rctr.get('ctr'))} "
            f"[{pct(rctr.get('lo'))} … {pct(rctr.get('hi'))}]",
        ),
        (
            "exploration (IPS)",
            f"top {pct(expl.get('ctr_top_ips'))} vs uniformly drawn "
            f"{pct(expl.get('ctr_random_ips'))} on {expl.get('explored_requests', 0)} explored "
            f"requests; score rank vs CTR (Spearman, explored) "
            f"{rho_text}"
            if expl.get("explored_requests")
            else "no explored request in this window (exploration off or too few requests): "
            "no unbiased estimate",
        ),
        (
            "retrain",
            f"{'yes' if summary['retrain'] else 'no'}: {summary.get('retrain_reason', '')}",
        ),
        (
            "rows set aside",
            ", ".join(
                f"{k[9:]}: {v}" for k, v in summary["counts"].items() if k.startswith("rejected_")
            )
            or "none",
        ),
    ]
    for e in evidently or []:
        ev_rows.append(
            (
                f"Evidently {e['method']} on picks' {e['column']}",
                f"score {e['score']:.3g} (its own threshold {e['threshold']:g}: "
                f"{'drift' if e['drifted'] else 'no drift'}); evidence only",
            )
        )
    evidence = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in ev_rows
    )
    charts = "".join(_chart(c["name"], summary) for c in summary["checks"])
    n_hist = len(summary["history"])
    return f"""<!doctype html><html><head><meta charset='utf-8'><title>pushgen monitor</title>
<style>{CSS}</style></head><body>
<h1>pushgen monitor</h1><div class='sub'>latest window: {w["requests"]} requests, {html.escape(w["start"][:19])} →
{html.escape(w["end"][:19])} · reference: {html.escape(ref["source"])} · bands calibrated for
{summary["config"]["false_alarm_rate"]:.0%} false alarms per window (all checks together)</div>
<div class='banner' style='background:{COLORS[level]}'>{html.escape(headline(summary))}</div>
<div class='pills'>{pills}</div>
<h2>Checks of the latest window (these decide the verdict)</h2>
<table><tr><th>part</th><th>check</th><th>level</th><th>current</th><th>healthy band (alert outside)</th>
<th>reference</th><th>units / needed</th><th>what it measures</th></tr>{"".join(rows)}</table>
<h2>Evidence (context, never an alert)</h2><table class='ev'>{evidence}</table>
<h2>Over the last {n_hist} windows (green: healthy band; dashed red: alert threshold)</h2>
<div class='grid'>{charts}</div></body></html>"""


def _evidently(ref: pd.DataFrame | None, log: pd.DataFrame, cfg: MonitorConfig) -> list[dict]:
    """Evidently drift tests on the picks (category, text length, word count), as evidence."""
    if ref is None or not cfg.evidently:
        return []
    from monitoring.drift import run_drift

    def picks(df: pd.DataFrame) -> pd.DataFrame:
        sel = df[df["selected"].astype(str).str.lower().isin(["true", "1"])]
        return sel[["category", "text"]].dropna().astype(str)

    cur, refp = picks(log), picks(ref)
    if len(cur) < 2 or len(refp) < 2:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, verdicts = run_drift(refp, cur.tail(cfg.window_requests), cfg)
    return [vars(v) for v in verdicts.values()]


def run_monitoring(
    serving_log: pd.DataFrame,
    feedback: pd.DataFrame | None,
    reference: pd.DataFrame | None,
    out_dir: str | Path,
    cfg: MonitorConfig | None = None,
    reference_feedback: pd.DataFrame | None = None,
    set_aside: pd.DataFrame | None = None,
) -> dict:
    """Judge the latest window of a serving log; write report.html, summary.json, rejected rows.

    Raises `DataContractError` for an unusable table (missing columns, no valid rows); bad rows are
    set aside in `rejected.parquet` and counted in `summary["counts"]`.
    """
    cfg = cfg or MonitorConfig()
    summary, rejected = evaluate(
        serving_log, feedback, reference, reference_feedback, cfg, set_aside
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_rejected(rejected, out_dir, "monitor")
    ref_log = reference if reference is not None and "request_id" in reference.columns else None
    evidently = _evidently(ref_log, serving_log, cfg)
    summary["evidence"]["evidently"] = evidently
    path = out_dir / REPORT_HTML
    path.write_text(page(summary, evidently), encoding="utf-8")
    summary["report_html"] = str(path)
    (out_dir / SUMMARY_JSON).write_text(
        json.dumps(summary, indent=2, default=str), encoding="utf-8"
    )
    return summary
