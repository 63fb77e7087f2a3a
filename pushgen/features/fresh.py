"""Fresh data into Feast, and training features read back out of it (the pipeline's
`materialize` step).

`materialize_and_read` writes a run's videos, captions and pushes as Feast sources, applies the
repo, materialises them into the online store (SQLite locally; the repo's `feature_store.yaml`
decides on a cluster) and then reads the captions the generator trains on through
`get_historical_features` (point-in-time: each push sees the caption its video had when it was
sent). Pushes whose video has no caption in Feast are set aside with a reason.

    counts, captions, rejected = materialize_and_read(videos, captions, pushes, labelled, "repo")

`ab_test_captions` reads the captions of the A/B tests' videos the same way, as of the run (the
ranker's optional context segment, `reward(use_caption=True)`).

`publish` materialises the same tables into the store serving reads (the pipeline's
`publish-features` step): a directory, or a store prefix (`s3://`, `minio://`) holding the
cluster's `feature_store.yaml`, whose registry and online store every transformer replica shares.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from pushgen.core.errors import PushgenError
from pushgen.core.store import ArtifactStore, is_remote
from pushgen.data.contracts import check_columns
from pushgen.features.feast_store import (
    apply_repo,
    get_historical_features,
    materialize,
    training_entities,
    write_feature_data,
)

FEATURE_STORE_YAML = "feature_store.yaml"


def materialize_and_read(
    videos: pd.DataFrame,
    captions: pd.DataFrame,
    pushes: pd.DataFrame,
    training_pushes: pd.DataFrame,
    repo_dir: str | Path,
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(counts, training captions (video_id, caption), rejected training pushes)."""
    written = write_feature_data(repo_dir, videos, captions, pushes)
    loaded = materialize(apply_repo(repo_dir))
    joined = get_historical_features(repo_dir, training_entities(training_pushes))
    has = joined["caption"].notna() & (joined["caption"].astype(str).str.strip() != "")
    # the newest caption each video had at its pushes' send times
    read = (
        joined[has]
        .sort_values("event_timestamp")
        .drop_duplicates("video_id", keep="last")[["video_id", "caption"]]
        .reset_index(drop=True)
    )
    # the captions table's other columns (captioner, created_at) stay; the text is Feast's
    read = captions.drop(columns=["caption"]).drop_duplicates("video_id").merge(read, on="video_id")
    rejected = joined.loc[~has, ["push_id", "video_id"]].assign(
        reject_reason="no caption in Feast as of the push's send time"
    )
    counts = {
        **written["counts"],
        **{f"materialized_{k}": v for k, v in loaded.items()},
        "training_pushes": len(joined),
        "training_videos_with_caption": len(read),
        "training_pushes_without_caption": int((~has).sum()),
    }
    return counts, read, rejected


def ab_test_captions(
    repo_dir: str | Path, ab_tests: pd.DataFrame, as_of: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(captions (video_id, caption) of the A/B tests' videos as Feast holds them at `as_of`
    (default: now), rejected (video_id, reject_reason) for videos Feast has no caption of)."""
    check_columns("ab_tests", ab_tests)
    when = as_of if as_of is not None else pd.Timestamp.now(tz="UTC")
    video_ids = ab_tests["video_id"].astype(str).drop_duplicates().reset_index(drop=True)
    entities = pd.DataFrame({"video_id": video_ids, "event_timestamp": when})
    joined = get_historical_features(repo_dir, entities)
    has = joined["caption"].notna() & (joined["caption"].astype(str).str.strip() != "")
    read = joined.loc[has, ["video_id", "caption"]].reset_index(drop=True)
    rejected = joined.loc[~has, ["video_id"]].assign(
        reject_reason="no caption in Feast for the test's video"
    )
    return read, rejected.reset_index(drop=True)


def publish(
    videos: pd.DataFrame, captions: pd.DataFrame, pushes: pd.DataFrame, feature_repo: str
) -> dict:
    """Materialise the run's features into the store serving reads; returns the counts.

    `feature_repo`: a directory (its own `feature_store.yaml` kept; SQLite rendered where it has
    none), or a store prefix (`s3://`, `minio://`) holding the cluster's `feature_store.yaml`
    (what `pushgen deploy` puts in the `pushgen-feature-store` ConfigMap).
    """
    location = feature_repo.strip()
    if not is_remote(location):
        return _publish(Path(location), videos, captions, pushes)
    store = ArtifactStore.from_uri(location)
    if not store.exists(FEATURE_STORE_YAML):
        raise PushgenError(
            f"{location}: no {FEATURE_STORE_YAML}; upload the one `pushgen deploy` writes "
            "(the pushgen-feature-store ConfigMap) there"
        )
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        store.get_file(FEATURE_STORE_YAML, repo / FEATURE_STORE_YAML)
        return _publish(repo, videos, captions, pushes)


def _publish(repo: Path, videos, captions, pushes) -> dict:
    written = write_feature_data(repo, videos, captions, pushes)
    loaded = materialize(apply_repo(repo))
    return {**written["counts"], **{f"materialized_{k}": v for k, v in loaded.items()}}
