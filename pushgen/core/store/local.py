"""A store in a local directory: a version is staged in `.staging/` and renamed into place."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from pushgen.core.store.base import ArtifactStore, StoreConfig
from pushgen.core.store.integrity import (
    StoreError,
    atomic_copy,
    path_inside,
    safe_key,
    sha256_file,
    walk_files,
)


class LocalStore(ArtifactStore, scheme="file"):
    """A store in a local directory: copies through temp files and renames (atomic on one FS)."""

    @classmethod
    def open(cls, uri: str, config: StoreConfig | None) -> LocalStore:
        return cls(uri.removeprefix("file://"))

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return path_inside(self.root, safe_key(key))

    def put_file(self, local_path: str | Path, key: str) -> dict[str, Any]:
        src = Path(local_path)
        if not src.is_file():
            raise StoreError(f"no such file: {src}")
        try:
            sha = sha256_file(src)
            atomic_copy(src, self._path(key), expected_sha=sha)
        except OSError as exc:
            raise StoreError(f"cannot store {src} at {self.child_uri(key)}: {exc}") from exc
        return {"sha256": sha, "size": src.stat().st_size}

    def get_file(self, key: str, local_path: str | Path, sha256: str | None = None) -> Path:
        src = self._path(key)
        if not src.is_file():
            raise StoreError(f"not in the store: {src}")
        dst = Path(local_path)
        atomic_copy(src, dst, expected_sha=sha256)
        return dst

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        return sorted(walk_files(base)) if base.is_dir() else []

    def delete_prefix(self, prefix: str) -> int:
        base = self._path(prefix)
        if base == self.root:
            raise StoreError("refusing to delete the whole store")
        count = len(self.list(prefix))
        shutil.rmtree(base, ignore_errors=True)
        return count

    def child_uri(self, key: str) -> str:
        return str(self._path(key))

    def _publish(self, base: str, artifacts: dict[str, str | Path], manifest: dict) -> None:
        # Stage the whole version next to its final place, then one rename makes it visible.
        staging = LocalStore(self.root / ".staging" / f"{uuid.uuid4().hex}")
        try:
            ArtifactStore._publish(staging, base, artifacts, manifest)
            final = self._path(base)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging._path(base), final)
        finally:
            shutil.rmtree(staging.root, ignore_errors=True)
