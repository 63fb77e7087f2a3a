"""KFP component: the run report (data, generator, ranker, offline replay), Markdown and HTML.

The HTML is self-contained (plots embedded) and is the run's HTML output in the KFP UI. When the
data is simulated, up to `replay_videos` videos the generator and ranker never trained on are
replayed against their human pushes (`pushgen.evidence.replay`); with real data the report covers data
and ranker only. The work is `pushgen.evidence.report.pipeline_report` (plain functions, tested directly).
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def report(
    videos: Input[Dataset],
    pushes: Input[Dataset],
    ab_tests: Input[Dataset],
    world: Input[Artifact],
    captions: Input[Dataset],
    clean_metrics: Input[Metrics],
    labelled: Input[Dataset],
    generator: Input[Model],
    ranker: Input[Model],
    html: Output[HTML],
    markdown: Output[Markdown],
    results: Output[Artifact],
    replay_videos: int = 24,
):
    """Build the report; `replay_videos` 0 skips the replay.

    Args:
        videos: the run's videos table.
        pushes: the historical pushes.
        ab_tests: the A/B arms.
        world: the simulator's world (its truth makes the replay possible; empty for real data).
        captions: the caption step's table.
        clean_metrics: the clean step's counts per rule.
        labelled: the labelled pushes.
        generator: the trained (or carried-over) generator.
        ranker: the trained (or carried-over) ranker.
        replay_videos: held-out videos the replay generates for; 0 skips it.
    """
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from pushgen.evidence.report import pipeline_report

    if replay_videos < 0:
        from pushgen.core.errors import ConfigError

        raise ConfigError("replay_videos must be >= 0")
    artifacts = {
        "sft/generator": generator.path,
        "reward/ranker": ranker.path,
        "caption/captions": captions.path,
        "simulate-or-ingest/pushes": pushes.path,
        "simulate-or-ingest/ab_tests": ab_tests.path,
        "clean/metrics": clean_metrics.path,
        "label/labelled": labelled.path,
    }
    with tempfile.TemporaryDirectory() as tmp:
        figures = pipeline_report(artifacts, world.path, videos.path, tmp, replay_videos)
        shutil.copyfile(Path(tmp) / "report.html", html.path)
        shutil.copyfile(Path(tmp) / "report.md", markdown.path)
    Path(results.path).write_text(json.dumps(figures, indent=2, default=str))
