"""KFP component: the pipeline's first step, simulate a push world or ingest real tables.

With an empty `data_location` it runs `pushgen.data.simulator` (a world with known ground truth, so the
evaluation can report true CTRs); otherwise it reads `videos`, `pushes` and `ab_tests` (parquet,
csv or jsonl) from a local directory or an `s3://bucket/prefix` through `pushgen.core.store`. Either
way every table is checked against its data contract; rejected rows are written aside with a
reason and counted, never dropped. Each Dataset output is one parquet file.

    python -c "from pushgen.data.ingest import load_source; print(load_source('', 'out', 30, 0))"
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Metrics, Output

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def simulate_or_ingest(
    videos: Output[Dataset],
    pushes: Output[Dataset],
    ab_tests: Output[Dataset],
    world: Output[Artifact],
    rejected: Output[Dataset],
    metrics: Output[Metrics],
    data_location: str = "",
    n_videos: int = 200,
    seed: int = 0,
    content_hash: str = "",
) -> str:
    """Simulate (empty `data_location`) or ingest the three source tables; returns their hash.

    `content_hash` (from the `fingerprint` step) is not read: it is there so the step's cache
    key changes exactly when the bytes at `data_location` do.

    Args:
        data_location: a directory (or s3:// prefix) with videos, pushes and ab_tests tables;
            empty simulates a world instead.
        n_videos: videos in the simulated world.
        seed: the simulation's seed.
        content_hash: the data's content hash, from the `fingerprint` step (cache key only).
    """
    import shutil
    import tempfile
    from pathlib import Path

    from pushgen.core.run_report import log_metrics
    from pushgen.data.ingest import load_source

    with tempfile.TemporaryDirectory() as tmp:
        report = load_source(data_location, tmp, n_videos=n_videos, seed=seed)
        for name, out in (("videos", videos), ("pushes", pushes), ("ab_tests", ab_tests)):
            shutil.copyfile(Path(tmp) / f"{name}.parquet", out.path)
            out.metadata["rows"] = report["rows"][name]
        shutil.copyfile(Path(tmp) / "world.json", world.path)
        shutil.copyfile(Path(tmp) / "rejected.parquet", rejected.path)
    world.metadata["simulated"] = report["simulated"]
    world.metadata["content_hash"] = content_hash
    figures = {"simulated": int(report["simulated"])}
    for name in report["rows"]:
        figures[f"{name}_rows"] = report["rows"][name]
        figures[f"{name}_rejected"] = report["rejected"][name]
    log_metrics(metrics, figures)
    return report["source_data_hash"]
