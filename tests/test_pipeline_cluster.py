"""The pipelines as KFP runs them by default on a cluster (fast tier, compiled specs only).

Every step that touches the store gets the S3 endpoint and Secret the same way; the GPU steps
tolerate the same taints `pushgen deploy` tolerates; the nested retrain gets the image and the
serving Feast store; a schedule passes every option it is given; `publish-features` (it writes
outside the run) is never cached; KFP's default artifact URIs (`minio://...`, tests/admission.py)
open as stores wherever a data location is read.
"""

from __future__ import annotations

import json

import pytest
import yaml

from pipelines.monitoring import compile_pipeline as compile_monitoring
from pipelines.training import ClusterConfig, compile_pipeline
from pushgen.cli.main import main as cli
from serving.deploy import DeployConfig
from tests.admission import kfp_artifact_uri

CFG = ClusterConfig(s3_secret="pushgen-s3", s3_endpoint="http://minio.kubeflow:9000")
STORE_STEPS = {  # every step that reads or writes the artifact store
    "fingerprint",
    "simulate-or-ingest",
    "plan",
    "gate",
    "register",
    "sft",
    "reward",
    "publish-features",
}


def _executors(spec: dict) -> tuple[dict, dict, dict]:
    """(tasks by name incl. nested dags, component of each task, kubernetes platform executors)."""
    tasks: dict = {}
    for _name, comp in [("root", spec["root"]), *spec["components"].items()]:
        for name, task in comp.get("dag", {}).get("tasks", {}).items():
            tasks[name] = task
    platform = spec.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
    return tasks, spec["deploymentSpec"]["executors"], platform.get("executors", {})


def _exec_label(spec: dict, task: dict) -> str:
    return spec["components"][task["componentRef"]["name"]]["executorLabel"]


def _load(path) -> dict:
    docs = list(yaml.safe_load_all(path.read_text()))
    spec = docs[0]
    if len(docs) > 1:
        spec["platforms"] = docs[1]["platforms"]
    return spec


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    return _load(compile_pipeline(tmp_path_factory.mktemp("t") / "t.yaml", CFG))


@pytest.fixture(scope="module")
def monitoring(tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "m.yaml"
    return _load(compile_monitoring(out, CFG, image="registry.example.com/pushgen:9-cuda"))


def test_every_store_step_gets_the_same_credentials(training, monitoring):
    for spec, steps in (
        (training, STORE_STEPS),
        (monitoring, {"serving-window", "ingest-feedback"}),
    ):
        tasks, executors, platform = _executors(spec)
        for step in steps:
            label = _exec_label(spec, tasks[step])
            env = {e["name"]: e["value"] for e in executors[label]["container"].get("env", [])}
            assert env.get("PUSHGEN_S3_ENDPOINT") == CFG.s3_endpoint, step
            secrets = platform[label]["secretAsEnv"]
            assert {s["secretName"] for s in secrets} >= {"pushgen-s3"}, step


def test_gpu_steps_tolerate_what_deploy_tolerates(training):
    tasks, _, platform = _executors(training)
    want = DeployConfig.gpu_tolerations
    for step in ("sft", "reward"):
        tols = platform[_exec_label(training, tasks[step])]["tolerations"]
        assert [f"{t['key']}:{t['effect']}" for t in tols] == list(want)
    assert "tolerations" not in platform.get(_exec_label(training, tasks["caption"]), {})


def test_publish_features_is_never_cached_and_materialize_is(training):
    tasks, _, _ = _executors(training)
    assert tasks["publish-features"]["cachingOptions"] == {}  # kfp writes no enableCache: off
    assert tasks["materialize"]["cachingOptions"]["enableCache"] is True
    assert "feature_repo" not in tasks["materialize"]["inputs"].get("parameters", {})
    param = tasks["publish-features"]["inputs"]["parameters"]["feature_repo"]
    assert param["componentInputParameter"] == "feature_repo"


def test_the_nested_retrain_gets_the_image_and_the_feature_repo(monitoring):
    tasks, _, _ = _executors(monitoring)
    retrain = tasks["pushgen-training"]["inputs"]["parameters"]
    assert retrain["feature_repo"]["componentInputParameter"] == "pipelinechannel--feature_repo"
    assert retrain["image"]["componentInputParameter"] == "pipelinechannel--image"
    inputs = monitoring["root"]["inputDefinitions"]["parameters"]
    assert inputs["image"]["defaultValue"] == "registry.example.com/pushgen:9-cuda"
    assert inputs["window_hours"]["defaultValue"] == 0.0


def test_a_monitoring_schedule_passes_every_option(capsys):
    argv = [
        "pipeline", "schedule", "--pipeline", "monitoring", "--cron", "0 * * * *",
        "--host", "http://kfp.invalid", "--dry-run", "--image", "reg.example.com/pushgen:2-cuda",
        "--s3-secret", "s3c", "--s3-endpoint", "http://minio:9000", "--feast-secret", "fc",
        "--gpu-toleration", "gpu=yes:NoExecute",
        "--param", "serving_log_uri=s3://m/serving-log/pushgen/pushgen",
        "--param", "feedback_uri=s3://m/f", "--param", "reference_uri=s3://m/r",
        "--param", "window_hours=1", "--param", "feature_repo=s3://m/feast",
    ]  # fmt: skip
    assert cli(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    spec = printed["pipeline_spec"]["pipeline_spec"]
    text = json.dumps(printed)
    assert spec["root"]["inputDefinitions"]["parameters"]["image"]["defaultValue"] == (
        "reg.example.com/pushgen:2-cuda"
    )
    assert printed["runtime_config"]["parameters"]["window_hours"] == 1
    for word in ('"s3c"', "http://minio:9000", '"fc"', '"gpu"', "NoExecute"):
        assert word in text, word


def test_a_bad_cluster_option_is_one_line_exit_2(capsys):
    argv = ["pipeline", "schedule", "--pipeline", "training", "--cron", "@daily"]
    code = cli([*argv, "--host", "http://x.invalid", "--dry-run", "--gpu-toleration", "gpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "toleration" in err


def test_kfp_artifact_uris_are_read_as_data_locations(s3_env, sim_dir, tmp_path):
    """`ingest_feedback` hands the nested run `data.uri`, a `minio://` URI under KFP's default
    root; the fingerprint and ingest steps read it (here: moto's S3 as the MinIO)."""
    import boto3

    from pushgen.core.store import ArtifactStore
    from pushgen.data.ingest import content_hash, load_source

    boto3.client("s3", endpoint_url=s3_env).create_bucket(Bucket="mlpipeline")
    uri = kfp_artifact_uri("pushgen-monitoring", "run-1", "ingest-feedback", "9", "data")
    store = ArtifactStore.from_uri(uri)
    for path in sim_dir.iterdir():
        store.put_file(path, path.name)
    s3_uri = uri.replace("minio://", "s3://", 1)
    assert content_hash(uri) == content_hash(s3_uri)
    report = load_source(uri, str(tmp_path / "out"))
    assert report["rows"]["videos"] == 120 and not report["simulated"]
