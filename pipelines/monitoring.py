"""The monitoring pipeline (KFP v2): one serving-log window -> style collapse + reward drift.

    import serving_log, feedback, reference -> monitor -> (report.html, summary, metrics, retrain)

The three tables are imported by URI (`s3://...`, `gs://...`, or a path the cluster mounts); the
`monitor` component (components/monitor.py) writes the Evidently HTML report, a JSON summary, the
rejected rows and one metric per check, and says whether a retrain is due. Schedule it as a
recurring run on the KFP server (one window per day, say).

    python -m pipelines.monitoring                 # compile to pushgen_monitoring.yaml
"""

import sys
from pathlib import Path

from kfp import compiler, dsl
from kfp.dsl import Dataset

from components import PUSHGEN_IMAGE
from components.monitor import monitor

PIPELINE_NAME = "pushgen-monitoring"


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Style collapse and reward drift of one serving-log window (Evidently reports).",
)
def monitoring_pipeline(
    serving_log_uri: str,
    feedback_uri: str,
    reference_uri: str,
    config_json: str = "{}",
    image: str = PUSHGEN_IMAGE,
):
    tables = {}
    for name, uri in (
        ("serving_log", serving_log_uri),
        ("feedback", feedback_uri),
        ("reference", reference_uri),
    ):
        imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset, reimport=False)
        imported.set_display_name(f"import {name}")
        tables[name] = imported.output
    check = monitor(**tables, config_json=config_json)
    check.set_cpu_request("1").set_memory_request("4G").set_caching_options(enable_caching=True)
    check.set_container_image(image)


def compile_pipeline(out_path: str | Path = "pushgen_monitoring.yaml") -> Path:
    """Compile the monitoring pipeline to KFP IR YAML at `out_path`."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(monitoring_pipeline, package_path=str(out))
    return out


if __name__ == "__main__":
    print(f"compiled {PIPELINE_NAME} -> {compile_pipeline(*sys.argv[1:2])}")
