"""KFP component: one evaluation summary of a training run, for people and for the register step.

It gathers the metrics every upstream step logged (data ingest, cleaning, labelling, SFT, reward
model) into sections and writes them three ways: Markdown and HTML (the KFP UI renders both on the
run page), a JSON report (what the register step files with the release), and one flat Metrics
artifact (`<section>.<name>`) so runs can be compared in the UI.

The work is `pushgen.core.run_report` (plain functions, tested directly).
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Metrics, Output

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def evaluate(
    data_metrics: Input[Metrics],
    clean_metrics: Input[Metrics],
    label_metrics: Input[Metrics],
    generator_metrics: Input[Metrics],
    ranker_metrics: Input[Metrics],
    summary: Output[Markdown],
    report: Output[HTML],
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
):
    """Summarise the run's metrics as Markdown, HTML, JSON and one flat Metrics artifact.

    Args:
        data_metrics: the ingest step's row counts.
        clean_metrics: the clean step's filter and weight figures.
        label_metrics: the label step's category shares and rejected counts.
        generator_metrics: the SFT step's training and held-out figures.
        ranker_metrics: the reward step's training and held-out figures.
    """
    import json
    from pathlib import Path

    from pushgen.core.run_report import log_metrics, read_metrics, summarise

    sections = {
        "data": read_metrics(data_metrics.metadata, data_metrics.path),
        "clean": read_metrics(clean_metrics.metadata, clean_metrics.path),
        "label": read_metrics(label_metrics.metadata, label_metrics.path),
        "generator": read_metrics(generator_metrics.metadata, generator_metrics.path),
        "ranker": read_metrics(ranker_metrics.metadata, ranker_metrics.path),
    }
    markdown, html, flat = summarise(sections)
    Path(summary.path).write_text(markdown)
    Path(report.path).write_text(html)
    Path(evaluation.path).write_text(json.dumps(sections, indent=2, sort_keys=True, default=str))
    log_metrics(metrics, flat)
