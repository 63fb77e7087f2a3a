"""Starting pushgen's deployment on this machine as a cluster would: helpers for the cluster tests
(not a test module). The namespace's Secrets from deploy's template, KServe's storage initializer
with the env its credential builder gives it, the pipeline's publish step into the ConfigMap's
Feast store, the three pods from their manifests (tests/pods.py), the graph driven through the
URLs KServe's router calls."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pushgen.core.store import ArtifactStore
from serving.deploy import load_manifest, predict_url
from serving.stack import free_port
from tests.admission import as_dict, config_features_patch, storage_initializer_env
from tests.pods import namespaces_available, start_pod

KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # moto's


def secrets_of(deployed: dict, redis: str) -> dict[str, dict[str, str]]:
    """The namespace's Secrets: deploy's S3 template filled in, and the Feast connection."""
    s3 = deployed["templates/s3-secret"]
    filled = {**s3.string_data, **KEYS}
    return {s3.metadata.name: filled, "pushgen-feast": {"connection": redis}}


def load_deployment(out: Path) -> dict:
    """Every object `deploy` wrote under `out`, by stem path (`templates/s3-secret`, ...)."""
    return {str(p.relative_to(out).with_suffix("")): load_manifest(p) for p in out.rglob("*.yaml")}


def storage_initializer(isvc, deployed: dict, out: Path) -> Path:
    """KServe's storage-initializer step: Storage.download(STORAGE_URI, /mnt/models), with the
    env KServe's credential builder gives it (tests/admission.py), nothing of this process's S3
    settings."""
    env = {e.name: e.value for e in isvc.spec.predictor.containers[0].env if e.value}
    code = (
        "import sys; from kserve_storage import Storage; Storage.download(sys.argv[1], sys.argv[2])"
    )
    secret = as_dict(deployed["templates/s3-secret"])  # the template, keys filled in
    filled = {**secret, "stringData": {**secret["stringData"], **KEYS}}
    built = storage_initializer_env(
        deployed["serviceaccount"], {secret["metadata"]["name"]: filled}
    )
    assert built.get("AWS_ENDPOINT_URL"), "the initializer would download from AWS"
    drop = ("PUSHGEN_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    full_env = {k: v for k, v in os.environ.items() if k not in drop} | built
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-c", code, env["STORAGE_URI"], str(out)],
        env=full_env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


def publish_features_run(deployed: dict, videos, captions, pushes, stage: Path) -> str:
    """The pipeline's `publish_features` component (kfp's local runner) into the store the
    ConfigMap names: its feature_store.yaml uploaded to `<store>/feast`, the `feature_repo` the
    pipeline is given. Returns that prefix."""
    from kfp import dsl

    from components.materialize import publish_features
    from pipelines.training import run_in_process
    from serving.deploy import store_uri

    cfg = cfg_of(deployed)
    prefix = f"{store_uri(cfg)}/feast"
    config = stage / "feature_store.yaml"
    config.write_text(deployed["feature-store"].data["feature_store.yaml"])
    ArtifactStore.from_uri(prefix).put_file(config, "feature_store.yaml")
    paths = {}
    for name, df in (("videos", videos), ("captions", captions), ("pushes", pushes)):
        paths[name] = str(stage / f"{name}.parquet")
        df.to_parquet(paths[name], index=False)

    @dsl.pipeline(name="publish-features-only")
    def publish_only():
        tables = {
            name: dsl.importer(artifact_uri=path, artifact_class=dsl.Dataset).output
            for name, path in paths.items()
        }
        publish_features(**tables, feature_repo=prefix)

    run_in_process(publish_only, {}, stage / "publish-root")
    return prefix


def start_stack(deployed: dict, stage: Path, secrets: dict) -> dict:
    """Storage initializers, then generator, ranker and transformer from their manifests, under
    the cluster's Knative flags (the deploy's patch, if any); {"pods", "volumes", "routes"}."""
    why = namespaces_available()
    if why:
        pytest.skip(f"cannot emulate pods here: {why}")
    from concurrent.futures import ThreadPoolExecutor

    flags = config_features_patch(deployed)
    vols: dict[str, dict[str, Path]] = {}
    for stem in ("generator", "ranker", "pushgen"):
        vols[stem] = {"tmp": stage / "volumes" / stem / "tmp"}
    vols["pushgen"].update(
        {n: stage / "volumes" / "pushgen" / n for n in ("serving-log", "feature-repo")}
    )
    for stem in vols:
        for path in vols[stem].values():
            path.mkdir(parents=True)
    config = deployed["feature-store"].data["feature_store.yaml"]
    (vols["pushgen"]["feature-repo"] / "feature_store.yaml").write_text(config)
    ports = {stem: free_port() for stem in vols}
    routes = {deployed[s].metadata.name: f"http://127.0.0.1:{ports[s]}" for s in vols}

    def own(stem: str) -> None:  # the writable volumes belong to the pod user
        for name in ("tmp", "serving-log"):
            if name in vols[stem]:
                subprocess.run(["chown", "-R", "1000:1000", str(vols[stem][name])], check=True)

    def start(stem: str):
        return start_pod(
            deployed[stem], vols[stem], ports[stem], routes, stage, secrets=secrets,
            knative_flags=flags,
        )  # fmt: skip

    started = {}
    try:
        with ThreadPoolExecutor(2) as pool:
            jobs = {
                stem: pool.submit(
                    storage_initializer,
                    deployed[stem],
                    deployed,
                    stage / "volumes" / stem / "models",
                )
                for stem in ("generator", "ranker")
            }
            for stem, job in jobs.items():  # each pod starts once its initializer is done
                vols[stem]["models"] = job.result()
                own(stem)
                started[stem] = start(stem)
        own("pushgen")
        started["pushgen"] = start("pushgen")
        for pod in started.values():
            pod.wait_ready()
    except BaseException:
        stop_stack(started)
        raise
    return {"pods": started, "volumes": vols, "routes": routes}


def stop_stack(started: dict) -> None:
    for pod in started.values():
        pod.terminate()
    for pod in started.values():
        pod.stop()


def cfg_of(deployed):
    """The DeployConfig's names the manifests were built from (version URI, namespace)."""
    from serving.deploy import DeployConfig

    env = {e.name: e.value for e in deployed["generator"].spec.predictor.containers[0].env}
    return DeployConfig(
        version_uri=env["STORAGE_URI"].rsplit("/", 1)[0],
        namespace=deployed["graph"].metadata.namespace,
    )


def drive_graph(stack: dict, deployed: dict) -> dict:
    """The InferenceGraph's Sequence through the URLs KServe's router calls; the last answer."""
    by_name = {o.metadata.name: o for o in deployed.values() if o.kind == "InferenceService"}
    body: dict = {"instances": [{"caption": "A cat learns to skateboard in a park"}]}
    answer: dict = {}
    for i, step in enumerate(deployed["graph"].spec.nodes["root"].steps):
        isvc = by_name[step.service_name]
        url = predict_url(cfg_of(deployed), isvc)
        host = f"http://{isvc.metadata.name}.{isvc.metadata.namespace}.svc.cluster.local"
        request = body if step.data == "$request" or i == 0 else answer
        if step.map_predictions_to_instances and request.get("predictions"):
            request = {"instances": request["predictions"]}  # the router's sequenceReqRes
        resp = httpx.post(
            url.replace(host, stack["routes"][isvc.metadata.name]), json=request, timeout=120
        )
        assert resp.status_code == 200, f"{step.name}: {url} -> {resp.status_code} {resp.text}"
        answer = resp.json()
    return answer


def hub_base_release(tmp_path: Path) -> ArtifactStore:
    """A store with release v1 whose generator names a hub base model (no local weights)."""
    import json

    src = tmp_path / "src"
    for name in ("generator", "ranker"):
        (src / name).mkdir(parents=True)
        (src / name / "model.safetensors").write_bytes(b"0" * 64)
    base = {"base_model": "HuggingFaceTB/SmolLM2-1.7B-Instruct"}
    (src / "generator" / "pushgen_generator.json").write_text(json.dumps(base))
    store = ArtifactStore.from_uri(tmp_path / "store")
    store.register("v1", {"generator": src / "generator", "ranker": src / "ranker"})
    return store
