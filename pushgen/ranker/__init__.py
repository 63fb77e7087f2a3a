"""The ranker: pairwise reward model from A/B tests (pairs, training, selection, evaluation).

Inside, `heads`, `aggregate`, `inputs` and `config` are the bottom; `select` (the pairwise
ranker), `listwise`, `scoring`, `train` and `listwise_train` build on them, evaluation on top.

Layer 2 (beside `pushgen.generator`): may import `pushgen.core`, `pushgen.data` and
`pushgen.features`.
"""
