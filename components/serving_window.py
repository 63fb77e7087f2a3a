"""KFP component: the serving log the monitor judges, read from where the pods ship it.

`serving_log_uri` is the deployment's prefix in the store (`<store>/serving-log/<namespace>/pushgen`,
every pod's windows under `windows/`, the pod in each file's name) or a table (a file, or a
directory of parquet parts). With `window_hours` > 0, only rows served in the last that many hours
(up to the run's start) are kept, so a schedule with one fixed URI judges each period's traffic
from whichever pods served it; 0 keeps every row. Rows are not validated here: the monitor sets
the bad ones aside and counts them. The work is `serving.serving_log.load_serving_windows`.
"""

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def serving_window(
    serving_log: Output[Dataset],
    metrics: Output[Metrics],
    serving_log_uri: str,
    window_hours: float = 0.0,
):
    """Every pod's serving-log rows of the last `window_hours` (0: all) -> one table.

    Args:
        serving_log_uri: the deployment's serving-log prefix, or a table file or directory.
        window_hours: keep rows served in the last this many hours; 0 keeps every row.
    """
    from pathlib import Path

    import pandas as pd

    from pushgen.core.errors import DataContractError
    from pushgen.core.run_report import log_metrics
    from pushgen.core.store import is_remote
    from pushgen.data.contracts import read_table, write_table
    from serving.serving_log import load_serving_windows

    end = pd.Timestamp.now(tz="UTC")
    start = end - pd.Timedelta(hours=window_hours) if window_hours > 0 else None
    uri = serving_log_uri.strip()
    if is_remote(uri) or (Path(uri) / "windows").is_dir():
        log = load_serving_windows(uri, start, end if start is not None else None)
    else:
        log = read_table(uri)
        if start is not None and "served_at" in log:
            served = pd.to_datetime(log["served_at"], utc=True, errors="coerce", format="mixed")
            log = log[served.isna() | ((served >= start) & (served < end))]
    if log.empty:
        raise DataContractError(f"no serving-log rows under {uri} in the window")
    write_table(log.reset_index(drop=True), serving_log.path)
    log_metrics(metrics, {"rows": len(log), "window_hours": window_hours})
