"""KFP component: publish a trained release to the artifact store (`pushgen.core.store`).

One immutable version holds everything serving needs, in the layout `pushgen demo` and the KServe
models load from:

    versions/<v>/generator/   the SFT adapter dir (CandidateGenerator.from_pretrained)
    versions/<v>/ranker/      the pairwise ranker dir (PairwiseRanker.from_pretrained)
    versions/<v>/features/    videos.parquet + captions.parquet (Feast's offline source)
    versions/<v>/reports/     evaluation.md, evaluation.html, evaluation.json
    versions/<v>/manifest.json  sha256 + size of every file, metrics, source data hash, and the
                              quality gate's decision and status (promoted / rejected)

The store URI is a local directory or `s3://bucket/prefix`; S3 credentials come from the pod's
environment (a Kubernetes Secret), never from a pipeline parameter.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def register(
    generator: Input[Model],
    ranker: Input[Model],
    videos: Input[Dataset],
    captions: Input[Dataset],
    summary: Input[Markdown],
    report: Input[HTML],
    evaluation: Input[Artifact],
    eval_metrics: Input[Metrics],
    gate_decision: Input[Artifact],
    manifest: Output[Artifact],
    store_uri: str,
    source_data_hash: str,
    version: str = "",
) -> str:
    """Upload the release under `version` (default: time + data hash); returns its URI.

    `gate_decision` (the gate step's JSON) goes into the manifest; a rejected candidate is
    stored with status "rejected" and `LATEST` stays on the production version. Registering
    the same version with the same files again is a no-op (a rerun).

    Args:
        generator: the generator to publish.
        ranker: the ranker to publish.
        videos: the run's videos (serving's feature source).
        captions: the run's captions.
        summary: the evaluate step's Markdown summary.
        report: the evaluate step's HTML report.
        evaluation: the evaluate step's JSON figures.
        eval_metrics: the evaluate step's flat metrics.
        gate_decision: the gate step's decision (JSON).
        store_uri: the artifact store (a directory or s3://bucket/prefix).
        source_data_hash: the ingested data's content hash (in the default version name).
        version: the version name; "" means time + data hash.
    """
    import json
    from pathlib import Path

    from pushgen.core.store import publish_release
    from pushgen.generator.runtimes import describe_dir

    result = publish_release(
        store_uri,
        version,
        generator_dir=generator.path,
        ranker_dir=ranker.path,
        feature_tables={"videos": videos.path, "captions": captions.path},
        reports={
            "evaluation.md": summary.path,
            "evaluation.html": report.path,
            "evaluation.json": evaluation.path,
        },
        metrics=dict(eval_metrics.metadata),
        source_data_hash=source_data_hash,
        gate=json.loads(Path(gate_decision.path).read_text()),
        runtimes=describe_dir(generator.path),  # which runtimes can serve it (vLLM: LoRA/merged)
    )
    Path(manifest.path).write_text(json.dumps(result, indent=2, sort_keys=True))
    status = result.get("status", "promoted")
    manifest.metadata.update({"version": result["version"], "uri": result["uri"], "status": status})
    return result["uri"]
