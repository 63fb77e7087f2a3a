"""KFP component: the quality gate before `register` (candidate vs the production version).

Scores the candidate generator and ranker and the store's `LATEST` release on the same held-out
data (generator: controllability, replayed true-CTR uplift; ranker: pairwise accuracy, ECE) and
decides whether the candidate may be promoted (no regression beyond the stated tolerances; the
first version passes). Writes the decision as JSON (the register step files it with the release
and marks a rejected one), a Markdown section for the run page, and one metric per figure. The
work is `pushgen.loop.gate` (plain functions, tested directly). Never cached: production moves.
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def gate(
    generator: Input[Model],
    ranker: Input[Model],
    captions: Input[Dataset],
    pushes: Input[Dataset],
    ab_tests: Input[Dataset],
    world: Input[Artifact],
    decision: Output[Artifact],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    store_uri: str,
    parts: str = "both",
    encoder: str = "default",
    n_videos: int = 12,
    controllability_tolerance: float = 0.05,
    uplift_tolerance: float = 0.005,
    accuracy_tolerance: float = 0.03,
    ece_tolerance: float = 0.05,
    reason: str = "",
) -> bool:
    """Compare candidate and production on held-out data; returns whether to promote.
    `reason` (why this run was started, e.g. the monitoring alert) is filed with the decision.

    Args:
        generator: the candidate generator.
        ranker: the candidate ranker.
        captions: the caption step's table (the held-out videos' captions).
        pushes: the historical pushes (the human baseline of the replay).
        ab_tests: the A/B arms (the ranker's held-out pairs).
        world: the simulator's world; without it the generator's uplift is not replayed.
        store_uri: the artifact store holding the production version (LATEST).
        parts: "generator", "ranker" or "both": what this run trained.
        encoder: the category classifier's encoder for controllability.
        n_videos: held-out videos the generators write for.
        controllability_tolerance: the largest drop in controllability that still promotes.
        uplift_tolerance: the largest drop in replayed true-CTR uplift that still promotes.
        accuracy_tolerance: the largest drop in ranker pairwise accuracy that still promotes.
        ece_tolerance: the largest rise in ranker ECE that still promotes.
        reason: why this run started (filed with the decision).
    """
    import json
    from pathlib import Path

    from pushgen.core.run_report import log_metrics
    from pushgen.loop.gate import (
        GateConfig,
        GateInputs,
        decision_markdown,
        decision_metrics,
        parse_parts,
        run_gate,
    )

    cfg = GateConfig(
        controllability_tolerance=controllability_tolerance,
        uplift_tolerance=uplift_tolerance,
        accuracy_tolerance=accuracy_tolerance,
        ece_tolerance=ece_tolerance,
        n_videos=n_videos,
        encoder=None if encoder in ("", "default") else encoder,
    )
    inputs = GateInputs(
        generator_dir=generator.path,
        ranker_dir=ranker.path,
        captions=captions.path,
        pushes=pushes.path,
        ab_tests=ab_tests.path,
        world=world.path,
        store_uri=store_uri,
        parts=parse_parts(parts),
    )
    result = {**run_gate(inputs, cfg), "run_reason": reason}
    Path(decision.path).write_text(json.dumps(result, indent=2, sort_keys=True, default=str))
    decision.metadata.update({"promote": result["promote"], "reason": result["reason"]})
    Path(summary.path).write_text(decision_markdown(result))
    log_metrics(metrics, decision_metrics(result))
    return bool(result["promote"])
