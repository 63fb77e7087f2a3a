"""The checked-in KServe manifests are what the code generates, and load back into SDK objects."""

from __future__ import annotations

import pytest
import yaml

from pushgen.cli import main
from pushgen.errors import PushgenError
from serving.manifests import (
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
        assert (MANIFEST_DIR / path.name).read_text() == path.read_text(), f"{path.name} is stale"
    assert stale_manifests() == []
    assert main(["manifests", "--check"]) == 0


def test_manifests_round_trip_into_sdk_objects():
    built = build_manifests()
    for stem, obj in built.items():
        assert load_manifest(MANIFEST_DIR / f"{stem}.yaml") == obj
    gen = built["generator"].spec.predictor
    container = gen.containers[0]
    assert container.resources.requests["nvidia.com/gpu"] == "1"
    assert (gen.min_replicas, gen.max_replicas) == (1, 4)
    env = {e.name: e.value for e in container.env}
    assert env["STORAGE_URI"].startswith("s3://") and env["STORAGE_URI"].endswith("/generator")
    steps = built["graph"].spec.nodes["root"].steps
    assert [s.service_name for s in steps] == ["pushgen-generator", "pushgen-ranker"]
    assert steps[1].map_predictions_to_instances is True


def test_check_flags_a_stale_manifest_and_a_bad_file(tmp_path, capsys):
    write_manifests(tmp_path)
    text = (tmp_path / "ranker.yaml").read_text().replace("maxReplicas: 8", "maxReplicas: 9")
    (tmp_path / "ranker.yaml").write_text(text)
    assert stale_manifests(tmp_path) == ["ranker.yaml"]
    assert main(["manifests", "--check", "--out", str(tmp_path)]) == 2
    assert "stale manifests" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"kind": "Deployment"}))
    with pytest.raises(PushgenError, match="not a KServe"):
        load_manifest(tmp_path / "bad.yaml")
    typo = yaml.safe_load((tmp_path / "graph.yaml").read_text())
    typo["spec"]["nodes"]["root"]["steps"][0]["serviceNmae"] = "x"
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(typo))
    with pytest.raises(PushgenError, match="serviceNmae"):
        load_manifest(tmp_path / "typo.yaml")


def test_storage_uri_is_configurable():
    built = build_manifests(ManifestConfig(storage_uri="s3://other/versions/v7/"))
    env = built["ranker"].spec.predictor.containers[0].env
    assert env[0].value == "s3://other/versions/v7/ranker"
