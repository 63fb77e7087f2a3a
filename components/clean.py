"""KFP component: clean the push history (hard filter, per-cluster CTR crop, confidence weight).

Clusters are the video topics, read from the captions table's `topic` column (the caption step
carries it over), or caption-embedding clusters with `config={"cluster_by": "embedding"}`.
`config` holds any `pushgen.data.clean.CleanConfig` field (thresholds, quantiles, ...); `weighting`
picks the confidence formula. Removed rows go to `removed` with their reason; the counts per
filter, hard rule, cluster and category go to `metrics` and, in full, to `report` (JSON).
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components import COMPONENT_DEFAULTS
from pushgen.core.settings import component_defaults
from pushgen.data.clean import CleanConfig


@dsl.component(**COMPONENT_DEFAULTS)
@component_defaults(CleanConfig())
def clean(
    pushes: Input[Dataset],
    captions: Input[Dataset],
    cleaned: Output[Dataset],
    removed: Output[Dataset],
    report: Output[Artifact],
    metrics: Output[Metrics],
    config: dict = {},  # noqa: B006 (KFP reads the default; CleanConfig fields)
    *,
    weighting: str,
):
    """Filter and weight `pushes`; pushes of videos without a caption are rejected.
    `weighting` takes its default from `CleanConfig` (one source with the CLI).

    Args:
        pushes: historical pushes with their CTR, SVR, LVTR, HTR and PV.
        captions: the caption step's table; a push whose video has none is set aside.
        weighting: "bounded" (confidence in [0.3, 1]), "literal" (the paper's formula as
            written) or "none" (every push at weight 1).
        config: CleanConfig fields overriding the hard filter and cropping thresholds.
    """
    import json
    from pathlib import Path

    from pushgen.core.run_report import log_metrics
    from pushgen.data.clean import clean_metrics, clean_pushes, config_from_dict
    from pushgen.data.contracts import read_table, write_table

    cfg = config_from_dict({**config, "weighting": weighting})
    caps = read_table(captions.path, "captions")
    result = clean_pushes(
        read_table(pushes.path, "pushes"), cfg, captions=caps, known_video_ids=caps["video_id"]
    )
    write_table(result.cleaned, cleaned.path)
    write_table(result.removed.assign(step="clean"), removed.path)
    Path(report.path).write_text(json.dumps(result.report, indent=2, default=str))
    cleaned.metadata.update({"rows": len(result.cleaned), "weighting": weighting})
    log_metrics(metrics, clean_metrics(result.report))
