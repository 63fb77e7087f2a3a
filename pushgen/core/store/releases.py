"""Releases end to end: publishing a training run's artifacts as a version, and the serving side's
fetch of one model from a version's URI (local path or S3) with its integrity checked."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path, PurePosixPath

from pushgen.core.errors import ConfigError
from pushgen.core.store.base import ArtifactStore
from pushgen.core.store.integrity import (
    MANIFEST,
    VERSION_FILE,
    VERSIONS,
    StoreError,
    safe_key,
    verify_artifacts,
)
from pushgen.core.store.s3 import S3Store


def default_version(source_data_hash: str) -> str:
    """`YYYYmmdd-HHMMSS-<hash8>`: sorts by time and says which data it came from."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + (source_data_hash[:8] or "nodata")


def publish_release(
    store_uri: str,
    version: str,
    generator_dir: str,
    ranker_dir: str,
    feature_tables: dict[str, str],
    reports: dict[str, str],
    metrics: dict,
    source_data_hash: str,
    gate: dict | None = None,
    runtimes: dict | None = None,
) -> dict:
    """Stage the release layout in a temp dir and register it as one version; returns the manifest.

    With a quality-gate `gate` decision, the manifest records `status` ("promoted"/"rejected")
    and the decision; a rejected release is stored but never made `LATEST`. `runtimes` (which
    serving runtimes can serve the generator, `pushgen.generator.runtimes`) is recorded as given.
    """
    if not store_uri.strip():
        raise ConfigError(
            "register: store_uri is empty; give a local directory or s3://bucket/prefix"
        )
    store = ArtifactStore.from_uri(store_uri.strip())
    version = version.strip() or default_version(source_data_hash)
    metrics = {k: v for k, v in metrics.items() if k != "display_name"}
    with tempfile.TemporaryDirectory() as tmp:
        staged = {"features": Path(tmp) / "features", "reports": Path(tmp) / "reports"}
        for folder, files in (("features", feature_tables), ("reports", reports)):
            staged[folder].mkdir()
            for name, src in files.items():
                target = name if "." in name else f"{name}.parquet"
                shutil.copyfile(src, staged[folder] / target)
        artifacts = {"generator": generator_dir, "ranker": ranker_dir, **staged}
        promote = gate is None or bool(gate.get("promote"))
        extra = (
            {} if gate is None else {"status": "promoted" if promote else "rejected", "gate": gate}
        )
        if runtimes is not None:
            extra["runtimes"] = runtimes
        return store.register(
            version,
            artifacts,
            metrics=metrics,
            source_data_hash=source_data_hash,
            extra=extra,
            make_latest=promote,
        )


# ----------------------------------------------------------------------------- serving side


def fetch_model(uri: str | Path, dest: str | Path, root: str | Path | None = None) -> Path:
    """A local directory holding the model at `uri`, for serving; downloads from S3 when needed.

    `uri` is a registered artifact (`<store>/versions/<v>/<name>`) or any directory. Local URIs
    must lie inside `root` (default: env `PUSHGEN_STORE_ROOT`, when set) and are used in place;
    S3 URIs are downloaded into `dest`, verified against the version's manifest when one is found.
    Keys with `..` are refused, so a URI can never reach outside its store or write outside `dest`.
    """
    text = str(uri)
    if text.startswith(("s3://", "minio://")):
        return _fetch_s3(text, Path(dest))
    if "://" in text and not text.startswith("file://"):
        raise ConfigError(f"unsupported model URI {text!r}: use a local path or s3://bucket/key")
    raw = text.removeprefix("file://")
    if ".." in PurePosixPath(raw).parts:
        raise StoreError(f"refusing model URI {text!r}: '..' is not allowed")
    path = Path(raw).expanduser().resolve()
    root = root or os.environ.get("PUSHGEN_STORE_ROOT")
    if root is not None and not path.is_relative_to(Path(root).expanduser().resolve()):
        raise StoreError(f"refusing model URI {text!r}: outside the store root {root}")
    if not path.exists():
        raise StoreError(f"no model at {path}")
    if path.is_dir():
        verify_artifacts(path)  # a registered version is checked in place, file by file
    return path


def _fetch_s3(uri: str, dest: Path) -> Path:
    scheme, _, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    parts = safe_key(key).split("/")
    store = ArtifactStore.from_uri(f"{scheme}://{bucket}")  # s3, or KFP's minio
    # `<root>/versions/<v>[/<artifact>]`: verify every file against the version's manifest.
    if VERSIONS in parts[:-1]:
        i = len(parts) - 1 - parts[:-1][::-1].index(VERSIONS) - 1
        version_key, sub = "/".join(parts[: i + 2]), parts[i + 2 :]
        if store.exists(f"{version_key}/{MANIFEST}"):
            manifest = store.get_json(f"{version_key}/{MANIFEST}")
            if not sub:
                root = "/".join(parts[:i])
                return S3Store(f"s3://{bucket}/{root}", store.config).fetch(
                    manifest["version"], dest
                )
            if len(sub) == 1 and sub[0] in manifest["artifacts"]:
                files = manifest["artifacts"][sub[0]]["files"]
                got = store.get_dir("/".join(parts), dest, files=files)
                # the manifest travels with the artifact, so every later load re-verifies
                record = {"artifact": sub[0], "manifest": manifest}
                (got / VERSION_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
                return got
    return store.get_dir("/".join(parts), dest)
