"""`pushgen report --run DIR --out DIR`: a training run's report, Markdown + self-contained HTML.

Sections, every number computed from the run's own artifacts:
- data: rows removed per cleaning rule, the label distribution;
- generator (from the replay): controllability per category, beat-baseline base vs SFT, style mix
  against the history, diversity, guard rejections;
- ranker: held-out accuracy against the Bayes-optimal accuracy, pointwise and feature floors when
  trained, the calibration curve; Upworthy figures when an `eval-ranker` JSON is given;
- system: the replay (`pushgen.evidence.replay`) against the video's mean human push, intervals
  drawn as error bars, the ablations, where the gain comes from (`pushgen.evidence.breakdown`).

    summary = build_report(RunArtifacts.find("runs/results"), "runs/results/report",
                           replay=json.load(open("runs/results/replay/replay.json")))
"""

from __future__ import annotations

import base64
import html as html_lib
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from pushgen.data.contracts import read_table
from pushgen.evidence import plots
from pushgen.evidence.replay_data import RunArtifacts
from pushgen.evidence.tables import (
    ablation_markdown,
    arm_keys,
    arm_label,
    arm_markdown,
    breakdown_markdown,
    loss_markdown,
    style_topic_markdown,
)

RESULTS_JSON = "results.json"


# --- sections: each returns (markdown lines, {figure name: png path}, figures for results.json) --
def data_section(run: RunArtifacts, out: Path) -> tuple[list[str], dict, dict]:
    """Rows removed per cleaning rule and the label distribution."""
    clean = json.loads(run["clean/metrics"].read_text())
    rules = {
        k.removeprefix("removed_hard."): int(v)
        for k, v in clean.items()
        if k.startswith("removed_hard.")
    }
    rules["soft filter (cluster CTR quantiles)"] = int(clean.get("removed_soft", 0))
    labels = read_table(run["label/labelled"])["category"].value_counts()
    figures = {
        "rows_in": int(clean.get("rows_in", 0)),
        "rows_kept": int(clean.get("rows_out", 0)),
        "removed_by_rule": rules,
        "label_distribution": {k: int(v) for k, v in labels.items()},
    }
    md = [
        f"{figures['rows_in']:,} pushes in, {figures['rows_kept']:,} kept for SFT "
        f"({figures['rows_kept'] / max(figures['rows_in'], 1):.0%}). A push can fail several "
        "hard rules, so the rule counts overlap.",
        "",
        "| rule | pushes removed |",
        "| --- | --- |",
        *(f"| {k} | {v:,} |" for k, v in rules.items()),
        "",
        "| label | pushes |",
        "| --- | --- |",
        *(f"| {k} | {v:,} |" for k, v in figures["label_distribution"].items()),
    ]
    pngs = {
        "clean_rules": plots.plot_bars(
            rules, "pushes removed per cleaning rule", out / "data_clean_rules.png", "pushes"
        ),
        "labels": plots.plot_bars(
            figures["label_distribution"],
            "label distribution (kept pushes)",
            out / "data_labels.png",
            "pushes",
        ),
    }
    return md, pngs, figures


def generator_section(replay: dict, out: Path) -> tuple[list[str], dict, dict]:
    """Generator figures from the replay's candidates (scored by the simulator's truth)."""
    gen = replay["generator"]
    arms = [a for a in ("sft", "base", "sampled", "uncontrolled") if a in gen] + sorted(
        a for a in gen if a.startswith("weighting_")
    )
    rows = [
        ("controllability (simulator's style cues)", "controllability", "{:.1%}"),
        ("beat-baseline rate (vs every human push)", "beat_baseline_rate", "{:.1%}"),
        ("mean true CTR of a candidate", "mean_true_ctr", "{:.2%}"),
        ("distinct-2 within a video", "distinct_2", "{:.3f}"),
        ("guard rejected", "guard_rejected_share", "{:.1%}"),
    ]
    md = [
        f"{replay['videos']} held-out videos, {len(replay['categories'])} categories; "
        "candidates decoded as served (greedy, 24 new tokens); `sampled` is one candidate per "
        "category and `uncontrolled` one prompt K times, both sampled at T=0.8.",
        "",
        "| metric | " + " | ".join(arms) + " |",
        "| --- |" + " --- |" * len(arms),
    ]
    for label, key, fmt in rows:
        md.append(f"| {label} | " + " | ".join(fmt.format(gen[a][key]) for a in arms) + " |")
    reasons = gen["sft"]["guard_reasons"]
    md += [
        "",
        "Guard rejections of SFT candidates by reason: "
        + (", ".join(f"{k} {v}" for k, v in reasons.items()) or "none")
        + ".",
    ]
    control = {a: gen[a]["controllability_by_category"] for a in ("sft", "base") if a in gen}
    mix = {"history (human pushes)": replay["history_style_mix"]}
    mix.update({a: gen[a]["style_mix"] for a in ("sft", "base") if a in gen})
    pngs = {
        "controllability": plots.plot_grouped(
            control, "controllability per category", out / "generator_control.png"
        ),
        "style_mix": plots.plot_grouped(
            mix, "style mix: history vs generated", out / "generator_style_mix.png"
        ),
        "ctr_by_category": plots.plot_grouped(
            {a: gen[a]["ctr_by_category"] for a in ("sft", "base") if a in gen},
            "mean true CTR of each category's candidate",
            out / "generator_ctr.png",
        ),
    }
    figures = {a: {k: gen[a][k] for _, k, _ in rows} for a in arms}
    return md, pngs, figures


def ranker_section(
    run: RunArtifacts, out: Path, upworthy: dict | None, device: str | None
) -> tuple[list[str], dict, dict]:
    """Held-out accuracy vs Bayes-optimal, floors, calibration; Upworthy when given."""
    from pushgen.ranker.evaluate import EvalConfig, evaluate_model_dir
    from pushgen.ranker.recipe import read_ab_tests

    ev = evaluate_model_dir(
        run["reward/ranker"],
        read_ab_tests(run["simulate-or-ingest/ab_tests"]),
        EvalConfig(device=device),
    )
    r = ev["ranker"]
    figures: dict[str, Any] = {
        "scored": ev["scored"],
        "pairs": r["pairs"],
        "accuracy": r["accuracy"],
        "auc": r["auc"],
        "ece": r["ece"],
        "accuracy_significant": r.get("accuracy_significant"),
    }
    md = [
        f"Scored: {ev['scored']}.",
        "",
        "| model | accuracy | significant pairs | note |",
        "| --- | --- | --- | --- |",
        f"| pairwise ranker | {r['accuracy']:.3f} ({r['pairs']} pairs) | "
        f"{r.get('accuracy_significant', float('nan')):.3f} ({r.get('significant_pairs', 0)}) "
        f"| AUC {r['auc']:.3f}, ECE {r['ece']:.3f} |",
    ]
    for key, name in (
        ("pointwise", "pointwise regressor"),
        ("feature_baseline", "surface-feature floor"),
    ):
        if key in ev:
            m = ev[key]
            figures[f"{key}_accuracy"] = m["accuracy"]
            md.append(
                f"| {name} | {m['accuracy']:.3f} | {m.get('accuracy_significant', float('nan')):.3f} | |"
            )
    if "bayes_optimal" in ev:
        b = ev["bayes_optimal"]
        figures["bayes_optimal_accuracy"] = b["empirical_accuracy"]
        figures["share_of_bayes_optimal"] = b["ranker_share"]
        md.append(
            f"| Bayes-optimal (knows the true CTRs) | {b['empirical_accuracy']:.3f} | "
            f"{b['empirical_accuracy_significant']:.3f} | ranker reaches "
            f"{b['ranker_share']:.1%} of it |"
        )
    sel = ev.get("selection", {})
    if sel.get("groups"):
        md += [
            "",
            f"Selection among each held-out test's arms ({sel['groups']} tests, "
            f"{sel['ctr']} CTR): random {sel['random']:.2%}, Copeland "
            f"{sel['copeland']['mean_ctr']:.2%}, best {sel['best']:.2%}.",
        ]
    if upworthy:
        u = upworthy["ranker"]
        figures["upworthy"] = {
            "accuracy": u["accuracy"],
            "accuracy_significant": u.get("accuracy_significant"),
            "pairs": u["pairs"],
            "significant_pairs": u.get("significant_pairs"),
        }
        md += [
            "",
            f"Upworthy ({upworthy.get('scored', 'held-out stories')}): accuracy "
            f"{u['accuracy']:.3f} on {u['pairs']} pairs, {u.get('accuracy_significant', float('nan')):.3f} "
            f"on {u.get('significant_pairs', 0)} significant pairs.",
        ]
    pngs = {
        "calibration": plots.plot_calibration(
            r["reliability"], "ranker calibration (held-out pairs)", out / "ranker_calibration.png"
        )
    }
    return md, pngs, figures


def system_section(replay: dict, out: Path) -> tuple[list[str], dict, dict]:
    """The replay: every arm against the mean human push with intervals, the ablations, where
    the gain comes from, goals."""
    md = [
        "### True CTR of each arm against the video's mean human push",
        "",
        "Uplift: geometric mean of per-video ratios, 95% BCa bootstrap interval over videos; "
        "'higher on': share of videos, 95% Wilson interval.",
        "",
        *arm_markdown(replay),
        "",
        "### Ablations (one thing changed)",
        "",
        *ablation_markdown(replay),
        "",
        "### Where the chosen push's CTR comes from",
        "",
        *loss_markdown(replay),
        "",
        *breakdown_markdown(replay),
        "",
        *style_topic_markdown(replay),
    ]
    if "goals" in replay:
        md += [
            "",
            "Goals: "
            + "; ".join(f"{k}: {'met' if v else 'not met'}" for k, v in replay["goals"].items())
            + ".",
        ]
    keys = [k for k in arm_keys(replay) if "uplift" in replay["arms"][k]]
    rows = [
        (arm_label(k), replay["arms"][k]["uplift"], tuple(replay["arms"][k]["uplift_ci"]))
        for k in keys
    ]
    pngs = {
        "replay_uplift": plots.plot_intervals(
            rows,
            "CTR vs the mean human push (95% BCa CI)",
            out / "replay_uplift.png",
            "uplift (geometric mean of per-video ratios)",
            0.0,
        ),
        "replay_beats": plots.plot_intervals(
            [
                (
                    arm_label(k),
                    replay["arms"][k]["beats_rate"],
                    tuple(replay["arms"][k]["beats_rate_ci"]),
                )
                for k in keys
            ],
            "share of videos where the arm beats the mean human push (95% Wilson CI)",
            out / "replay_beats.png",
            "share of videos",
            0.5,
        ),
    }
    return md, pngs, {}


# --- assembling --------------------------------------------------------------------------------
def _html(markdown: str, pngs: dict[str, Path]) -> str:
    """A self-contained page: the Markdown's tables and text, each PNG embedded inline."""
    body, table = [], []

    def flush() -> None:
        if table:
            rows = [r for r in table if not re.fullmatch(r"\|( ?-+ ?\|)+", r)]
            cells = [
                [
                    re.sub(r"[*][*](.+?)[*][*]", r"<b>\1</b>", html_lib.escape(c.strip()))
                    for c in r.strip("|").split("|")
                ]
                for r in rows
            ]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            rest = "".join(
                "<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:]
            )
            body.append(f"<table><tr>{head}</tr>{rest}</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if m := re.fullmatch(r"(#+) (.*)", line):
            level = len(m.group(1))
            body.append(f"<h{level}>{html_lib.escape(m.group(2))}</h{level}>")
        elif m := re.fullmatch(r"!\[(.*)\]\((.*)\)", line):
            png = pngs.get(m.group(1))
            if png is not None:
                data = base64.b64encode(Path(png).read_bytes()).decode()
                body.append(
                    f"<img alt='{html_lib.escape(m.group(1))}' src='data:image/png;base64,{data}'>"
                )
        elif line.strip():
            text = re.sub(r"[*][*](.+?)[*][*]", r"<b>\1</b>", html_lib.escape(line))
            body.append(f"<p>{text.replace('`', '')}</p>")
    flush()
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{padding:2px 10px;"
        "text-align:left;border-bottom:1px solid #ddd}table{border-collapse:collapse}"
        "img{max-width:100%;display:block;margin:8px 0}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>pushgen run report</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )


def build_report(
    run: RunArtifacts,
    out_dir: str | Path,
    replay: dict | None = None,
    upworthy: dict | None = None,
    device: str | None = None,
) -> dict:
    """Write report.md, report.html and the PNGs into `out_dir`; returns the figures
    (what `results.json` holds)."""
    from pushgen.core.machine import describe_machine

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = ["# pushgen run report", "", f"Run: `{run.root}`. Machine: {describe_machine()}.", ""]
    pngs: dict[str, Path] = {}
    figures: dict[str, Any] = {"machine": describe_machine()}
    sections = [("Data", lambda: data_section(run, out))]
    if replay:
        sections.append(("Generator", lambda: generator_section(replay, out)))
    sections.append(("Ranker", lambda: ranker_section(run, out, upworthy, device)))
    if replay:
        sections.append(
            ("System: offline replay against the human pushes", lambda: system_section(replay, out))
        )
    else:
        md += [
            "No replay in this run (`pushgen replay --run DIR --sim DIR`): the generator and "
            "system sections need it.",
            "",
        ]
    for title, make in sections:
        lines, section_pngs, section_figures = make()
        md += [f"## {title}", "", *lines, ""]
        md += [f"![{name}]({Path(p).name})" for name, p in section_pngs.items()] + [""]
        pngs.update(section_pngs)
        if section_figures:
            figures[title.split(":")[0].lower()] = section_figures
    if replay:
        figures["replay"] = replay
    markdown = "\n".join(md)
    (out / "report.md").write_text(markdown)
    (out / "report.html").write_text(_html(markdown, pngs))
    return figures


def top_report(results: dict, out_dir: str | Path) -> Path:
    """`report.md` and `report.html` over every seed in `out_dir`: the README's Results text
    first (what was compared, how sure), then the first seed's report in full (its PNGs from
    `seed-<n>/`). Returns the HTML's path."""
    from pushgen.evidence.results import render_section

    out = Path(out_dir)
    first = next(iter(results["seeds"]))
    seed_md = (out / f"seed-{first}" / "report.md").read_text().splitlines()[1:]
    pngs = {}
    body = []
    for line in seed_md:
        if m := re.fullmatch(r"!\[(.*)\]\((.*)\)", line):
            pngs[m.group(1)] = out / f"seed-{first}" / m.group(2)
            line = f"![{m.group(1)}](seed-{first}/{m.group(2)})"
        body.append(re.sub(r"^(#+) ", r"#\1 ", line))
    md = [
        "# pushgen results: the served push against the editors' pushes",
        "",
        render_section(results),
        f"## Seed {first} in detail",
        "",
        *body,
    ]
    markdown = "\n".join(md)
    (out / "report.md").write_text(markdown)
    (out / "report.html").write_text(_html(markdown, pngs))
    return out / "report.html"


def report_table_frame(replay: dict) -> pd.DataFrame:
    """The replay's arms as a frame (for notebooks and tests)."""
    return pd.DataFrame({k: replay["arms"][k] for k in arm_keys(replay)}).T


def pipeline_report(
    artifacts: dict[str, str],
    world_path: str,
    videos_path: str,
    out_dir: str | Path,
    replay_videos: int = 24,
) -> dict:
    """The pipeline's `report` step: replay up to `replay_videos` held-out videos when the data
    is simulated (the world has a truth) and build the report in `out_dir`; returns the figures.

    `artifacts` maps the `RUN_ARTIFACTS` keys to the step's input paths.
    """
    from pushgen.core.errors import ConfigError
    from pushgen.data.simulator import World
    from pushgen.evidence.replay import ReplayConfig, goals, run_replay
    from pushgen.evidence.replay_data import SimWorld, held_out_videos

    run = RunArtifacts(Path(out_dir), {k: Path(v) for k, v in artifacts.items()})
    replay = None
    world_doc = json.loads(Path(world_path).read_text() or "{}")
    if world_doc and replay_videos > 0:
        pushes = read_table(artifacts["simulate-or-ingest/pushes"])
        sim = SimWorld(World.load(world_path), read_table(videos_path), pushes)
        held = held_out_videos(run, sim, unseen_only=False)  # it sees only ingested pushes
        if held:
            cfg = ReplayConfig(videos=min(replay_videos, len(held)))
            try:
                replay, _, _ = run_replay(run, sim, cfg, unseen_only=False)
                replay["goals"] = goals(replay)
            except ConfigError:
                replay = None
    return build_report(run, out_dir, replay)


def main(argv: list[str] | None = None) -> int:
    """Re-render docs/results/report.{md,html} from docs/results/results.json (no rerun)."""
    import argparse

    from pushgen.evidence.results import load_results

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--results", default="docs/results/results.json")
    args = p.parse_args(argv)
    path = Path(args.results)
    print(f"{top_report(load_results(path), path.parent)}: re-rendered from {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
