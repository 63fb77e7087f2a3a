"""KFP pipelines wiring the components: `training` (train, evaluate, register) and `monitoring`."""
