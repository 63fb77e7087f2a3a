"""Where served models come from: storage-URI validation, the safetensors-only rule, versions.

A models location is a local directory or an `s3://bucket/prefix` in the artifact store, laid out
as the training pipeline writes it:

    <models>/generator/   LoRA adapter (adapter_config.json + adapter_model.safetensors) or a full model
    <models>/ranker/      pairwise cross-encoder (config.json + model.safetensors + tokenizer)

Local paths must resolve inside the configured root (no `..` or symlink escapes); S3 keys may not
hold `..` segments. Weights must be safetensors (or the packaged GGUF base): a directory holding
pickle checkpoints (`.bin`, `.pt`, ...) is refused, because unpickling runs arbitrary code.

Integrity: before a model is used, every file of it is checked (full-file sha256) against its
version's `manifest.json`, whichever way it arrived: KServe's storage initializer (`/mnt/models`
holds the version, manifest included), an s3:// download, a local directory, or the download
cache (re-verified on every load; its manifest is compared with the store's). `model_version`
is the manifest's hash. `require_manifest` (env `PUSHGEN_REQUIRE_MANIFEST=1`, set in the
cluster manifests) refuses a directory that has none.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pushgen.core.errors import ConfigError
from pushgen.core.store import VERSION_FILE, IntegrityError, manifest_hash, verify_artifacts

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib"}
SAFE_WEIGHT_SUFFIXES = {".safetensors", ".gguf"}
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class StorageConfig:
    """Which locations a server may load models from."""

    root: Path = Path(".")  # local model paths must resolve inside this directory
    cache_dir: Path = Path("runs/model-cache")  # where s3:// models are downloaded to
    # refuse a model directory without a version manifest (a cluster always serves versions)
    require_manifest: bool = field(
        default_factory=lambda: os.environ.get("PUSHGEN_REQUIRE_MANIFEST", "") in {"1", "true"}
    )


# (model dir, its files' size and mtime) -> version; a file changed since then misses the cache
_VERIFIED: dict[tuple, str] = {}


def _stamp(model_dir: Path) -> tuple:
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    return (model_dir, *((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))


def _verify(model_dir: Path, config: StorageConfig) -> Path:
    version = verify_artifacts(model_dir, require_manifest=config.require_manifest)
    if version is not None:
        _VERIFIED[_stamp(model_dir)] = version
    return model_dir


def _check_cache_manifest(dest: Path, uri: str) -> None:
    """A cached artifact's manifest copy must be the store's manifest now, byte for byte."""
    from pushgen.core.store import MANIFEST, ArtifactStore

    record = dest / VERSION_FILE
    if not record.is_file():
        return  # a whole-version download: verify_artifacts checks its manifest.json
    cached = json.loads(record.read_text())["manifest"]
    version_uri = uri.rstrip("/").rsplit("/", 1)[0]
    bucket_root, _, key = version_uri.removeprefix("s3://").partition("/")
    remote = ArtifactStore.from_uri(f"s3://{bucket_root}").get_json(f"{key}/{MANIFEST}")
    if manifest_hash(remote) != manifest_hash(cached):
        raise IntegrityError(
            f"cached model {dest} does not match the store's manifest for {uri}: the cache was "
            "tampered with or the version was re-registered; delete the cache directory"
        )


def _check_s3_key(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not _BUCKET.match(bucket):
        raise ConfigError(f"invalid S3 bucket name {bucket!r} in {uri!r}")
    parts = [p for p in key.split("/") if p]
    if any(p in {"..", "."} for p in parts) or "\\" in key or "\x00" in key:
        raise ConfigError(f"storage URI {uri!r} contains a path-traversal segment")
    return bucket, "/".join(parts)


def resolve_model_location(uri: str | os.PathLike, config: StorageConfig) -> Path:
    """A local directory for `uri`, downloading s3:// URIs into the cache; validated, never escaped."""
    text = str(uri)
    if text.startswith("s3://"):
        bucket, key = _check_s3_key(text)
        dest = (config.cache_dir / bucket / key).resolve()
        if (dest / ".complete").exists():
            _check_cache_manifest(dest, text)  # the marker alone proves nothing
        else:
            from pushgen.core.store import fetch_model  # boto3 is heavy; only s3 users pay for it

            fetch_model(text, dest)
            (dest / ".complete").touch()
        return _verify(dest, config)
    if "://" in text and not text.startswith("file://"):
        raise ConfigError(
            f"unsupported storage URI {text!r}: use a local path or s3://bucket/prefix"
        )
    path = Path(text.removeprefix("file://"))
    root = config.root.resolve()
    resolved = (path if path.is_absolute() else root / path).resolve()
    if resolved != root and root not in resolved.parents:
        raise ConfigError(
            f"model path {text!r} resolves to {resolved}, outside the model root {root}"
        )
    if not resolved.is_dir():
        raise ConfigError(f"model directory {resolved} does not exist")
    return _verify(resolved, config)


def check_safe_weights(model_dir: str | os.PathLike) -> list[Path]:
    """The safetensors/GGUF weight files under `model_dir`; refuses pickle checkpoints."""
    model_dir = Path(model_dir)
    files = [p for p in model_dir.rglob("*") if p.is_file()]
    pickled = sorted(p.relative_to(model_dir) for p in files if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickled:
        raise ConfigError(
            f"refusing to load {model_dir}: it holds pickle checkpoint(s) {[str(p) for p in pickled]}; "
            "re-save the model with safetensors (save_pretrained(..., safe_serialization=True))"
        )
    weights = sorted(p for p in files if p.suffix.lower() in SAFE_WEIGHT_SUFFIXES)
    if not weights:
        raise ConfigError(f"no safetensors weights in {model_dir}")
    return weights


def model_version(model_dir: str | os.PathLike) -> str:
    """The version's identity: `<version>-<manifest sha256[:12]>` for a registered version.

    A directory without a manifest (local development) gets `<dir name>-<sha256[:10]>` over the
    full contents of its weight files.
    """
    path = Path(model_dir).resolve()
    stamp = _stamp(path)
    if stamp in _VERIFIED:  # verified by resolve_model_location and unchanged since
        return _VERIFIED[stamp]
    version = verify_artifacts(path)
    if version is not None:
        _VERIFIED[stamp] = version
        return version
    digest = hashlib.sha256()
    for weights in check_safe_weights(path):
        digest.update(f"{weights.name}\0".encode())
        with weights.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return f"{path.name}-{digest.hexdigest()[:10]}"
