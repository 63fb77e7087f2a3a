"""The production loop's parts: the promotion gate (`gate`), what a retrain carries over from
the serving version (`carry`), and served feedback back into training data (`feedback`). One
whole pass of the loop runs the monitoring pipeline, so it lives above it, in
`pipelines.loop_pass`.

Layer 3 (beside `pushgen.evidence`, `serving`, `monitoring`): may import the core, data, features,
generator and ranker.
"""
