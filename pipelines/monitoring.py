"""The monitoring pipeline (KFP v2): one serving-log window -> alerts -> retraining on alert.

    serving window, import feedback, reference -> monitor -> (report.html, summary, metrics,
        retrain) -> retrain-request -> if retrain: the training pipeline (nested), only the blamed
        part

The serving log is read by the `serving-window` step from the deployment's prefix in the store
(`<store>/serving-log/<namespace>/pushgen`: every pod's windows; `window_hours` > 0 keeps the
last that many hours) or from a table; feedback and reference are imported by URI (`s3://...`,
`minio://...`, or a path the cluster mounts); the
`monitor` component (components/monitor.py) writes the Evidently HTML report, a JSON summary, the
rejected rows and one metric per check, and says whether a retrain is due. Schedule it as a
recurring run on the KFP server (`pushgen pipeline schedule --pipeline monitoring`).

When the monitor says `retrain`, a `dsl.If` turns the window's served pushes and feedback into
new A/B tests beside the past tables at `training_data_uri` (`ingest-feedback`) and runs the
whole training pipeline, nested, on that fresh data location, with the part the alert blamed
(generator, ranker or both; the other is carried over from production), a reason, the same image
and the serving Feast store (`feature_repo`); its gate decides whether the result replaces
production. Every step that touches the store gets its credentials as the training steps do.

    python -m pipelines.monitoring                 # compile to pushgen_monitoring.yaml
"""

import sys
from pathlib import Path

from kfp import compiler, dsl
from kfp.dsl import Dataset

from components import PUSHGEN_IMAGE
from components.ingest_feedback import ingest_feedback
from components.monitor import monitor
from components.retrain_request import retrain_due, retrain_request
from components.serving_window import serving_window
from pipelines.training import (
    DEFAULT_STORE,
    ClusterConfig,
    build_training_pipeline,
    store_credentials,
)
from pushgen.generator.config import GeneratorTrainConfig
from pushgen.ranker.config import RankerTrainConfig

PIPELINE_NAME = "pushgen-monitoring"


def build_monitoring_pipeline(cfg: ClusterConfig | None = None, image: str | None = None):
    """The `@dsl.pipeline`; `cfg` sets the nested training run's resources, retries and
    credentials; `image` is the default of the `image` run parameter (the nested run's too)."""
    cfg = cfg or ClusterConfig()
    training = build_training_pipeline(cfg)
    default_image = image or PUSHGEN_IMAGE

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Alerts on one serving-log window (Evidently reports); on an alert, retrains "
        "the blamed part through the training pipeline and its quality gate.",
    )
    def monitoring_pipeline(
        serving_log_uri: str,
        feedback_uri: str,
        reference_uri: str,
        config_json: str = "{}",
        training_data_uri: str = "",
        store_uri: str = DEFAULT_STORE,
        base_model: str = GeneratorTrainConfig.base_model,
        backbone: str = "default",
        n_videos: int = 200,
        sft_max_steps: int = GeneratorTrainConfig.max_steps,
        reward_epochs: float = RankerTrainConfig.epochs,
        reward_batch_size: int = RankerTrainConfig.batch_size,
        gate_videos: int = 12,
        report_videos: int = 24,
        feature_repo: str = "",
        window_hours: float = 0.0,
        image: str = default_image,
    ):
        window = serving_window(serving_log_uri=serving_log_uri, window_hours=window_hours)
        window.set_display_name("serving window").set_cpu_request("1").set_memory_request("4G")
        store_credentials(window, cfg).set_caching_options(enable_caching=False)
        window.set_container_image(image)
        tables = {"serving_log": window.outputs["serving_log"]}
        for name, uri in (("feedback", feedback_uri), ("reference", reference_uri)):
            imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset, reimport=True)
            imported.set_display_name(f"import {name}")
            tables[name] = imported.output
        check = monitor(**tables, config_json=config_json)
        # never cached: a scheduled run reads a new window at the same URI
        check.set_cpu_request("1").set_memory_request("4G").set_caching_options(
            enable_caching=False
        )
        check.set_container_image(image)
        wanted = retrain_request(summary=check.outputs["summary"])
        wanted.set_display_name("retrain request").set_cpu_request("1").set_memory_request("1G")
        wanted.set_caching_options(enable_caching=False).set_container_image(image)
        due = retrain_due(summary=check.outputs["summary"])
        due.set_display_name("retrain due").set_cpu_request("1").set_memory_request("1G")
        due.set_caching_options(enable_caching=False).set_container_image(image)
        with dsl.If(due.output == True, name="retrain-on-alert"):  # noqa: E712
            # served pushes + feedback of this window become new A/B tests beside the past ones
            fresh = ingest_feedback(
                serving_log=tables["serving_log"],
                feedback=tables["feedback"],
                past_data_location=training_data_uri,
            )
            fresh.set_display_name("ingest feedback").set_cpu_request("1").set_memory_request("4G")
            store_credentials(fresh, cfg)  # reads the past tables from the store
            fresh.set_caching_options(enable_caching=False).set_container_image(image)
            retrain = training(
                data_location=fresh.outputs["Output"],
                n_videos=n_videos,
                store_uri=store_uri,
                base_model=base_model,
                backbone=backbone,
                sft_max_steps=sft_max_steps,
                reward_epochs=reward_epochs,
                reward_batch_size=reward_batch_size,
                gate_videos=gate_videos,
                report_videos=report_videos,
                retrain_part=wanted.outputs["part"],
                reason=wanted.outputs["reason"],
                feature_repo=feature_repo,
                image=image,
            )
            retrain.set_display_name("retrain (training pipeline)")

    return monitoring_pipeline


monitoring_pipeline = build_monitoring_pipeline()


def run_local(params: dict, pipeline_root: str | Path = "runs/monitoring") -> dict:
    """Run the monitoring pipeline (and, on an alert, the nested training run) on this machine
    with kfp's local runner; returns {"<task>/<output>": local path} of its newest outputs."""
    import json

    from pipelines.training import collect_artifacts, run_in_process

    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    run_in_process(build_monitoring_pipeline(ClusterConfig(storage_retries=0)), params, root)
    artifacts = collect_artifacts(root, prefix=PIPELINE_NAME)
    (root / "last_run.json").write_text(json.dumps(artifacts, indent=2))
    return artifacts


def compile_pipeline(
    out_path: str | Path = "pushgen_monitoring.yaml",
    cfg: ClusterConfig | None = None,
    image: str | None = None,
) -> Path:
    """Compile the monitoring pipeline to KFP IR YAML at `out_path` (`cfg`: the nested training
    run's resources, retries and secrets; `image`: the default image of every step)."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pipeline = (
        monitoring_pipeline
        if cfg is None and image is None
        else build_monitoring_pipeline(cfg, image)
    )
    compiler.Compiler().compile(pipeline, package_path=str(out))
    return out


if __name__ == "__main__":
    print(f"compiled {PIPELINE_NAME} -> {compile_pipeline(*sys.argv[1:2])}")
