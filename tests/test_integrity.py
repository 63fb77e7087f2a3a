"""Every way a served model arrives is checked file by file (sha256) against its version's manifest.

Load paths: a version in a local store, one artifact of it, an s3:// download, the download cache
(re-used on the next start), and a directory KServe's storage initializer filled (covered with the
real initializer in test_cluster.py). A one-bit flip in the middle of a weight file, a file added
or removed, a tampered cache or manifest: each fails the load with an error naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import boto3
import pytest

from pushgen.core.store import (
    MANIFEST,
    VERSION_FILE,
    ArtifactStore,
    IntegrityError,
    fetch_model,
    manifest_hash,
    verify_artifacts,
)
from serving.storage import StorageConfig, model_version, resolve_model_location

BUCKET = "pushgen-integrity"


def _flip_middle_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def weights(tmp_path) -> dict[str, Path]:
    """Two artifacts with a 5 MiB 'tensor' each: the middle lies outside the first and last MiB."""
    out = {}
    for name in ("generator", "ranker"):
        d = tmp_path / "src" / name
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"name": name}))
        (d / "model.safetensors").write_bytes(os.urandom(5 << 20))
        out[name] = d
    return out


@pytest.fixture
def local_version(weights, tmp_path) -> Path:
    store = ArtifactStore.from_uri(tmp_path / "store")
    return Path(store.register("v1", weights)["uri"])


def test_local_version_and_artifact_are_verified_and_versioned_by_manifest(local_version):
    cfg = StorageConfig(root=local_version.parent.parent)
    manifest = json.loads((local_version / MANIFEST).read_text())
    expected = f"v1-{manifest_hash(manifest)[:12]}"
    assert resolve_model_location(local_version, cfg) == local_version
    ranker = resolve_model_location(local_version / "ranker", cfg)
    assert model_version(ranker) == expected == verify_artifacts(local_version)
    # the per-artifact copy of the manifest is the manifest
    record = json.loads((ranker / VERSION_FILE).read_text())
    assert manifest_hash(record["manifest"]) == manifest_hash(manifest)

    _flip_middle_bit(ranker / "model.safetensors")  # a size+head+tail fingerprint misses this
    for load in (
        lambda: resolve_model_location(local_version / "ranker", cfg),
        lambda: resolve_model_location(local_version, cfg),
        lambda: fetch_model(local_version / "ranker", "unused"),
        lambda: model_version(local_version / "ranker"),
    ):
        with pytest.raises(
            IntegrityError, match=r"ranker/model\.safetensors: sha256 does not match"
        ):
            load()


def test_added_removed_files_and_foreign_manifests_are_refused(local_version, tmp_path):
    cfg = StorageConfig(root=tmp_path)
    gen = local_version / "generator"
    (gen / "extra.safetensors").write_bytes(b"x")
    with pytest.raises(IntegrityError, match=r"\['extra.safetensors'\] are not in the manifest"):
        resolve_model_location(gen, cfg)
    (gen / "extra.safetensors").unlink()
    (gen / "config.json").unlink()
    with pytest.raises(IntegrityError, match="config.json: listed in .* but missing"):
        resolve_model_location(gen, cfg)
    # a manifest that does not list the artifact
    other = tmp_path / "other" / "versions" / "v2"
    shutil.copytree(local_version / "ranker", other / "mystery")
    (other / "mystery" / VERSION_FILE).unlink()
    (other / MANIFEST).write_text((local_version / MANIFEST).read_text())
    with pytest.raises(IntegrityError, match="artifact 'mystery' is not in"):
        resolve_model_location(other / "mystery", cfg)
    # no manifest at all: fine for local development, refused where one is required
    bare = tmp_path / "bare"
    shutil.copytree(local_version / "ranker", bare)
    (bare / VERSION_FILE).unlink()
    assert resolve_model_location(bare, cfg) == bare.resolve()
    assert model_version(bare).startswith("bare-")
    with pytest.raises(IntegrityError, match="no manifest.json"):
        resolve_model_location(bare, StorageConfig(root=tmp_path, require_manifest=True))


@pytest.fixture
def s3_store(weights, s3_env, request):
    bucket = f"{BUCKET}-{request.node.name[5:30].replace('_', '-')}".strip("-")
    boto3.client("s3", endpoint_url=s3_env).create_bucket(Bucket=bucket)
    store = ArtifactStore.from_uri(f"s3://{bucket}/p")
    store.register("v1", weights)
    return store, s3_env


def test_s3_download_and_cache_are_verified_on_every_load(s3_store, tmp_path):
    store, endpoint = s3_store
    cfg = StorageConfig(root=tmp_path, cache_dir=tmp_path / "cache")
    uri = f"{store.uri}/versions/v1/ranker"
    first = resolve_model_location(uri, cfg)
    version = model_version(first)
    assert version.startswith("v1-") and (first / ".complete").exists()
    assert resolve_model_location(uri, cfg) == first  # cached: no download, still verified

    _flip_middle_bit(first / "model.safetensors")  # tampered cache: the marker proves nothing
    with pytest.raises(IntegrityError, match="model.safetensors: sha256 does not match"):
        resolve_model_location(uri, cfg)

    # a cache whose weights AND manifest copy were rewritten to match each other
    record = json.loads((first / VERSION_FILE).read_text())
    info = record["manifest"]["artifacts"]["ranker"]["files"]["model.safetensors"]
    from pushgen.core.store import sha256_file

    info["sha256"] = sha256_file(first / "model.safetensors")
    (first / VERSION_FILE).write_text(json.dumps(record))
    with pytest.raises(IntegrityError, match="does not match the store's manifest"):
        resolve_model_location(uri, cfg)


def test_a_corrupted_object_in_s3_is_refused_on_download(s3_store, tmp_path):
    store, endpoint = s3_store
    key = "p/versions/v1/generator/model.safetensors"
    client = boto3.client("s3", endpoint_url=endpoint)
    data = bytearray(client.get_object(Bucket=store.bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0x01
    client.put_object(Bucket=store.bucket, Key=key, Body=bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        fetch_model(f"{store.uri}/versions/v1/generator", tmp_path / "dl")
