"""KFP component: a serving window's served pushes and their feedback become new A/B-test rows.

Joins the window's serving log (selected rows) with its feedback, turns each video's distinct
served texts into the arms of one new test, appends them to the past tables at
`past_data_location`, and writes the fresh data location the retraining run ingests (returned as
its URI). Rows it cannot use are counted and kept aside with a reason. The work is
`pushgen.loop.feedback.ingest_feedback`.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def ingest_feedback(
    serving_log: Input[Dataset],
    feedback: Input[Dataset],
    data: Output[Dataset],
    metrics: Output[Metrics],
    past_data_location: str,
    window: str = "",
) -> str:
    """Past tables + this window's tests -> `data` (a directory); returns its URI.

    Args:
        serving_log: the window's serving log (a table, or a directory of shipped parts).
        feedback: exposures and clicks per request_id for that window.
        past_data_location: the training data so far (local or s3:// directory).
        window: a name for this window (the A/B tests' ids carry it); empty: from the log.
    """
    import time

    from pushgen.core.run_report import log_metrics
    from pushgen.data.contracts import read_table
    from pushgen.loop.feedback import ingest_feedback as run

    name = window.strip() or time.strftime("%Y%m%d%H%M%S", time.gmtime())
    report = run(
        read_table(serving_log.path, "serving_log"),
        read_table(feedback.path, "feedback"),
        past_data_location,
        data.path,
        window=name,
    )
    log_metrics(metrics, {k: v for k, v in report.items() if k != "window"})
    data.metadata.update({"window": name})
    return data.uri
