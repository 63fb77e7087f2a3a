"""Evidently part of the monitor: column drift tests between reference and current pushes.

One Evidently `Report` holds a `ValueDrift` test per monitored column (category mix, text
descriptors, reward_score where the reference has one) and the category distribution of both
sides. Evidently 0.7 reports a drift *score* per column; whether it counts as drift depends on the
method (p-value below, or distance above, the threshold), so the verdict is read from the report's
own tests (`include_tests=True`) rather than re-derived here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.descriptors import TextLength, WordCount
from evidently.metrics import UniqueValueCount, ValueDrift

from monitoring.config import MonitorConfig

TEXT_DESCRIPTORS = ("text_length", "word_count")


@dataclass
class ColumnDrift:
    """Evidently's verdict on one column."""

    column: str
    method: str  # stat test Evidently used
    score: float  # p-value or distance, depending on `method`
    threshold: float
    drifted: bool  # Evidently's test failed


def _dataset(df: pd.DataFrame, numerical: list[str]) -> Dataset:
    definition = DataDefinition(
        categorical_columns=["category"], numerical_columns=numerical, text_columns=["text"]
    )
    descriptors = [TextLength("text", alias="text_length"), WordCount("text", alias="word_count")]
    cols = ["category", "text", *numerical]
    return Dataset.from_pandas(
        df[cols].reset_index(drop=True), data_definition=definition, descriptors=descriptors
    )


def build_report(cfg: MonitorConfig, with_score: bool) -> Report:
    """The Evidently report: category mix, text descriptors and (optionally) reward_score drift."""
    metrics = [
        ValueDrift(
            column="category",
            method=cfg.category_drift_method,
            threshold=cfg.category_drift_threshold,
        ),
        UniqueValueCount(column="category"),
    ]
    metrics += [
        ValueDrift(column=col, method=cfg.text_drift_method, threshold=cfg.text_drift_threshold)
        for col in TEXT_DESCRIPTORS
    ]
    if with_score:
        metrics.append(
            ValueDrift(
                column="reward_score",
                method=cfg.score_drift_method,
                threshold=cfg.score_drift_threshold,
            )
        )
    return Report(metrics, include_tests=True)


def run_drift(
    reference: pd.DataFrame, current: pd.DataFrame, cfg: MonitorConfig
) -> tuple[object, dict[str, ColumnDrift]]:
    """Run the Evidently report; returns (snapshot, {column: verdict})."""
    with_score = "reward_score" in reference.columns and reference["reward_score"].notna().any()
    numerical = ["reward_score"] if with_score else []
    ref = reference.dropna(subset=numerical) if numerical else reference
    snapshot = build_report(cfg, with_score).run(
        _dataset(current, numerical), _dataset(ref, numerical)
    )
    return snapshot, parse_drift(snapshot.dict())


def parse_drift(result: dict) -> dict[str, ColumnDrift]:
    """Per-column verdicts from a snapshot's `.dict()` (metrics carry scores, tests carry verdicts)."""
    status = {
        t["metric_config"]["metric_id"]: t["status"]
        for t in result["tests"]
        if t["metric_config"]["params"]["type"].endswith("ValueDrift")
    }
    verdicts = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        verdicts[config["column"]] = ColumnDrift(
            column=config["column"],
            method=config["method"],
            score=float(metric["value"]),
            threshold=float(config["threshold"]),
            drifted=status.get(metric["id"]) == "FAIL",
        )
    return verdicts
