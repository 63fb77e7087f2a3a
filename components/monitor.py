"""KFP component: the monitor on a serving log (inputs, generator and ranker checks).

Reads the serving log, its feedback and a reference (an earlier healthy serving log; given
historical pushes, the log's own earlier windows are the reference), runs
`monitoring.report.run_monitoring`, and writes the HTML report, the JSON summary, the rejected rows
and one metric per check. Its `retrain` output lets a pipeline
branch (`dsl.If(task.outputs["retrain"] == True)`).
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def monitor(
    serving_log: Input[Dataset],
    feedback: Input[Dataset],
    reference: Input[Dataset],
    report: Output[HTML],
    summary: Output[Artifact],
    rejected: Output[Dataset],
    metrics: Output[Metrics],
    config_json: str = "{}",
) -> NamedTuple(
    "MonitorOutputs", [("style_collapse", bool), ("reward_drift", bool), ("retrain", bool)]
):
    """Monitor the latest window; `config_json` holds `MonitorConfig` fields.

    Args:
        serving_log: the serving log (a table, or a directory of shipped window parts).
        feedback: exposures and clicks per request_id.
        reference: the historical pushes (category, text, ctr) the style checks compare with.
        config_json: `monitoring.config.MonitorConfig` fields as JSON.
    """
    import json
    import shutil
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    import pandas as pd

    from monitoring.config import MonitorConfig
    from monitoring.report import run_monitoring
    from pushgen.core.run_report import log_metrics
    from pushgen.data.contracts import read_table, write_table

    cfg = MonitorConfig.from_dict(json.loads(config_json or "{}"))
    with tempfile.TemporaryDirectory() as tmp:
        result = run_monitoring(
            read_table(serving_log.path, "serving_log"),
            read_table(feedback.path, "feedback"),
            read_table(reference.path),
            tmp,
            cfg,
        )
        shutil.copyfile(Path(tmp) / "report.html", report.path)
        shutil.copyfile(Path(tmp) / "summary.json", summary.path)
        aside = Path(tmp) / "rejected.parquet"
        # always write the output, even empty, so downstream steps can read it unconditionally
        write_table(pd.read_parquet(aside) if aside.exists() else pd.DataFrame(), rejected.path)
    # a check not evaluated has no value (None), which log_metrics leaves out
    figures = {
        c["name"]: None if c["value"] is None else float(c["value"]) for c in result["checks"]
    }
    # "window" holds the latest window's counts (a dict, so log_metrics leaves it out)
    figures.update(result["counts"])
    figures.update(
        {flag: int(result[flag]) for flag in ("style_collapse", "reward_drift", "retrain")}
    )
    log_metrics(metrics, figures)
    outputs = namedtuple("MonitorOutputs", ["style_collapse", "reward_drift", "retrain"])
    return outputs(result["style_collapse"], result["reward_drift"], result["retrain"])
