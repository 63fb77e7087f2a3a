"""Monitoring of the serving log: inputs, generator and ranker checks with calibrated bands.

    from monitoring.report import run_monitoring
    summary = run_monitoring(serving_log, feedback, reference_log, "runs/monitor",
                             reference_feedback=reference_feedback)

writes `report.html` (verdict banner, checks, evidence, charts) and `summary.json` (`verdict`,
`blamed`, `parts`, `checks`, `retrain`, `retrain_reason`, ...). The CLI is `pushgen monitor`;
`python -m monitoring.power` prints the detection table on log-shaped fault streams
(monitoring/logsim.py), `python -m bench.detection` the one on independent traffic.

Layer 3 (beside `pushgen.evidence`, `pushgen.loop`, `serving`): may import the core, data,
features, generator, ranker and `serving`'s request helpers; never components, pipelines or the CLI.
"""
