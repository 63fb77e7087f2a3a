"""Hashing and integrity: sha256 of files and trees, safe keys and version names, atomic copies,
and the check that a fetched model matches the manifest it was released with. No backend here:
every store and the serving side build on it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from pushgen.core.errors import ConfigError, PushgenError

MANIFEST = "manifest.json"
VERSION_FILE = ".pushgen-version.json"  # in each artifact dir: {artifact, manifest}
_MARKERS = {VERSION_FILE, ".complete"}  # bookkeeping files next to the weights, not listed
LATEST = "LATEST"
VERSIONS = "versions"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CHUNK_BYTES = 1 << 20


class StoreError(PushgenError):
    """The store cannot do what was asked: missing bucket or key, no credentials, bad hash."""


class IntegrityError(StoreError):
    """A stored file does not match the hash recorded for it."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def hash_paths(paths: list[str | Path]) -> str:
    """One sha256 over the files (or directory trees) given: the 'source data hash' of a run."""
    h = hashlib.sha256()
    for root in paths:
        for rel, file in sorted(walk_files(Path(root)).items()):
            h.update(rel.encode())
            h.update(b"\0")
            h.update(sha256_file(file).encode())
    return h.hexdigest()


def walk_files(path: Path) -> dict[str, Path]:
    """{relative posix path: file} for a file (its own name) or every file under a directory."""
    if path.is_file():
        return {path.name: path}
    if not path.is_dir():
        raise StoreError(f"no such file or directory: {path}")
    return {p.relative_to(path).as_posix(): p for p in sorted(path.rglob("*")) if p.is_file()}


def check_version(version: str) -> str:
    """A version name is one path segment of safe characters (it becomes a directory/prefix)."""
    if not _VERSION_RE.match(version or "") or version in (".", ".."):
        raise ConfigError(
            f"bad version name {version!r}: use letters, digits, '.', '_' or '-' (max 128)"
        )
    return version


def safe_key(key: str) -> str:
    """Normalise a relative store key; refuse absolute keys and any '..' that would escape."""
    parts = PurePosixPath(key.replace("\\", "/")).parts
    if key.startswith("/") or any(p == ".." for p in parts):
        raise StoreError(f"refusing key {key!r}: it points outside the store")
    return "/".join(p for p in parts if p not in ("", "."))


def path_inside(dest: Path, rel: str) -> Path:
    """`dest/rel`, refusing a rel that would land outside dest (zip-slip)."""
    target = (dest / rel).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise StoreError(f"refusing to write {rel!r} outside {dest}")
    return target


def atomic_copy(src: Path, dst: Path, expected_sha: str | None = None) -> None:
    """Copy via a temp file in the destination dir, verify the hash, then rename into place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        if expected_sha is not None and sha256_file(tmp) != expected_sha:
            raise IntegrityError(f"{src}: sha256 does not match the manifest")
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def manifest_hash(manifest: dict[str, Any]) -> str:
    """sha256 of a version's manifest (canonical JSON, without the `uri` that locates it)."""
    body = {k: v for k, v in manifest.items() if k != "uri"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def find_manifest(model_dir: str | Path) -> tuple[Path, list[str]] | None:
    """(manifest path, artifact names to check) for a version dir or one artifact dir, if any.

    A version directory holds `manifest.json` next to its artifacts; an artifact directory
    (`<version>/ranker`) finds it one level up, as both the store and KServe's storage initializer
    lay a version out.
    """
    model_dir = Path(model_dir)
    if (model_dir / VERSION_FILE).is_file():
        return model_dir / VERSION_FILE, []
    if (model_dir / MANIFEST).is_file():
        manifest = json.loads((model_dir / MANIFEST).read_text())
        names = [n for n in manifest.get("artifacts", {}) if (model_dir / n).exists()]
        return model_dir / MANIFEST, names
    parent = model_dir.resolve().parent / MANIFEST
    if parent.is_file():
        return parent, [model_dir.resolve().name]
    return None


def verify_artifacts(model_dir: str | Path, require_manifest: bool = False) -> str | None:
    """Check every file of `model_dir` against its version's manifest (full-file sha256).

    Returns the model version, `<version>-<manifest sha256[:12]>`, or None when no manifest is
    found and `require_manifest` is off. A missing, extra, resized or changed file, or a manifest
    that does not list the artifact, raises `IntegrityError` naming the file.
    """
    model_dir = Path(model_dir)
    found = find_manifest(model_dir)
    if found is None:
        if require_manifest:
            raise IntegrityError(
                f"{model_dir}: no {MANIFEST} in it or its parent; a served model must be a "
                "registered version (pushgen store layout) so its files can be verified"
            )
        return None
    path, names = found
    try:
        manifest = json.loads(path.read_text())
        dirs = {n: path.parent / n for n in names}
        if path.name == VERSION_FILE:  # an artifact downloaded on its own
            manifest, name = manifest["manifest"], manifest["artifact"]
            dirs = {name: path.parent}
        artifacts = manifest["artifacts"]
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{path}: not a pushgen version manifest ({exc})") from None
    if not dirs:
        raise IntegrityError(f"{model_dir}: {path} lists none of its artifacts")
    for name, art_dir in dirs.items():
        if name not in artifacts:
            raise IntegrityError(f"{art_dir}: artifact {name!r} is not in {path}")
        files = artifacts[name].get("files", {})
        present = {
            p.relative_to(art_dir).as_posix()
            for p in art_dir.rglob("*")
            if p.is_file() and p.name not in _MARKERS
        }
        extra = sorted(present - set(files))
        if extra:
            raise IntegrityError(f"{art_dir}: file(s) {extra} are not in the manifest {path}")
        for rel, info in sorted(files.items()):
            file = path_inside(art_dir, safe_key(rel))
            if not file.is_file():
                raise IntegrityError(f"{file}: listed in {path} but missing")
            if file.stat().st_size != info.get("size") or sha256_file(file) != info.get("sha256"):
                raise IntegrityError(
                    f"{file}: sha256 does not match the manifest {path} (corrupted or tampered)"
                )
    return f"{manifest.get('version', 'unversioned')}-{manifest_hash(manifest)[:12]}"
