"""`pushgen deploy`'s objects meet what a stock KServe + Knative + KFP install applies (fast tier).

The rules and their default values are in tests/admission.py, each with the upstream file it comes
from. Every object `deploy` writes goes through them: Knative's field mask (default
config-features, changed only by the patch `deploy` writes and the README names), KServe's
credential builder (the storage initializer's S3 env), KFP's default artifact URIs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pushgen.cli.main import main
from pushgen.core.store import ArtifactStore
from serving.deploy import load_manifest
from tests.admission import (
    KFP_DEFAULT_PIPELINE_ROOT,
    config_features_patch,
    kfp_artifact_uri,
    knative_refusals,
    kserve_refusals,
    storage_initializer_env,
)

REPO = Path(__file__).resolve().parents[1]
ISVCS = ("generator", "ranker", "pushgen")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ArtifactStore:
    """A store with a registered version (placeholder weights: deploy only reads manifests)."""
    root = tmp_path_factory.mktemp("adm")
    for name in ("generator", "ranker"):
        (root / "src" / name).mkdir(parents=True)
        (root / "src" / name / "model.safetensors").write_bytes(b"0" * 64)
    store = ArtifactStore.from_uri(root / "store")
    store.register(
        "v1", {"generator": root / "src" / "generator", "ranker": root / "src" / "ranker"}
    )
    return store


def deploy(store: ArtifactStore, out: Path, *extra: str) -> dict:
    """`pushgen deploy` into `out`; every YAML it wrote (subfolders too), loaded, by stem path."""
    assert main(["deploy", "--store", store.uri, "--version", "v1", "--out", str(out), *extra]) == 0
    return {
        str(p.relative_to(out).with_suffix("")): load_manifest(p)
        for p in sorted(out.rglob("*.yaml"))
    }


def test_a_cpu_rollout_passes_knatives_default_field_mask(store, tmp_path):
    objects = deploy(store, tmp_path / "out", "--gpus", "0")
    assert config_features_patch(objects) == {}  # no Knative flag changed
    for stem in ISVCS:
        assert knative_refusals(objects[stem]) == [], stem
        assert kserve_refusals(objects[stem]) == [], stem


def test_a_gpu_rollout_asks_for_exactly_the_flags_the_readme_names(store, tmp_path):
    objects = deploy(store, tmp_path / "out", "--gpu-node-selector", "nvidia.com/gpu.product=H100")
    patch = config_features_patch(objects)
    assert patch == {
        "kubernetes.podspec-tolerations": "enabled",
        "kubernetes.podspec-nodeselector": "enabled",
    }
    refused = knative_refusals(objects["generator"])  # a stock install refuses the generator
    assert any("tolerations" in e for e in refused) and any("nodeSelector" in e for e in refused)
    for stem in ISVCS:
        assert knative_refusals(objects[stem], patch) == [], stem
    readme = (REPO / "README.md").read_text()
    for flag in patch:
        assert flag in readme
    # the patch is not in the folder `kubectl apply -f <out>` applies
    assert not (tmp_path / "out" / "config-features-patch.yaml").exists()
    # with only the default toleration, only that flag
    only_tol = config_features_patch(deploy(store, tmp_path / "tol"))
    assert only_tol == {"kubernetes.podspec-tolerations": "enabled"}


def test_the_transformer_needs_no_fieldref_and_no_volume_claims(store, tmp_path):
    objects = deploy(store, tmp_path / "out", "--gpus", "0")
    pred = objects["pushgen"].spec.predictor
    env = pred.containers[0].env
    assert all(e.value_from is None or e.value_from.field_ref is None for e in env)
    assert all(v.persistent_volume_claim is None for v in pred.volumes)
    assert not [s for s, o in objects.items() if o.kind == "PersistentVolumeClaim"]
    args = pred.containers[0].args
    assert "$(POD_NAME)" not in " ".join(args)


def test_the_model_download_goes_to_the_configured_s3_endpoint(store, tmp_path):
    """KServe reads the S3 settings from the Secret's annotations, not the account's."""
    objects = deploy(store, tmp_path / "out", "--s3-endpoint", "minio.minio:9000", "--s3-no-https")
    sa = objects["serviceaccount"]
    secret = objects["templates/s3-secret"]
    assert [r.name for r in sa.secrets] == [secret.metadata.name]
    filled = yaml.safe_load((tmp_path / "out" / "templates" / "s3-secret.yaml").read_text())
    filled["stringData"] = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    env = storage_initializer_env(sa, {secret.metadata.name: filled})
    assert env["AWS_ENDPOINT_URL"] == "http://minio.minio:9000"
    assert env["S3_ENDPOINT"] == "minio.minio:9000" and env["S3_USE_HTTPS"] == "0"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("k", "s")
    # the account's own annotations are read only with IRSA: none of ours are S3 settings
    assert not any("s3-" in k for k in (sa.metadata.annotations or {}))
    # the template's key names are the ones KServe's default config reads
    assert set(filled["stringData"]) == set(secret.string_data)


def test_an_irsa_role_sits_on_the_account_and_needs_no_keys(store, tmp_path):
    arn = "arn:aws:iam::123456789012:role/pushgen"
    objects = deploy(store, tmp_path / "out", "--s3-role-arn", arn, "--s3-region", "eu-west-1")
    sa = objects["serviceaccount"]
    assert sa.metadata.annotations["eks.amazonaws.com/role-arn"] == arn
    assert "templates/s3-secret" not in objects and not sa.secrets  # no keys to fill in
    env = storage_initializer_env(sa, {})
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1" and "AWS_ENDPOINT_URL" not in env


def test_the_old_service_account_annotations_send_the_download_to_aws():
    """The defect itself: S3 settings on the account (no IRSA) never reach the initializer."""
    sa = {
        "metadata": {"annotations": {"serving.kserve.io/s3-endpoint": "minio:9000"}},
        "secrets": [{"name": "s"}],
    }
    secret = {"stringData": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}}
    assert "AWS_ENDPOINT_URL" not in storage_initializer_env(sa, {"s": secret})


def test_kfp_default_artifact_uris_open_as_stores(monkeypatch):
    from pushgen.core.store import S3Store

    uri = kfp_artifact_uri("pushgen-monitoring", "r1", "ingest-feedback", "7", "data")
    assert uri.startswith(KFP_DEFAULT_PIPELINE_ROOT)
    monkeypatch.delenv("PUSHGEN_S3_ENDPOINT", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    store = ArtifactStore.from_uri(uri)
    assert isinstance(store, S3Store)
    assert store.bucket == "mlpipeline" and store.prefix.endswith("ingest-feedback/7/data")
    # minio:// is KFP's in-cluster MinIO unless an endpoint is configured
    assert store.config.endpoint_url == "http://minio-service.kubeflow:9000"
    monkeypatch.setenv("PUSHGEN_S3_ENDPOINT", "http://127.0.0.1:9")
    assert ArtifactStore.from_uri(uri).config.endpoint_url == "http://127.0.0.1:9"


def test_prometheus_scrapes_the_port_the_app_serves_metrics_on(store, tmp_path):
    objects = deploy(store, tmp_path / "out", "--gpus", "0")
    for stem in ISVCS:
        ann = objects[stem].metadata.annotations
        # KServe's enable-prometheus-scraping rewrites the port to the queue-proxy's 9091
        assert "serving.kserve.io/enable-prometheus-scraping" not in ann
        assert ann["prometheus.io/port"] == "8080" and ann["prometheus.io/path"] == "/metrics"


def test_network_policy_namespaces_are_flags(store, tmp_path):
    objects = deploy(
        store,
        tmp_path / "out",
        "--ingress-namespace", "kourier-system",
        "--ingress-namespace", "knative-serving",
        "--monitoring-namespace", "observability",
    )  # fmt: skip
    peers = objects["networkpolicy"].spec.ingress[0]._from
    names = [
        p.namespace_selector.match_labels["kubernetes.io/metadata.name"]
        for p in peers
        if p.namespace_selector
    ]
    assert names == ["kourier-system", "knative-serving", "observability"]


def test_a_hub_model_gets_a_cache_volume_sized_for_it(tmp_path):
    from tests.stack import hub_base_release

    hub = hub_base_release(tmp_path)
    out = tmp_path / "out"
    args = ["deploy", "--store", hub.uri, "--version", "v1", "--out", str(out), "--hub-online"]
    assert main([*args, "--hub-cache-size", "40Gi"]) == 0
    pred = load_manifest(out / "generator.yaml").spec.predictor
    env = {e.name: e.value for e in pred.containers[0].env}
    vols = {v.name: v for v in pred.volumes}
    assert vols["hf-cache"].empty_dir.size_limit == "40Gi"
    mounts = {m.name: m.mount_path for m in pred.containers[0].volume_mounts}
    assert env["HF_HOME"] == mounts["hf-cache"]
    assert (
        knative_refusals(
            load_manifest(out / "generator.yaml"), {"kubernetes.podspec-tolerations": "enabled"}
        )
        == []
    )


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--ingress-namespace", "Bad_NS"], "--ingress-namespace"),
        (["--monitoring-namespace=-x"], "--monitoring-namespace"),
        (["--hub-cache-size", "lots"], "--hub-cache-size"),
        (["--feast-online-store", "postgres"], "feast online store"),
        (["--namespace", "UPPER"], "--namespace"),
    ],
)
def test_deploy_bad_input_is_one_line_exit_2_nothing_written(store, tmp_path, capsys, extra, words):
    out = tmp_path / "out"
    code = None
    try:
        code = main(["deploy", "--store", store.uri, "--version", "v1", "--out", str(out), *extra])
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert words in err.splitlines()[-1], err
    assert not out.exists()


def test_the_emulated_webhooks_refuse_what_upstream_refuses():
    """The rules are live: the old transformer (fieldRef, two writable PVCs) and a bad name."""
    old = {
        "metadata": {"name": "pushgen"},
        "spec": {
            "predictor": {
                "containers": [
                    {
                        "name": "kserve-container",
                        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {}}}],
                        "volumeMounts": [{"name": "log", "mountPath": "/var/lib/log"}],
                    }
                ],
                "volumes": [{"name": "log", "persistentVolumeClaim": {"claimName": "l"}}],
            }
        },
    }
    refused = " ".join(knative_refusals(old))
    assert "fieldRef" in refused and "Persistent volume claim" in refused
    assert "Persistent volume write" in refused
    changed = {
        "kubernetes.podspec-fieldref": "enabled",
        "kubernetes.podspec-persistent-volume-claim": "enabled",
        "kubernetes.podspec-persistent-volume-write": "enabled",
    }
    assert knative_refusals(old, changed) == []
    assert kserve_refusals({"metadata": {"name": "Pushgen_1"}, "spec": {"predictor": {}}})
