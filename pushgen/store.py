"""The artifact store: versioned model releases in a local directory (default) or on S3 (boto3).

The training pipeline's register step puts the generator adapter, the ranker, the metrics, the
reports and the feature data under one immutable version with a manifest (sha256 and size of every
file, the metrics, the hash of the source data); serving fetches from that URI.

    store = ArtifactStore.from_uri("s3://models/pushgen")   # or a local path
    manifest = store.register("v1", {"generator": "out/adapter", "ranker": "out/ranker"},
                              metrics={"pairwise_acc": 0.71}, source_data_hash="ab12...")
    store.resolve("latest")["uri"]           # -> "s3://models/pushgen/versions/v1"
    fetch_model("s3://models/pushgen/versions/v1/ranker", "/mnt/models")

Layout under the root: `versions/<version>/<artifact>/...`, `versions/<version>/manifest.json`,
and `LATEST` (the name of the newest version). A version exists exactly when its manifest does:
files go first, each verified by hash, the manifest last (the "commit"), `LATEST` after it.
Locally a version is staged in `.staging/` and renamed into place; on S3 (no rename) a failed
upload deletes what it wrote, so neither store ever shows half a version.

Credentials come only from the environment (boto3's chain: `AWS_ACCESS_KEY_ID`/`..._SECRET...`,
a profile, or the pod's service account); the endpoint from `PUSHGEN_S3_ENDPOINT` or
`AWS_ENDPOINT_URL` (MinIO, Ceph, moto).
"""

from __future__ import annotations

import abc
import base64
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from pushgen.errors import ConfigError, PushgenError

MANIFEST = "manifest.json"
VERSION_FILE = ".pushgen-version.json"  # in each artifact dir: {artifact, manifest}
_MARKERS = {VERSION_FILE, ".complete"}  # bookkeeping files next to the weights, not listed
LATEST = "LATEST"
VERSIONS = "versions"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK = 1 << 20


class StoreError(PushgenError):
    """The store cannot do what was asked: missing bucket or key, no credentials, bad hash."""


class IntegrityError(StoreError):
    """A stored file does not match the hash recorded for it."""


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


# ----------------------------------------------------------------------------- helpers


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def hash_paths(paths: list[str | Path]) -> str:
    """One sha256 over the files (or directory trees) given: the 'source data hash' of a run."""
    h = hashlib.sha256()
    for root in paths:
        for rel, file in sorted(_walk(Path(root)).items()):
            h.update(rel.encode())
            h.update(b"\0")
            h.update(sha256_file(file).encode())
    return h.hexdigest()


def _walk(path: Path) -> dict[str, Path]:
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


def _inside(dest: Path, rel: str) -> Path:
    """`dest/rel`, refusing a rel that would land outside dest (zip-slip)."""
    target = (dest / rel).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise StoreError(f"refusing to write {rel!r} outside {dest}")
    return target


def _atomic_copy(src: Path, dst: Path, expected_sha: str | None = None) -> None:
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


# ----------------------------------------------------------------------------- the store


class ArtifactStore(abc.ABC):
    """Files and versioned releases under one root; `from_uri` picks the backend."""

    uri: str

    @staticmethod
    def from_uri(uri: str | Path, config: StoreConfig | None = None) -> ArtifactStore:
        """`s3://bucket/prefix` gives an S3 store; anything else is a local directory."""
        text = str(uri)
        if text.startswith("s3://"):
            return S3Store(text, config or StoreConfig())
        if "://" in text and not text.startswith("file://"):
            raise ConfigError(
                f"unsupported store URI {text!r}: use a local path or s3://bucket/prefix"
            )
        return LocalStore(text.removeprefix("file://"))

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
        files = _walk(Path(local_dir))
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
            self.get_file(f"{key}/{safe_key(rel)}", _inside(dest, rel), sha256=expected)
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
            files = _walk(path) if path.is_dir() else {path.name: path}
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


class LocalStore(ArtifactStore):
    """A store in a local directory: copies through temp files and renames (atomic on one FS)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return _inside(self.root, safe_key(key))

    def put_file(self, local_path: str | Path, key: str) -> dict[str, Any]:
        src = Path(local_path)
        if not src.is_file():
            raise StoreError(f"no such file: {src}")
        try:
            sha = sha256_file(src)
            _atomic_copy(src, self._path(key), expected_sha=sha)
        except OSError as exc:
            raise StoreError(f"cannot store {src} at {self.child_uri(key)}: {exc}") from exc
        return {"sha256": sha, "size": src.stat().st_size}

    def get_file(self, key: str, local_path: str | Path, sha256: str | None = None) -> Path:
        src = self._path(key)
        if not src.is_file():
            raise StoreError(f"not in the store: {src}")
        dst = Path(local_path)
        _atomic_copy(src, dst, expected_sha=sha256)
        return dst

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        return sorted(_walk(base)) if base.is_dir() else []

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


class S3Store(ArtifactStore):
    """A store under `s3://bucket/prefix` through boto3; credentials from the environment only."""

    def __init__(self, uri: str, config: StoreConfig):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise ConfigError(f"bad S3 URI {uri!r}: expected s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = safe_key(prefix)
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.config = config
        self._client = None

    @property
    def client(self):
        """The boto3 S3 client, created on first use."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session()
            if session.get_credentials() is None:
                raise StoreError(
                    f"{self.uri}: no S3 credentials; set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY (on a cluster: mount them from a Kubernetes Secret)"
                )
            self._client = session.client(
                "s3",
                endpoint_url=self.config.endpoint_url,
                region_name=self.config.region,
                config=Config(
                    connect_timeout=self.config.connect_timeout,
                    retries={"max_attempts": self.config.max_attempts, "mode": "standard"},
                ),
            )
        return self._client

    def _key(self, key: str) -> str:
        key = safe_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def child_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _call(self, what: str, fn, **kwargs):
        """Call boto3 and turn the failures a user can fix into one clear `StoreError`."""
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )
        from botocore.exceptions import (
            ConnectionError as BotoConnectionError,
        )

        try:
            return fn(**kwargs)
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise StoreError(
                f"{what}: no S3 credentials ({exc}); set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (on a cluster: mount them from a Kubernetes Secret)"
            ) from exc
        except (EndpointConnectionError, BotoConnectionError) as exc:
            endpoint = self.config.endpoint_url or "AWS S3"
            raise StoreError(
                f"{what}: cannot reach the S3 endpoint {endpoint} ({type(exc).__name__}); "
                "check PUSHGEN_S3_ENDPOINT / AWS_ENDPOINT_URL"
            ) from exc
        except ClientError as exc:
            raise self._client_error(what, exc) from exc

    def _client_error(self, what: str, exc) -> StoreError:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        if code in ("NoSuchBucket",) or (code == "404" and "bucket" in what):
            return StoreError(f"{what}: bucket {self.bucket!r} does not exist")
        if code in ("NoSuchKey", "404"):
            return StoreError(f"{what}: not found")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AccessDenied"):
            return StoreError(
                f"{what}: S3 refused the credentials ({code}); check AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY and the bucket policy"
            )
        if (
            code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch")
            or "Checksum" in code
        ):
            return IntegrityError(f"{what}: the upload did not match its sha256 ({code})")
        return StoreError(f"{what}: S3 error {code}: {err.get('Message', exc)}")

    def check_bucket(self) -> None:
        """Fail early, naming the bucket, when it is missing or not ours."""
        self._call(f"bucket s3://{self.bucket}", self.client.head_bucket, Bucket=self.bucket)

    def put_file(self, local_path: str | Path, key: str) -> dict[str, Any]:
        src = Path(local_path)
        if not src.is_file():
            raise StoreError(f"no such file: {src}")
        sha = sha256_file(src)
        size = src.stat().st_size
        dest = self._key(key)
        # One PutObject is atomic (the object appears whole or not at all), and the server checks
        # the body against ChecksumSHA256, so a corrupted transfer is refused, not stored.
        with open(src, "rb") as body:
            self._call(
                f"upload {src} to s3://{self.bucket}/{dest}",
                self.client.put_object,
                Bucket=self.bucket,
                Key=dest,
                Body=body,
                ChecksumSHA256=base64.b64encode(bytes.fromhex(sha)).decode(),
                Metadata={"sha256": sha},
            )
        head = self._call(
            f"verify s3://{self.bucket}/{dest}",
            self.client.head_object,
            Bucket=self.bucket,
            Key=dest,
        )
        if head["ContentLength"] != size or head.get("Metadata", {}).get("sha256") != sha:
            raise IntegrityError(f"s3://{self.bucket}/{dest}: stored object differs from {src}")
        return {"sha256": sha, "size": size}

    def get_file(self, key: str, local_path: str | Path, sha256: str | None = None) -> Path:
        src = self._key(key)
        dst = Path(local_path)
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
        os.close(fd)
        try:
            with open(tmp, "wb") as out:
                obj = self._call(
                    f"download s3://{self.bucket}/{src}",
                    self.client.get_object,
                    Bucket=self.bucket,
                    Key=src,
                )
                for chunk in obj["Body"].iter_chunks(_CHUNK):
                    out.write(chunk)
            expected = sha256 or obj.get("Metadata", {}).get("sha256")
            if expected and sha256_file(tmp) != expected:
                raise IntegrityError(f"s3://{self.bucket}/{src}: sha256 does not match")
            os.replace(tmp, dst)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dst

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        def head() -> bool | None:
            try:
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                    return None  # the key or the whole bucket is missing: find out which below
                raise

        if self._call(f"look up s3://{self.bucket}/{self._key(key)}", head):
            return True
        self.check_bucket()  # a missing bucket is an error, not "no such key"
        return False

    def list(self, prefix: str) -> list[str]:
        base = self._key(prefix).rstrip("/") + "/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=base
        )
        keys: list[str] = []

        def collect() -> None:
            for page in pages:
                keys.extend(o["Key"][len(base) :] for o in page.get("Contents", []))

        self._call(f"list s3://{self.bucket}/{base}", collect)
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        base = self._key(prefix).rstrip("/") + "/"
        keys = [base + k for k in self.list(prefix)]
        for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            self._call(
                f"delete under s3://{self.bucket}/{base}",
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": batch, "Quiet": True},
            )
        return len(keys)


# ----------------------------------------------------------------------------- releases


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
) -> dict:
    """Stage the release layout in a temp dir and register it as one version; returns the manifest.

    With a quality-gate `gate` decision, the manifest records `status` ("promoted"/"rejected")
    and the decision; a rejected release is stored but never made `LATEST`.
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
    if text.startswith("s3://"):
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
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    parts = safe_key(key).split("/")
    store = S3Store(f"s3://{bucket}", StoreConfig())
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


# ----------------------------------------------------------------------------- integrity


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
            file = _inside(art_dir, safe_key(rel))
            if not file.is_file():
                raise IntegrityError(f"{file}: listed in {path} but missing")
            if file.stat().st_size != info.get("size") or sha256_file(file) != info.get("sha256"):
                raise IntegrityError(
                    f"{file}: sha256 does not match the manifest {path} (corrupted or tampered)"
                )
    return f"{manifest.get('version', 'unversioned')}-{manifest_hash(manifest)[:12]}"
