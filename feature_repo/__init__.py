"""The declarative Feast repo of pushgen (definitions in `definitions.py`).

Layer 1: imports feast only; `pushgen.features` copies it into each run's store.
"""
