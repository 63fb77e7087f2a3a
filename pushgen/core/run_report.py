"""The summary of a training run: every step's metrics as Markdown, HTML, and flat figures.

The KFP UI renders the Markdown and HTML on the run page; the flat `{section.name: value}` dict is
what the register step files in the release manifest.

    markdown, html, flat = summarise({"ranker": {"val_pairwise_accuracy": 0.71}})
"""

from __future__ import annotations

import html as html_lib
import json
import math
import os


def read_metrics(metadata: dict, path: str) -> dict:
    """The figures a step logged: its Metrics metadata, plus a JSON file at its path if any.

    KFP keeps `log_metric` values in the artifact's metadata; some steps also write a JSON file.
    Non-numeric entries (KFP's own `display_name`) are left out.
    """
    found = dict(metadata or {})
    if path and os.path.isfile(path) and os.path.getsize(path) > 0:
        try:
            with open(path) as f:
                data = json.load(f)
            if isinstance(data, dict):
                found.update(data)
        except (ValueError, UnicodeDecodeError):
            pass  # not JSON: the metadata is the record
    return finite_metrics(dict(sorted(found.items())))


def finite_metrics(values: dict) -> dict[str, float]:
    """The entries that are finite numbers (KFP Metrics hold nothing else); the rest left out."""
    return {
        k: v
        for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def summarise(sections: dict[str, dict]) -> tuple[str, str, dict[str, float]]:
    """(Markdown, HTML, flat `{section.name: value}`) for `{section: {name: value}}`."""

    def fmt(v: float) -> str:
        return f"{v:,}" if isinstance(v, int) else f"{v:.4g}"

    md = ["# pushgen training run: evaluation", ""]
    body = ["<h1>pushgen training run: evaluation</h1>"]
    flat: dict[str, float] = {}
    for section, figures in sections.items():
        md += [f"## {section}", ""]
        body.append(f"<h2>{html_lib.escape(section)}</h2>")
        if not figures:
            md += ["(no metrics logged)", ""]
            body.append("<p>(no metrics logged)</p>")
            continue
        md += ["| metric | value |", "| --- | --- |"]
        rows = []
        for name, value in figures.items():
            flat[f"{section}.{name}"] = value
            md.append(f"| {name} | {fmt(value)} |")
            rows.append(
                f"<tr><td>{html_lib.escape(name)}</td><td>{html_lib.escape(fmt(value))}</td></tr>"
            )
        md.append("")
        body.append("<table><tr><th>metric</th><th>value</th></tr>" + "".join(rows) + "</table>")
    style = "body{font-family:sans-serif}td,th{padding:2px 10px;text-align:left}"
    page = f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head>"
    page += "<body>" + "\n".join(body) + "</body></html>"
    return "\n".join(md), page, flat


def log_metrics(metrics, values: dict[str, float]) -> None:
    """Log `values` on a KFP Metrics output and also write them as JSON at its path.

    kfp's local cache drops an entry whose artifact files are missing, and `log_metric` alone
    writes none: without the file a step with a Metrics output is never served from the cache.
    Entries that are not finite numbers (None, NaN, text) are left out.
    """
    for name, value in finite_metrics(values).items():
        metrics.log_metric(name, value)
    os.makedirs(os.path.dirname(metrics.path) or ".", exist_ok=True)
    with open(metrics.path, "w", encoding="utf-8") as fh:
        json.dump(metrics.metadata, fh)
