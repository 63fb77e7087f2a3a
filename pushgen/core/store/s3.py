"""A store under `s3://bucket/prefix` through boto3 (AWS, MinIO, Ceph, moto); credentials from the
environment only. S3 has no rename, so a failed upload deletes what it wrote."""

from __future__ import annotations

import base64
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from pushgen.core.errors import ConfigError
from pushgen.core.store.base import ArtifactStore, StoreConfig
from pushgen.core.store.integrity import (
    CHUNK_BYTES,
    IntegrityError,
    StoreError,
    safe_key,
    sha256_file,
)


class S3Store(ArtifactStore, scheme="s3"):
    """A store under `s3://bucket/prefix` through boto3; credentials from the environment only."""

    @classmethod
    def open(cls, uri: str, config: StoreConfig | None) -> S3Store:
        return cls(uri, config or StoreConfig())

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
                for chunk in obj["Body"].iter_chunks(CHUNK_BYTES):
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


# KFP's in-cluster object store, what its default pipeline root `minio://mlpipeline/v2/artifacts`
# names (kubeflow/pipelines backend/src/v2/component/launcher.go defaultPipelineRoot;
# backend/src/v2/objectstore/object_store.go: minio-service.kubeflow:9000, plain HTTP)
KFP_MINIO_ENDPOINT = "http://minio-service.kubeflow:9000"


class MinioStore(S3Store, scheme="minio"):
    """`minio://bucket/prefix` (KFP's artifact URIs): the same bucket through the S3 API, at the
    endpoint the environment names, else KFP's in-cluster MinIO."""

    @classmethod
    def open(cls, uri: str, config: StoreConfig | None) -> S3Store:
        config = config or StoreConfig()
        if not config.endpoint_url:
            config = replace(config, endpoint_url=KFP_MINIO_ENDPOINT)
        return S3Store("s3://" + uri.removeprefix("minio://"), config)
