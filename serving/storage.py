"""Where served models come from: storage-URI validation, the safetensors-only rule, versions.

A models location is a local directory or an `s3://bucket/prefix` in the artifact store, laid out
as the training pipeline writes it:

    <models>/generator/   LoRA adapter (adapter_config.json + adapter_model.safetensors) or a full model
    <models>/ranker/      pairwise cross-encoder (config.json + model.safetensors + tokenizer)

Local paths must resolve inside the configured root (no `..` or symlink escapes); S3 keys may not
hold `..` segments. Weights must be safetensors (or the packaged GGUF base): a directory holding
pickle checkpoints (`.bin`, `.pt`, ...) is refused, because unpickling runs arbitrary code.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pushgen.errors import ConfigError

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib"}
SAFE_WEIGHT_SUFFIXES = {".safetensors", ".gguf"}
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class StorageConfig:
    """Which locations a server may load models from."""

    root: Path = Path(".")  # local model paths must resolve inside this directory
    cache_dir: Path = Path("runs/model-cache")  # where s3:// models are downloaded to


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
        if not (dest / ".complete").exists():
            from pushgen.store import fetch_model  # boto3 is heavy; only s3 users pay for it

            fetch_model(text, dest)
            (dest / ".complete").touch()
        return dest
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
    return resolved


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
    """A short fingerprint of the weights: directory name + hash of each file's size, head and tail.

    Hashing whole multi-GB files at start-up is slow; size plus the first and last MiB tells
    retrained weights apart in practice (the safetensors header sits at the head).
    """
    digest = hashlib.sha256()
    for path in check_safe_weights(model_dir):
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with path.open("rb") as fh:
            digest.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                digest.update(fh.read())
    return f"{Path(model_dir).name}-{digest.hexdigest()[:10]}"
