"""KFP component: materialise the run's fresh video features into Feast and read the training
captions back through `get_historical_features`.

Writes the Feast repo (sources, registry, SQLite online store) as the `features` artifact; with
`feature_repo` set (a directory serving reads, or a repo whose `feature_store.yaml` points at
the cluster's online store) it materialises there too. `captions` holds what the SFT step
trains on: each video's caption as Feast served it at its pushes' send times. The work is
`pushgen.fresh_features.materialize_and_read`.
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
    features: Output[Artifact],
    training_captions: Output[Dataset],
    rejected: Output[Dataset],
    metrics: Output[Metrics],
    feature_repo: str = "",
):
    """Materialise into Feast (and `feature_repo` when set); read training captions back."""
    from pushgen.contracts import read_table, write_table
    from pushgen.fresh_features import materialize_and_read
    from pushgen.run_report import log_metrics

    tables = [read_table(p.path) for p in (videos, captions, pushes, training_pushes)]
    counts, read, aside = materialize_and_read(*tables, features.path)
    if feature_repo.strip():
        materialize_and_read(*tables, feature_repo.strip())
    write_table(read, training_captions.path)
    write_table(aside, rejected.path)
    features.metadata.update({"online_store": "sqlite", "feature_repo": feature_repo})
    log_metrics(metrics, counts)
