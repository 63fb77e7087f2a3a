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

Modules: `integrity` (hashes, keys, the manifest check), `base` (`ArtifactStore`: primitives and
releases), `local` and `s3` (the backends), `releases` (publish a run, fetch a model). This package
imports only `pushgen.core.errors`.
"""

from pushgen.core.store import local, s3  # noqa: F401 (the backends register their schemes)
from pushgen.core.store.base import ArtifactStore, StoreConfig, is_remote  # noqa: F401
from pushgen.core.store.integrity import (  # noqa: F401 (the store API)
    LATEST,
    MANIFEST,
    VERSION_FILE,
    VERSIONS,
    IntegrityError,
    StoreError,
    check_version,
    find_manifest,
    hash_paths,
    manifest_hash,
    safe_key,
    sha256_file,
    verify_artifacts,
)
from pushgen.core.store.local import LocalStore  # noqa: F401
from pushgen.core.store.releases import default_version, fetch_model, publish_release  # noqa: F401
from pushgen.core.store.s3 import KFP_MINIO_ENDPOINT, MinioStore, S3Store  # noqa: F401
