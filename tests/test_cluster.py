"""pushgen on a KServe cluster, as far as one machine can show it.

- `pushgen deploy` writes manifests for a registered version (bad input: one line, exit 2, nothing
  written);
- a stock cluster's admission accepts every object (tests/admission.py: Knative's default field
  mask, no flag changed for a CPU rollout; KServe's credential builder);
- each predictor is started as its pod would start it (tests/pods.py): weights downloaded by
  KServe's own storage code (`kserve_storage.Storage.download`) from a real S3 API (moto's server)
  with the env KServe's credential builder derives from the ServiceAccount and the Secret it lists
  (the Secret from `deploy`'s template), run as uid 1000 with only declared volumes writable; the
  stack then serves a push by video id from Redis (Debian's redis-server), which the pipeline's
  `publish_features` component filled through the ConfigMap's feature_store.yaml;
- the InferenceGraph is driven through the URLs KServe's router would call (GetModelName rules);
- corrupted or tampered weights are refused on every load path.

The whole chain (training pipeline to monitoring pipeline) is tests/test_cluster_chain.py (slow).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import boto3
import httpx
import pytest
import yaml

from pushgen.cli.main import main
from pushgen.core.store import VERSION_FILE, ArtifactStore, IntegrityError
from serving.deploy import load_manifest, model_name_of, predict_url
from serving.stack import free_port
from tests.pods import namespaces_available
from tests.servers import redis_available, start_redis
from tests.stack import (
    cfg_of,
    load_deployment,
    publish_features_run,
    secrets_of,
    start_stack,
    stop_stack,
    storage_initializer,
)

BUCKET = "pushgen-cluster"


@pytest.fixture(scope="module")
def s3(s3_endpoint, s3_variables):
    """The session's S3 server, its credentials in the environment for this module's pods."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in s3_variables.items():
            env.setenv(name, value)
        boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=BUCKET)
        yield s3_endpoint


@pytest.fixture(scope="module")
def stage():
    """A world-readable work area outside /tmp (a pod's /tmp is its own emptyDir)."""
    root = Path(tempfile.mkdtemp(prefix="pushgen-pods-", dir="/var/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def redis(s3, stage):
    """A real Redis on 127.0.0.1, the online store; its address as the pushgen-feast Secret has it
    (and in this process's env, for the pipeline steps kfp's local runner starts)."""
    why = redis_available()
    if why:
        pytest.skip(why)
    port = free_port()
    proc = start_redis(port, stage / "redis.log")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PUSHGEN_FEAST_CONNECTION", f"127.0.0.1:{port}")
        env.setenv("FEAST_S3_ENDPOINT_URL", s3)
        yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def release(s3, stage):
    """Tiny generator + ranker registered as version v1 in the S3 store."""
    from serving.tiny import build_tiny_models

    models = build_tiny_models(stage / "src")  # the generator's base stays here, like the image's
    subprocess.run(["chmod", "-R", "a+rX", str(stage / "src")], check=True)  # as files in an image
    store = ArtifactStore.from_uri(f"s3://{BUCKET}/store")
    store.register("v1", {"generator": models / "generator", "ranker": models / "ranker"})
    return store


@pytest.fixture(scope="module")
def deployed(release, s3, stage):
    out = stage / "deploy"
    rc = main(
        [
            "deploy",
            "--store",
            release.uri,
            "--version",
            "v1",
            "--out",
            str(out),
            "--gpus",
            "0",
            "--s3-endpoint",
            s3,
            "--s3-secret",
            "pushgen-s3",
        ]
    )
    assert rc == 0
    return load_deployment(out)


@pytest.fixture(scope="module")
def pods(deployed, s3, redis, stage, sim):
    """The pipeline's publish step into Redis + the S3 registry, then generator, ranker and
    transformer started from their manifests; yields {"pods", "volumes", "routes"}."""
    from pushgen.data.caption import TextCaptioner

    if namespaces_available():
        pytest.skip(f"cannot emulate pods here: {namespaces_available()}")
    captions = TextCaptioner().caption_videos(sim.videos)
    publish_features_run(deployed, sim.videos, captions, sim.pushes, stage)
    stack = start_stack(deployed, stage, secrets_of(deployed, redis))
    yield stack
    stop_stack(stack["pods"])


def test_pods_start_from_their_manifests_as_non_root_and_serve(pods, deployed, sim, stage):
    video = str(sim.videos["video_id"].iloc[0])
    resp = httpx.post(
        f"{pods['pods']['pushgen'].url}/v1/models/pushgen:predict",
        json={"instances": [{"video_id": video}]},
        timeout=120,
    )
    assert resp.status_code == 200, resp.text
    answer = resp.json()["predictions"][0]
    assert answer["video_id"] == video and answer["alternatives"]
    # model_version is each served version's manifest hash: v1-<12 hex>+v1-<12 hex>
    assert re.fullmatch(r"v1-[0-9a-f]{12}\+v1-[0-9a-f]{12}", answer["model_version"])
    # the serving log went to the declared emptyDir, named after the pod (its HOSTNAME), by uid 1000
    logs = list(pods["volumes"]["pushgen"]["serving-log"].rglob("serving_log-*.jsonl"))
    assert logs and all(p.stat().st_uid == 1000 for p in logs)
    assert "-pushgen-predictor-00001-deployment-0-" in logs[0].name
    # nothing owned by the pod user anywhere but its declared volumes
    volumes = stage / "volumes"
    owned = subprocess.run(
        ["find", "/var/tmp", "/work", "/opt", "/etc", "-xdev", "-user", "1000"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert [p for p in owned if not p.startswith(str(volumes))] == []
    # the models were read through the manifest: a required manifest was there and verified
    assert (pods["volumes"]["ranker"]["models"] / VERSION_FILE).exists()


def test_graph_steps_reach_models_on_the_urls_kserve_builds(pods, deployed):
    graph = deployed["graph"]
    by_name = {
        obj.metadata.name: obj for obj in deployed.values() if obj.kind == "InferenceService"
    }
    steps = graph.spec.nodes["root"].steps
    body: dict = {"instances": [{"caption": "A cat learns to skateboard in a park"}]}
    answer = None
    for i, step in enumerate(steps):
        isvc = by_name[step.service_name]
        url = predict_url(isvc_cfg := cfg_of(deployed), isvc)
        assert url.startswith(
            f"http://{isvc.metadata.name}.{isvc_cfg.namespace}.svc.cluster.local/"
        )
        local = url.replace(
            f"http://{isvc.metadata.name}.{isvc_cfg.namespace}.svc.cluster.local",
            pods["routes"][isvc.metadata.name],
        )
        request = body if step.data == "$request" or i == 0 else answer
        if step.map_predictions_to_instances and request.get("predictions"):
            request = {"instances": request["predictions"]}  # the router's sequenceReqRes
        resp = httpx.post(local, json=request, timeout=120)
        assert resp.status_code == 200, f"{step.name}: {url} -> {resp.status_code} {resp.text}"
        answer = resp.json()
    ranked = answer["predictions"][0]
    assert len(ranked["scores"]) == len(ranked["win_matrix"]) >= 1
    # the old manifests' mistake fails the same way the cluster did: the isvc name is no model
    ranker = pods["routes"]["pushgen-ranker"]
    wrong = httpx.post(f"{ranker}/v1/models/pushgen-ranker:predict", json=body, timeout=30)
    assert wrong.status_code == 404
    # the transformer calls the same model names as KServe's router
    from serving.transformer import TransformerConfig

    assert model_name_of(by_name["pushgen-generator"]) == TransformerConfig.generator_name
    assert model_name_of(by_name["pushgen-ranker"]) == TransformerConfig.ranker_name


def test_the_serving_log_reaches_the_store_when_the_pod_stops(pods, deployed, s3):
    """SIGTERM (a rollout, a scale-down): the open window is closed and shipped as parquet."""
    from serving.serving_log import read_serving_windows

    args = deployed["pushgen"].spec.predictor.containers[0].args
    ship_to = args[args.index("--log-ship-to") + 1]
    # one prefix per deployment, whatever pod, revision or scale: what a schedule monitors
    assert ship_to == f"s3://{BUCKET}/store/serving-log/pushgen/pushgen"
    pod = pods["pods"]["pushgen"]
    resp = httpx.post(
        f"{pod.url}/v1/models/pushgen:predict",
        json={"instances": [{"caption": "A dog surfs a wave"}]},
        timeout=120,
    )
    assert resp.status_code == 200, resp.text
    local = list(pods["volumes"]["pushgen"]["serving-log"].rglob("serving_log-*.jsonl"))
    assert local
    pod.stop()  # SIGTERM, then wait: ModelServer unloads the model, the log ships its window
    assert pod.proc.returncode == 0  # it exited cleanly on SIGTERM, not killed after 20 s
    log, rejected = read_serving_windows(ship_to)
    assert rejected.empty
    assert set(log["request_id"]) >= {resp.json()["predictions"][0]["request_id"]}
    assert len(log) == sum(sum(1 for _ in p.open()) for p in local)  # every row, none lost


def test_a_corrupted_download_is_refused_before_the_model_is_used(release, deployed, s3, stage):
    """KServe's initializer fetches a flipped tensor byte; the ranker pod's load fails, naming it."""
    from serving.ranker import RankerModel
    from serving.storage import StorageConfig

    key = "store/versions/v1/ranker/model.safetensors"
    client = boto3.client("s3", endpoint_url=s3)
    good = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01  # one bit, mid-tensor: a size+head+tail fingerprint misses it
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(bad))
    try:
        out = storage_initializer(deployed["ranker"], deployed, stage / "bad")
    finally:
        client.put_object(Bucket=BUCKET, Key=key, Body=good)
    model = RankerModel("ranker", out, storage=StorageConfig(root=out, require_manifest=True))
    with pytest.raises(IntegrityError, match="model.safetensors: sha256 does not match"):
        model.load()
    assert model.ranker is None and not model.ready


def test_deploy_bad_input_is_one_line_exit_2_nothing_written(release, tmp_path, capsys):
    (tmp_path / "bare" / "versions" / "v1" / "generator").mkdir(parents=True)  # no manifest.json
    cases = [
        (["--store", release.uri, "--version", "v9"], "not found"),
        (["--store", str(tmp_path / "bare"), "--version", "v1"], "not found"),
        (["--store", release.uri, "--version", "v1", "--canary", "101"], "outside 0-100"),
        (["--store", release.uri, "--version", "v1", "--canary", "-1"], "outside 0-100"),
        (["--store", release.uri, "--version", "v1", "--gpu-toleration", "gpu"], "toleration"),
    ]
    for extra, words in cases:
        out = tmp_path / "out"
        assert main(["deploy", *extra, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err
        assert not out.exists()


def test_deploy_canary_promote_rollback(release, tmp_path):
    """Canary pins the new URI with a traffic share; promote drops it; rollback is a deploy."""
    out = tmp_path / "canary"
    assert (
        main(
            [
                "deploy",
                "--store",
                release.uri,
                "--version",
                "v1",
                "--canary",
                "10",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    gen = load_manifest(out / "generator.yaml").spec.predictor
    assert gen.canary_traffic_percent == 10
    env = {e.name: e.value for e in gen.containers[0].env}
    assert env["STORAGE_URI"] == f"s3://{BUCKET}/store/versions/v1/generator"
    assert (
        main(
            ["deploy", "--store", release.uri, "--version", "latest", "--out", str(tmp_path / "p")]
        )
        == 0
    )
    promoted = yaml.safe_load((tmp_path / "p" / "ranker.yaml").read_text())["spec"]["predictor"]
    assert "canaryTrafficPercent" not in promoted
    assert promoted["containers"][0]["env"][2]["value"].endswith("/versions/v1/ranker")


def test_deploy_needs_hub_access_for_a_hub_base_model(tmp_path, capsys):
    """A generator trained on a hub model cannot load with HF_HUB_OFFLINE=1: say so, or allow it."""
    from tests.stack import hub_base_release

    store = hub_base_release(tmp_path)
    out = tmp_path / "out"
    args = ["deploy", "--store", store.uri, "--version", "v1", "--out", str(out)]
    assert main(args) == 2
    assert "--hub-online" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--hub-online"]) == 0
    env = load_manifest(out / "generator.yaml").spec.predictor.containers[0].env
    assert {e.name: e.value for e in env}["HF_HUB_OFFLINE"] == "0"


def test_transformer_with_an_empty_feature_registry_fails_at_start_up(tmp_path):
    """Not ready-then-every-request-fails: load() names the missing feature service."""
    from pushgen.core.errors import PushgenError
    from serving.deploy import DeployConfig, feature_store_yaml
    from serving.transformer import PushgenTransformer, TransformerConfig

    repo = tmp_path / "repo"
    repo.mkdir()
    text = feature_store_yaml(DeployConfig(feast_registry=str(tmp_path / "registry.db")))
    (repo / "feature_store.yaml").write_text(text)
    model = PushgenTransformer("pushgen", TransformerConfig(feature_repo=repo))
    with pytest.raises(PushgenError, match="no feature service 'video_serving'"):
        model.load()
    assert not model.ready
