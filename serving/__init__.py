"""Serving on KServe: one `kserve.Model` per served model (`generator`, `ranker`, and the
`transformer` that calls both), their request schemas and envelopes (`protocol`, `envelope`), the
shared server plumbing (`server`, `base`, `gate`, `upstream`, `storage`), exploration and the
serving log (`explore`, `serving_log`), the local stack (`stack`), and the cluster manifests
(`deploy/`, written to `manifests/`).

Layer 3 (beside `pushgen.evidence`, `pushgen.loop`, `monitoring`): may import the core, data,
features, generator and ranker; never components, pipelines or the CLI.
"""
