"""KFP component: materialise the run's fresh video features into Feast and read the training
captions back through `get_historical_features`.

Writes the Feast repo (sources, registry, SQLite online store) as the `features` artifact, inside
the run, so it is cached like any step. `publish_features` (never cached: it writes outside the
run) materialises the same tables into the store serving reads when `feature_repo` is set: a
directory, or a store prefix (`s3://`, `minio://`) holding the cluster's `feature_store.yaml`
(Redis online store, registry on S3). `captions` holds what the SFT step
trains on: each video's caption as Feast served it at its pushes' send times; `ab_captions` what
the reward step may read as context: the A/B tests' videos' captions as Feast holds them now.
The work is `pushgen.features.fresh.materialize_and_read` and `ab_test_captions`.
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def materialize(
    videos: Input[Dataset],
    captions: Input[Dataset],
    pushes: Input[Dataset],
    training_pushes: Input[Dataset],
    ab_tests: Input[Dataset],
    features: Output[Artifact],
    training_captions: Output[Dataset],
    ab_captions: Output[Dataset],
    rejected: Output[Dataset],
    metrics: Output[Metrics],
    feature_repo: str = "",
):
    """Materialise into the run's Feast repo; read training captions back.

    Args:
        videos: the run's videos table.
        captions: the caption step's captions (video_id, caption).
        pushes: cleaned pushes, the push-history feature source.
        training_pushes: labelled pushes the SFT step trains on (their send times date the join).
        ab_tests: the A/B arms the reward step trains on.
        feature_repo: kept for specs compiled before `publish_features`: also materialise there.
    """
    import pandas as pd

    from pushgen.core.run_report import log_metrics
    from pushgen.data.contracts import read_table, write_table
    from pushgen.features.fresh import ab_test_captions, materialize_and_read

    tables = [read_table(p.path) for p in (videos, captions, pushes, training_pushes)]
    counts, read, aside = materialize_and_read(*tables, features.path)
    if feature_repo.strip():
        materialize_and_read(*tables, feature_repo.strip())
    ab_read, ab_aside = ab_test_captions(features.path, read_table(ab_tests.path, "ab_tests"))
    write_table(read, training_captions.path)
    write_table(ab_read, ab_captions.path)
    write_table(pd.concat([aside, ab_aside], ignore_index=True), rejected.path)
    counts = {
        **counts,
        "ab_videos_with_caption": len(ab_read),
        "ab_videos_without_caption": len(ab_aside),
    }
    features.metadata.update({"online_store": "sqlite", "feature_repo": feature_repo})
    log_metrics(metrics, counts)


@dsl.component(**COMPONENT_DEFAULTS)
def publish_features(
    videos: Input[Dataset],
    captions: Input[Dataset],
    pushes: Input[Dataset],
    metrics: Output[Metrics],
    feature_repo: str = "",
):
    """Materialise the run's features into the Feast store serving reads; "" does nothing.

    Args:
        videos: the run's videos table.
        captions: the caption step's captions.
        pushes: cleaned pushes (the push-history features).
        feature_repo: a Feast repo directory, or a store prefix holding the cluster's
            feature_store.yaml (its registry and online store are what the transformers read).
    """
    from pushgen.core.run_report import log_metrics
    from pushgen.data.contracts import read_table
    from pushgen.features.fresh import publish

    if not feature_repo.strip():
        log_metrics(metrics, {"published": 0})
        return
    tables = [read_table(p.path) for p in (videos, captions, pushes)]
    log_metrics(metrics, {"published": 1, **publish(*tables, feature_repo)})
