"""The checked-in manifests are what `pushgen deploy` generates, and load back into the SDK classes.

Loading goes field by field through the kserve / kubernetes model classes (the CRDs' schema as the
SDK carries it), so an unknown field anywhere is an error.
"""

from __future__ import annotations

import pytest
import yaml

from pushgen.cli.main import main
from pushgen.core.errors import PushgenError
from serving.deploy import (
    MANIFEST_DIR,
    ManifestConfig,
    build_manifests,
    load_manifest,
    stale_manifests,
    write_manifests,
)


def test_checked_in_manifests_are_current(tmp_path):
    written = write_manifests(tmp_path)
    for path in written:
        rel = path.relative_to(tmp_path)
        assert (MANIFEST_DIR / rel).read_text() == path.read_text(), f"{rel} is stale"
    assert stale_manifests() == []
    assert main(["manifests", "--check"]) == 0


def test_manifests_round_trip_into_sdk_objects():
    built = build_manifests()
    stems = [str(p.relative_to(MANIFEST_DIR).with_suffix("")) for p in MANIFEST_DIR.rglob("*.yaml")]
    assert sorted(stems) == sorted(built)
    for stem, obj in built.items():
        assert load_manifest(MANIFEST_DIR / f"{stem}.yaml") == obj
    gen = built["generator"].spec.predictor
    container = gen.containers[0]
    assert container.resources.requests["nvidia.com/gpu"] == "1"
    assert (gen.min_replicas, gen.max_replicas) == (1, 4)
    env = {e.name: e.value for e in container.env}
    assert env["STORAGE_URI"].endswith("/versions/v1/generator")
    assert env["PUSHGEN_REQUIRE_MANIFEST"] == "1"
    steps = built["graph"].spec.nodes["root"].steps
    assert [s.service_name for s in steps] == ["pushgen-generator", "pushgen-ranker"]
    assert steps[1].map_predictions_to_instances is True


def test_every_predictor_has_probes_scaling_from_its_bound_and_runs_as_non_root():
    from serving.deploy import concurrency_bounds, model_name_of

    built = build_manifests()
    bounds = concurrency_bounds()
    assert bounds["generator"] == 4  # the generator's queue: more than this is a 503
    for stem in ("generator", "ranker", "pushgen"):
        pred = built[stem].spec.predictor
        c = pred.containers[0]
        assert c.readiness_probe.http_get.path == "/v2/health/ready"
        assert c.liveness_probe.http_get.path == "/v2/health/live"
        assert c.liveness_probe.initial_delay_seconds >= 300  # loading is not a hang
        # Knative never sends a pod more than the server accepts; it scales out at half of it
        assert pred.container_concurrency == bounds[stem]
        assert pred.scale_metric == "concurrency" and pred.scale_target < bounds[stem]
        assert pred.service_account_name == "pushgen-models"
        assert (
            c.security_context.run_as_user == 1000 and c.security_context.read_only_root_filesystem
        )
        ann = built[stem].metadata.annotations
        assert ann["prometheus.io/port"] == "8080"  # the app's own /metrics, not KServe's 9091
        assert model_name_of(built[stem]) == {"pushgen": "pushgen"}.get(stem, stem)
        # every path a container writes to is a declared volume, never /var/log
        assert all(not a.startswith("/var/log") for a in c.args)
    log_arg = built["pushgen"].spec.predictor.containers[0].args
    log_dir = log_arg[log_arg.index("--log-dir") + 1]
    mounts = {m.mount_path: m for m in built["pushgen"].spec.predictor.containers[0].volume_mounts}
    assert any(log_dir.startswith(p) and not m.read_only for p, m in mounts.items() if p != "/tmp")
    gen = built["generator"].spec.predictor
    assert gen.tolerations[0].key == "nvidia.com/gpu"
    assert built["ranker"].spec.predictor.tolerations is None


def test_deploy_objects_service_account_policy_and_feast_config():
    built = build_manifests(
        ManifestConfig(
            s3_endpoint="minio.minio:9000",
            s3_use_https=False,
            feast_online_store="redis",
            canary_percent=20,
            gpu_node_selector=(("gpu", "a100"),),
            prometheus=False,
        )
    )
    sa = built["serviceaccount"]
    assert sa.secrets[0].name == "pushgen-s3"
    # KServe reads the S3 settings from the Secret's annotations (kserve pkg/credentials)
    secret = built["templates/s3-secret"].metadata
    assert secret.name == "pushgen-s3" and sa.metadata.annotations is None
    assert secret.annotations["serving.kserve.io/s3-endpoint"] == "minio.minio:9000"
    assert secret.annotations["serving.kserve.io/s3-usehttps"] == "0"
    policy = built["networkpolicy"].spec
    assert policy.pod_selector.match_expressions[0].values == [
        "pushgen-generator",
        "pushgen-ranker",
    ]
    allowed = [p.pod_selector.match_labels for p in policy.ingress[0]._from if p.pod_selector]
    assert {"serving.kserve.io/inferenceservice": "pushgen"} in allowed
    assert {"serving.kserve.io/inferencegraph": "pushgen-graph"} in allowed
    feast = yaml.safe_load(built["feature-store"].data["feature_store.yaml"])
    assert feast["online_store"] == {
        "type": "redis",
        "connection_string": "${PUSHGEN_FEAST_CONNECTION}",
    }
    env = built["pushgen"].spec.predictor.containers[0].env
    assert any(e.name == "PUSHGEN_FEAST_CONNECTION" and e.value_from.secret_key_ref for e in env)
    assert built["generator"].spec.predictor.canary_traffic_percent == 20
    assert built["pushgen"].spec.predictor.canary_traffic_percent is None  # not version-pinned
    assert built["generator"].spec.predictor.node_selector == {"gpu": "a100"}
    assert "prometheus.io/scrape" not in built["ranker"].metadata.annotations
    default = yaml.safe_load(build_manifests()["feature-store"].data["feature_store.yaml"])
    assert default["online_store"]["type"] == "redis"  # every replica shares it
    assert default["registry"]["path"] == "s3://pushgen-models/pushgen/feast/registry.db"


def test_bad_deploy_configs_are_refused():
    for kwargs, words in [
        ({"version_uri": "s3://b/p/versions/latest"}, "named version"),
        ({"version_uri": "s3://b/p/models"}, "versions/<version>"),
        ({"canary_percent": 101}, "outside 0-100"),
        ({"feast_online_store": "dynamo"}, "online store"),
        ({"gpu_tolerations": ("nvidia.com/gpu",)}, "toleration"),
    ]:
        with pytest.raises(PushgenError, match=words):
            ManifestConfig(**kwargs)


def test_check_flags_a_stale_manifest_and_a_bad_file(tmp_path, capsys):
    write_manifests(tmp_path)
    text = (tmp_path / "ranker.yaml").read_text().replace("maxReplicas: 8", "maxReplicas: 9")
    (tmp_path / "ranker.yaml").write_text(text)
    assert stale_manifests(tmp_path) == ["ranker.yaml"]
    assert main(["manifests", "--check", "--out", str(tmp_path)]) == 2
    assert "stale manifests" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"kind": "Deployment"}))
    with pytest.raises(PushgenError, match="not a kind pushgen deploys"):
        load_manifest(tmp_path / "bad.yaml")
    typo = yaml.safe_load((tmp_path / "graph.yaml").read_text())
    typo["spec"]["nodes"]["root"]["steps"][0]["serviceNmae"] = "x"
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(typo))
    with pytest.raises(PushgenError, match="serviceNmae"):
        load_manifest(tmp_path / "typo.yaml")


def test_storage_uri_is_configurable():
    built = build_manifests(ManifestConfig(version_uri="s3://other/versions/v7/"))
    env = {e.name: e.value for e in built["ranker"].spec.predictor.containers[0].env}
    assert env["STORAGE_URI"] == "s3://other/versions/v7/ranker"
