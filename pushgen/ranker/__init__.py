"""The ranker: pairwise reward model from A/B tests (pairs, training, selection, evaluation)."""
