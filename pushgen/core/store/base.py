"""The store's contract (`ArtifactStore`): file primitives each backend implements, and on top of
them the versioned releases every backend shares (register, resolve, fetch). `from_uri` picks a
backend by the URI's scheme; backends register themselves (`local`, `s3`)."""

from __future__ import annotations

import abc
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pushgen.core.errors import ConfigError
from pushgen.core.store.integrity import (
    LATEST,
    MANIFEST,
    VERSION_FILE,
    VERSIONS,
    StoreError,
    check_version,
    path_inside,
    safe_key,
    sha256_file,
    walk_files,
)


@dataclass
class StoreConfig:
    """How to reach S3; every field defaults from the environment, never from code or YAML."""

    # S3-compatible endpoint (MinIO, moto); None means AWS itself.
    endpoint_url: str | None = field(
        default_factory=lambda: (
            os.environ.get("PUSHGEN_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
        )
    )
    # Region for request signing; S3-compatible servers mostly ignore it.
    region: str | None = field(
        default_factory=lambda: (
            os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        )
    )
    # Seconds to wait for a TCP connection: an unreachable endpoint should fail fast, not hang.
    connect_timeout: float = 5.0
    # Attempts per request (botocore "standard" retry mode handles throttling and 5xx).
    max_attempts: int = 3


def is_remote(uri: str | Path) -> bool:
    """Whether `uri` names an object store (`s3://`, `minio://`), not a local path."""
    text = str(uri)
    return "://" in text and not text.startswith("file://")


class ArtifactStore(abc.ABC):
    """Files and versioned releases under one root; `from_uri` picks the backend."""

    uri: str

    @staticmethod
    def from_uri(uri: str | Path, config: StoreConfig | None = None) -> ArtifactStore:
        """`s3://bucket/prefix` (or KFP's `minio://bucket/prefix`) gives an S3 store; a path
        without a scheme is a local directory."""
        text = str(uri)
        scheme = text.split("://", 1)[0] if "://" in text else "file"
        backend = ArtifactStore.backends.get(scheme)
        if backend is None:
            raise ConfigError(
                f"unsupported store URI {text!r}: use a local path, s3://bucket/prefix or "
                "minio://bucket/prefix"
            )
        return backend.open(text, config)

    # --- backends register the URI schemes they serve (`class S3Store(ArtifactStore, scheme="s3")`)
    backends: dict[str, type[ArtifactStore]] = {}

    def __init_subclass__(cls, scheme: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if scheme:
            ArtifactStore.backends[scheme] = cls

    @classmethod
    @abc.abstractmethod
    def open(cls, uri: str, config: StoreConfig | None) -> ArtifactStore:
        """The store for `uri` (a URI of this backend's scheme)."""

    # --- primitives each backend implements
    @abc.abstractmethod
    def put_file(self, local_path: str | Path, key: str) -> dict[str, Any]:
        """Upload one file to `key` (atomic, verified); returns {sha256, size}."""

    @abc.abstractmethod
    def get_file(self, key: str, local_path: str | Path, sha256: str | None = None) -> Path:
        """Download `key` to `local_path` (atomic); verify against `sha256` or the stored hash."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a file exists at `key`."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys (relative to `prefix`) of every file under `prefix`."""

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every file under `prefix`; returns how many."""

    @abc.abstractmethod
    def child_uri(self, key: str) -> str:
        """The URI of `key` in this store (what serving is pointed at)."""

    # --- built on the primitives
    def put_dir(self, local_dir: str | Path, key: str) -> dict[str, dict[str, Any]]:
        """Upload every file under `local_dir` to `key/...`; all or nothing. Returns per-file info."""
        key = safe_key(key)
        files = walk_files(Path(local_dir))
        done: dict[str, dict[str, Any]] = {}
        try:
            for rel, path in files.items():
                done[rel] = self.put_file(path, f"{key}/{rel}")
        except BaseException:
            self.delete_prefix(key)
            raise
        return done

    def get_dir(
        self, key: str, local_dir: str | Path, files: dict[str, dict[str, Any]] | None = None
    ) -> Path:
        """Download everything under `key` into `local_dir` (verified; `files` from a manifest)."""
        key = safe_key(key)
        dest = Path(local_dir)
        rels = sorted(files) if files is not None else self.list(key)
        if not rels:
            raise StoreError(f"nothing stored under {self.child_uri(key)}")
        for rel in rels:
            expected = files[rel]["sha256"] if files is not None else None
            self.get_file(f"{key}/{safe_key(rel)}", path_inside(dest, rel), sha256=expected)
        return dest

    def get_json(self, key: str) -> dict[str, Any]:
        """Read a small JSON file from the store."""
        with tempfile.TemporaryDirectory() as tmp:
            path = self.get_file(key, Path(tmp) / "f.json")
            return json.loads(path.read_text())

    def put_json(self, obj: dict[str, Any], key: str) -> None:
        """Write a small JSON file to the store (atomic)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "f.json"
            path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
            self.put_file(path, key)

    def register(
        self,
        version: str,
        artifacts: dict[str, str | Path],
        metrics: dict[str, Any] | None = None,
        source_data_hash: str = "",
        extra: dict[str, Any] | None = None,
        make_latest: bool = True,
    ) -> dict[str, Any]:
        """Publish `artifacts` ({name: local file or dir}) as immutable `version`; returns the manifest.

        Every file is uploaded and verified first, the manifest written last, then `LATEST`; on any
        failure what was written for this version is removed. `make_latest=False` keeps `LATEST`
        where it is (a candidate the quality gate rejected is kept, never served).
        """
        check_version(version)
        for name in artifacts:
            check_version(name)  # artifact names become directory names too
        base = f"{VERSIONS}/{version}"
        missing = [f"{n}={p}" for n, p in artifacts.items() if not Path(p).exists()]
        if missing:
            raise StoreError(f"cannot register {version!r}: missing artifact(s) {missing}")
        if self.exists(f"{base}/{MANIFEST}"):
            return self._same_release(version, artifacts, source_data_hash)
        manifest: dict[str, Any] = {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source_data_hash": source_data_hash,
            "metrics": metrics or {},
            "artifacts": {},
            **(extra or {}),
        }
        self._publish(base, artifacts, manifest)
        if make_latest:
            self.put_json({"version": version}, LATEST)
        manifest["uri"] = self.child_uri(base)
        return manifest

    def _same_release(
        self, version: str, artifacts: dict[str, str | Path], source_data_hash: str
    ) -> dict[str, Any]:
        """A rerun may register the identical release again (idempotent); anything else is refused."""
        existing = self.resolve(version)
        same = existing.get("source_data_hash") == source_data_hash and set(
            existing["artifacts"]
        ) == set(artifacts)
        for name, path in artifacts.items():
            path = Path(path)
            files = walk_files(path) if path.is_dir() else {path.name: path}
            recorded = existing["artifacts"].get(name, {}).get("files", {})
            same = same and {r: sha256_file(p) for r, p in files.items()} == {
                r: i["sha256"] for r, i in recorded.items()
            }
        if not same:
            raise StoreError(
                f"version {version!r} already exists in {self.uri} with different content; "
                "versions are immutable"
            )
        return existing

    def _publish(self, base: str, artifacts: dict[str, str | Path], manifest: dict) -> None:
        """Upload the artifacts and the manifest under `base`, removing them all on failure."""
        try:
            for name, path in artifacts.items():
                path = Path(path)
                if path.is_dir():
                    files = self.put_dir(path, f"{base}/{name}")
                    manifest["artifacts"][name] = {"kind": "dir", "files": files}
                else:
                    info = self.put_file(path, f"{base}/{name}/{path.name}")
                    manifest["artifacts"][name] = {"kind": "file", "files": {path.name: info}}
            # each artifact carries the manifest, so a download of that artifact alone (KServe's
            # storage initializer fetches one prefix) can still verify every file; then the commit
            for name in artifacts:
                record = {"artifact": name, "manifest": manifest}
                self.put_json(record, f"{base}/{name}/{VERSION_FILE}")
            self.put_json(manifest, f"{base}/{MANIFEST}")
        except BaseException:
            self.delete_prefix(base)
            raise

    def versions(self) -> list[str]:
        """Registered (complete) versions, oldest name first."""
        names = {k.split("/")[0] for k in self.list(VERSIONS) if k.endswith(f"/{MANIFEST}")}
        return sorted(names)

    def resolve(self, version: str = "latest") -> dict[str, Any]:
        """The manifest of `version` ('latest' follows `LATEST`), with its `uri` added."""
        if version == "latest":
            if not self.exists(LATEST):
                raise StoreError(f"no version registered yet in {self.uri}")
            version = self.get_json(LATEST)["version"]
        check_version(version)
        key = f"{VERSIONS}/{version}/{MANIFEST}"
        if not self.exists(key):
            raise StoreError(
                f"version {version!r} not found in {self.uri}; known: {self.versions()}"
            )
        manifest = self.get_json(key)
        manifest["uri"] = self.child_uri(f"{VERSIONS}/{version}")
        return manifest

    def fetch(self, version: str, dest: str | Path, names: list[str] | None = None) -> Path:
        """Download (and verify) a registered version's artifacts into `dest/<name>/`."""
        manifest = self.resolve(version)
        dest = Path(dest)
        base = f"{VERSIONS}/{manifest['version']}"
        for name, art in manifest["artifacts"].items():
            if names is None or name in names:
                self.get_dir(f"{base}/{name}", dest / name, files=art["files"])
        (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        return dest
