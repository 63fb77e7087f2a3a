"""The artifact store against a local directory and a real S3 API (moto's server on 127.0.0.1)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import boto3
import pytest
from moto import settings as moto_settings

from pushgen.core.errors import PushgenError
from pushgen.core.store import (
    VERSION_FILE,
    ArtifactStore,
    IntegrityError,
    StoreError,
    fetch_model,
    hash_paths,
    sha256_file,
)


@pytest.fixture
def bucket(s3_env, request):
    name = "pushgen-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    boto3.client("s3", endpoint_url=s3_env).create_bucket(Bucket=name)
    return name


@pytest.fixture
def release(tmp_path) -> dict[str, Path]:
    """A small model release: an adapter dir with a nested file, a ranker dir, a metrics file."""
    gen = tmp_path / "src" / "adapter"
    (gen / "sub").mkdir(parents=True)
    (gen / "adapter_config.json").write_text('{"r": 8}')
    (gen / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 1000)
    rank = tmp_path / "src" / "ranker"
    rank.mkdir()
    (rank / "model.safetensors").write_bytes(b"\x01" * 5000)
    metrics = tmp_path / "src" / "metrics.json"
    metrics.write_text('{"pairwise_acc": 0.7}')
    return {"generator": gen, "ranker": rank, "metrics": metrics}


def _same_tree(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(
        p.relative_to(b).as_posix()
        for p in b.rglob("*")
        if p.is_file() and p.name != VERSION_FILE  # the manifest copy a download adds
    )
    assert files_a == files_b
    for rel in files_a:
        assert sha256_file(a / rel) == sha256_file(b / rel)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore.from_uri(tmp_path / "store")
    name = request.getfixturevalue("bucket")
    return ArtifactStore.from_uri(f"s3://{name}/models/pushgen")


def test_register_round_trip_verifies_every_file(store, release, tmp_path):
    manifest = store.register("v1", release, metrics={"pairwise_acc": 0.7}, source_data_hash="abc")
    assert manifest["uri"].endswith("versions/v1")
    files = manifest["artifacts"]["generator"]["files"]
    assert set(files) == {"adapter_config.json", "sub/weights.bin"}
    assert files["sub/weights.bin"]["size"] == 256_000
    assert files["sub/weights.bin"]["sha256"] == sha256_file(
        release["generator"] / "sub/weights.bin"
    )

    resolved = store.resolve("latest")
    assert resolved["version"] == "v1" and resolved["source_data_hash"] == "abc"
    assert resolved["metrics"] == {"pairwise_acc": 0.7}

    out = store.fetch("latest", tmp_path / "fetched")
    _same_tree(release["generator"], out / "generator")
    _same_tree(release["ranker"], out / "ranker")
    assert json.loads((out / "metrics" / "metrics.json").read_text()) == {"pairwise_acc": 0.7}

    store.register("v2", {"ranker": release["ranker"]})
    assert store.versions() == ["v1", "v2"]
    assert store.resolve()["version"] == "v2"
    assert store.resolve("v1")["version"] == "v1"
    assert store.register("v1", release, source_data_hash="abc")["version"] == "v1"  # idempotent
    with pytest.raises(StoreError, match="different content"):
        store.register("v1", {"ranker": release["ranker"]}, source_data_hash="abc")
    with pytest.raises(StoreError, match="not found"):
        store.resolve("v9")


def test_put_get_file_and_dir(store, release, tmp_path):
    info = store.put_file(release["metrics"], "misc/metrics.json")
    assert store.exists("misc/metrics.json") and not store.exists("misc/other.json")
    assert info["sha256"] == sha256_file(release["metrics"])
    got = store.get_file("misc/metrics.json", tmp_path / "m.json")
    assert got.read_text() == release["metrics"].read_text()
    store.put_dir(release["generator"], "dirs/gen")
    assert store.list("dirs/gen") == ["adapter_config.json", "sub/weights.bin"]
    _same_tree(release["generator"], store.get_dir("dirs/gen", tmp_path / "gen"))


def test_failed_upload_leaves_nothing_on_s3(bucket, release, s3_env):
    store = ArtifactStore.from_uri(f"s3://{bucket}/p")
    sent: list[str] = []

    def drop_third_upload(request, **_):
        # A transport failure after two files are already stored (connection reset mid-release).
        sent.append(request.url)
        if len(sent) == 3:
            raise ConnectionResetError("connection reset by peer")

    store.client.meta.events.register("before-send.s3.PutObject", drop_third_upload)
    with pytest.raises(Exception, match="reset|reach"):
        store.register("v1", release)
    store.client.meta.events.unregister("before-send.s3.PutObject", drop_third_upload)
    assert len(sent) >= 3  # two files really were stored before the failure
    listed = boto3.client("s3", endpoint_url=s3_env).list_objects_v2(Bucket=bucket)
    assert listed.get("KeyCount", 0) == 0, listed.get("Contents")
    assert store.versions() == []
    with pytest.raises(StoreError, match="no version"):
        store.resolve()


def test_failed_upload_leaves_nothing_locally(tmp_path, release):
    store = ArtifactStore.from_uri(tmp_path / "store")
    # The last artifact cannot be read (EIO), so the release fails after the others were staged.
    broken = tmp_path / "src" / "broken"
    broken.mkdir()
    (broken / "a.txt").write_text("a")
    (broken / "b.bin").symlink_to("/proc/self/mem")
    release = {**release, "broken": broken}
    with pytest.raises(StoreError):
        store.register("v1", release)
    leftovers = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert leftovers == []
    assert store.versions() == []


def test_tampered_object_is_refused_on_download(bucket, release, s3_env, tmp_path):
    store = ArtifactStore.from_uri(f"s3://{bucket}/p")
    store.register("v1", release)
    key = "p/versions/v1/ranker/model.safetensors"
    boto3.client("s3", endpoint_url=s3_env).put_object(Bucket=bucket, Key=key, Body=b"evil")
    with pytest.raises(IntegrityError, match="sha256"):
        fetch_model(f"s3://{bucket}/p/versions/v1/ranker", tmp_path / "dl")
    assert not (tmp_path / "dl" / "model.safetensors").exists()  # no half-verified file left


def test_fetch_model_from_s3_and_local(bucket, release, tmp_path):
    s3 = ArtifactStore.from_uri(f"s3://{bucket}/p")
    uri = s3.register("v1", release)["uri"]
    got = fetch_model(f"{uri}/generator", tmp_path / "gen")
    _same_tree(release["generator"], got)
    whole = fetch_model(uri, tmp_path / "all")
    assert {p.name for p in whole.iterdir()} == {"generator", "ranker", "metrics", "manifest.json"}

    local = ArtifactStore.from_uri(tmp_path / "store")
    luri = local.register("v1", release)["uri"]
    assert fetch_model(f"{luri}/ranker", tmp_path / "unused", root=tmp_path / "store") == Path(
        f"{luri}/ranker"
    )
    with pytest.raises(StoreError, match="outside the store root"):
        fetch_model(release["ranker"], tmp_path / "x", root=tmp_path / "store")
    with pytest.raises(StoreError, match=r"'\.\.'"):
        fetch_model(f"{luri}/../../../etc", tmp_path / "x", root=tmp_path / "store")
    with pytest.raises(StoreError, match="outside the store"):
        fetch_model(f"s3://{bucket}/p/../../etc/passwd", tmp_path / "x")
    with pytest.raises(PushgenError, match="unsupported"):
        fetch_model("ftp://host/model", tmp_path / "x")


def test_missing_bucket_and_key_are_named(s3_env, tmp_path, release):
    store = ArtifactStore.from_uri("s3://no-such-bucket/p")
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        store.resolve()
    with pytest.raises(StoreError, match="no-such-bucket"):
        store.put_file(release["metrics"], "m.json")
    with pytest.raises(StoreError, match="no such file"):
        ArtifactStore.from_uri(tmp_path / "s").put_file(tmp_path / "absent.bin", "k")
    with pytest.raises(StoreError, match="missing artifact"):
        ArtifactStore.from_uri(tmp_path / "s").register("v1", {"gen": tmp_path / "absent"})


def test_unreachable_endpoint_and_missing_credentials(monkeypatch, tmp_path, release):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("PUSHGEN_S3_ENDPOINT", dead)
    with pytest.raises(StoreError, match=f"cannot reach the S3 endpoint {dead}"):
        ArtifactStore.from_uri("s3://b/p").put_file(release["metrics"], "m.json")

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StoreError, match="no S3 credentials.*AWS_ACCESS_KEY_ID"):
        ArtifactStore.from_uri("s3://b/p").put_file(release["metrics"], "m.json")


def test_wrong_credentials_are_reported(bucket, monkeypatch, release):
    # Turn on moto's request authentication: unknown access keys are now refused by the server.
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    with pytest.raises(StoreError, match="refused the credentials"):
        ArtifactStore.from_uri(f"s3://{bucket}/p").put_file(release["metrics"], "m.json")


def test_bad_uris_and_versions(tmp_path):
    with pytest.raises(PushgenError, match="unsupported store URI"):
        ArtifactStore.from_uri("gs://bucket/x")
    with pytest.raises(PushgenError, match="bad S3 URI"):
        ArtifactStore.from_uri("s3:///x")
    store = ArtifactStore.from_uri(tmp_path / "s")
    for bad in ("../v1", "a/b", "", ".."):
        with pytest.raises(PushgenError, match="bad version"):
            store.register(bad, {})
    with pytest.raises(StoreError, match="outside the store"):
        store.put_file(__file__, "../escape.py")


def test_hash_paths_changes_with_content(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.parquet").write_bytes(b"1")
    first = hash_paths([tmp_path / "d"])
    assert hash_paths([tmp_path / "d"]) == first
    (tmp_path / "d" / "a.parquet").write_bytes(b"2")
    assert hash_paths([tmp_path / "d"]) != first
