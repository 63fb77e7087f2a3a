"""The whole chain on this machine's own services (slow tier, `make test-all`).

Training pipeline (kfp's local runner; store on S3 = moto's server; serving features published to
a real Redis and the S3 registry through the ConfigMap's feature_store.yaml) -> `pushgen deploy`
-> a stock cluster's admission (tests/admission.py) -> storage initializers and pods started from
the manifests (tests/pods.py, tests/stack.py) -> requests by video id and through the graph's URLs
-> the transformer stops and its window ships under the deployment's prefix -> the monitoring
pipeline, as scheduled (one fixed URI, the last hour), reads every row of it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import boto3
import httpx
import pytest

from pushgen.cli.main import main
from pushgen.core.store import ArtifactStore
from serving.stack import free_port
from tests.admission import config_features_patch
from tests.servers import redis_available, start_redis
from tests.stack import cfg_of, drive_graph, load_deployment, secrets_of, start_stack, stop_stack


@pytest.fixture(scope="module")
def s3(s3_endpoint, s3_variables):
    """The session's S3 server, its credentials in the environment for this module's steps."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in s3_variables.items():
            env.setenv(name, value)
        yield s3_endpoint


@pytest.fixture(scope="module")
def redis(s3, tmp_path_factory):
    """A real Redis on 127.0.0.1 (the pushgen-feast Secret's `connection`, and this process's env
    for the pipeline steps kfp's local runner starts)."""
    why = redis_available()
    if why:
        pytest.skip(why)
    port = free_port()
    proc = start_redis(port, tmp_path_factory.mktemp("redis") / "redis.log")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PUSHGEN_FEAST_CONNECTION", f"127.0.0.1:{port}")
        env.setenv("FEAST_S3_ENDPOINT_URL", s3)
        yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


CHAIN = "pushgen-chain"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a training pipeline run + three pods + a monitoring run: ~6 min alone
def test_the_whole_chain_on_this_machines_services(s3, redis, tiny_demo, tmp_path):
    """Training pipeline (store on S3, features published to Redis + the S3 registry) -> deploy
    -> admission -> pods from the manifests -> requests by video id and through the graph's URLs
    -> windows in the store -> the monitoring pipeline's run (as scheduled: one fixed URI, the
    last hour) reading every row of them."""
    import dataclasses

    import pandas as pd

    from pipelines.monitoring import run_local as run_monitoring
    from pipelines.training import run_local
    from pushgen.cli.demo import make_data
    from serving.deploy import DeployConfig, feature_store_yaml, serving_log_uri
    from serving.serving_log import read_serving_windows

    stage = Path(tempfile.mkdtemp(prefix="pushgen-chain-", dir="/var/tmp"))
    stage.chmod(0o755)
    boto3.client("s3", endpoint_url=s3).create_bucket(Bucket=CHAIN)
    store = f"s3://{CHAIN}/store"
    started: dict = {}
    try:
        # 1. the training pipeline, its serving features into the cluster's Feast store
        config = feature_store_yaml(DeployConfig(version_uri=f"{store}/versions/x", s3_endpoint=s3))
        (stage / "feature_store.yaml").write_text(config)
        ArtifactStore.from_uri(f"{store}/feast").put_file(
            stage / "feature_store.yaml", "feature_store.yaml"
        )
        # the base models sit where the image has them: not under /tmp, the pod's own emptyDir
        demo = tiny_demo(stage / "demo", loop=False)
        for field in ("base_model", "backbone"):
            shutil.copytree(getattr(demo, field), stage / "image" / field)
        subprocess.run(["chmod", "-R", "a+rX", str(stage / "image")], check=True)
        demo = dataclasses.replace(
            demo,
            base_model=str(stage / "image" / "base_model"),
            backbone=str(stage / "image" / "backbone"),
        )
        train, world, new_ids = make_data(demo, stage / "demo")
        run_local(
            {
                "data_location": str(train),
                "base_model": demo.base_model,
                "backbone": demo.backbone,
                "sft_max_steps": demo.sft_steps,
                "sft_batch_size": 4,
                "reward_epochs": 1.0,
                "store_uri": store,
                "feature_repo": f"{store}/feast",
                "version": "c1",
                "report_videos": 0,
            },
            stage / "pipeline",
        )
        # 2. deploy what it registered; the ConfigMap is the config the pipeline published to
        out = stage / "deploy"
        argv = ["deploy", "--store", store, "--version", "latest", "--out", str(out)]
        assert main([*argv, "--gpus", "0", "--s3-endpoint", s3]) == 0
        deployed = load_deployment(out)
        assert deployed["feature-store"].data["feature_store.yaml"] == config
        assert config_features_patch(deployed) == {}  # no Knative flag changed
        # 3. pods from the manifests, features from Redis as the pipeline left them
        stack = start_stack(deployed, stage, secrets_of(deployed, redis))
        started = stack["pods"]
        pushgen = started["pushgen"]
        served = []
        for video in new_ids:  # held out of training, published by the pipeline all the same
            resp = httpx.post(
                f"{pushgen.url}/v1/models/pushgen:predict",
                json={"instances": [{"video_id": video}]},
                timeout=120,
            )
            assert resp.status_code == 200, resp.text
            served.append(resp.json()["predictions"][0]["request_id"])
        drive_graph(stack, deployed)
        # 4. the pod stops (a rollout): its window ships under the deployment's prefix
        pushgen.stop()
        assert pushgen.proc.returncode == 0
        uri = serving_log_uri(cfg_of(deployed))
        log, rejected = read_serving_windows(uri)
        assert rejected.empty and set(log["request_id"]) == set(served)
        # 5. the monitoring pipeline as scheduled (fixed URI, last hour) reads every row
        feedback = pd.DataFrame({"request_id": served, "pv": 1000, "clicks": 30})
        feedback.to_parquet(stage / "feedback.parquet", index=False)
        reference = pd.read_parquet(train / "pushes.parquet")[["text", "ctr"]].assign(
            category="Humor"
        )
        reference.to_parquet(stage / "reference.parquet", index=False)
        artifacts = run_monitoring(
            {
                "serving_log_uri": uri,
                "feedback_uri": str(stage / "feedback.parquet"),
                "reference_uri": str(stage / "reference.parquet"),
                "window_hours": 1.0,
                "store_uri": store,
            },
            stage / "monitoring",
        )
        window = pd.read_parquet(artifacts["serving-window/serving_log"])
        assert len(window) == len(log)
        summary = json.loads(Path(artifacts["monitor/summary"]).read_text())
        assert summary.get("retrain") is False  # a handful of requests: nothing alerts
    finally:
        stop_stack(started)
        shutil.rmtree(stage, ignore_errors=True)
