"""The report's figures (matplotlib, Agg backend), each a function from figures to a PNG file.

Every plot reads numbers the report computed from the run; nothing here measures anything.

    path = plot_arms(replay_report, out_dir / "replay_arms.png")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def plot_bars(values: dict[str, float], title: str, path: Path, xlabel: str = "") -> Path:
    """One horizontal bar per key."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(values) + 1.2))
    names = list(values)[::-1]
    ax.barh(names, [values[n] for n in names], color="#4c72b0")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return _save(fig, path)


def plot_grouped(
    series: dict[str, dict[str, float]], title: str, path: Path, percent: bool = True
) -> Path:
    """Grouped bars: one group per category, one bar per series (e.g. history / SFT / base)."""
    plt = _plt()
    cats = sorted({c for s in series.values() for c in s})
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(cats))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + i * width, [values.get(c, 0.0) for c in cats], width, label=name)
    ax.set_xticks(x + width * (len(series) - 1) / 2, cats, rotation=30, ha="right")
    if percent:
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_calibration(reliability: list[dict], title: str, path: Path) -> Path:
    """Reliability curve: mean predicted P(a beats b) vs observed win rate per bin."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    pts = [r for r in reliability if r["count"]]
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.plot([r["mean_predicted"] for r in pts], [r["observed_rate"] for r in pts], "o-")
    for r in pts:
        ax.annotate(str(r["count"]), (r["mean_predicted"], r["observed_rate"]), fontsize=7)
    ax.set_xlabel("predicted P(a beats b)")
    ax.set_ylabel("observed win rate")
    ax.set_title(title)
    return _save(fig, path)


def plot_intervals(
    rows: list[tuple[str, float, tuple[float, float]]],
    title: str,
    path: Path,
    xlabel: str,
    reference: float | None = None,
) -> Path:
    """Point estimates with 95% intervals as horizontal error bars (first row on top)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(rows) + 1.3))
    rows = rows[::-1]
    y = np.arange(len(rows))
    mid = np.array([r[1] for r in rows])
    err = np.array([[m - r[2][0], r[2][1] - m] for r, m in zip(rows, mid, strict=True)]).T
    err = np.maximum(err, 0)  # a BCa interval can sit beside its estimate on skewed data
    ax.errorbar(mid, y, xerr=err, fmt="o", capsize=3, color="#4c72b0")
    if reference is not None:
        ax.axvline(reference, color="grey", ls="--", lw=1)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return _save(fig, path)
