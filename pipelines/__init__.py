"""KFP pipelines wiring the components: `training` (train, evaluate, register) and `monitoring`.

Also `submit` (a compiled run to Kubeflow Pipelines), `schedule` (recurring runs) and `loop_pass`
(one pass of the production loop on this machine: the monitoring pipeline, then the gate).

Layer 5: may import the components and everything below; only the CLI imports it.
"""
