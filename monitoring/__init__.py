"""Monitoring: style collapse and reward drift over (reference, current) frames, with Evidently.

    from monitoring.report import run_monitoring
    summary = run_monitoring(serving_log, feedback, reference, "runs/monitor")

writes `report.html` (Evidently) and `summary.json` (explicit alerts). The CLI is
`pushgen monitor --log F --feedback F --reference F --out DIR`.
"""
