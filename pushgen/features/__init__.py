"""Video features in Feast: a run's feature store (`feast_store`: write, apply, materialise, read
online and offline) and the pipeline's materialise step (`fresh`).

Layer 1 (beside `pushgen.data`): may import `pushgen.core` and `pushgen.data`.
"""
