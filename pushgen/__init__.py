"""pushgen: category-controllable push-notification generation plus a pairwise reward model.

The library that the KFP components (`components/`), the KServe predictors (`serving/`), the
monitoring functions (`monitoring/`) and the `pushgen` CLI share.
"""

__version__ = "0.1.0"
