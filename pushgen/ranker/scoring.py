"""Scoring held-out pairs with a saved ranker, pairwise or listwise: P(a beats b) in both orders
and the pairwise metrics. Training (`train`, `listwise_train`) and evaluation both measure
through it."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pushgen.ranker.inputs import RankerSettings, caption_segment
from pushgen.ranker.metrics import pairwise_metrics
from pushgen.ranker.select import PairwiseRanker


def pair_probs_by_test(
    score_sets,
    pairs: pd.DataFrame,
    temperature: float = 1.0,
    max_candidates: int = 32,
    batch_tests: int = 32,
) -> np.ndarray:
    """P(a beats b) = sigmoid((s_a - s_b) / T) for every pair, each test scored in one pass over
    all its distinct texts by `score_sets([(texts, caption), ...]) -> [scores, ...]`; tests with
    more than `max_candidates` texts are scored as one K=2 set per pair."""
    a, b = pairs["text_a"].astype(str).to_numpy(), pairs["text_b"].astype(str).to_numpy()
    caps = pairs["caption"].astype(str).to_numpy() if "caption" in pairs.columns else None
    out = np.full(len(pairs), np.nan)
    keys = pairs["test_id"].astype(str).to_numpy()
    todo = []
    for key in dict.fromkeys(keys):
        rows = np.flatnonzero(keys == key)
        texts = list(dict.fromkeys([*a[rows], *b[rows]]))
        if len(texts) > max_candidates:
            todo += [(np.array([r]), [a[r], b[r]], None if caps is None else caps[r]) for r in rows]
        else:
            todo.append((rows, texts, None if caps is None else caps[rows[0]]))
    for start in tqdm(range(0, len(todo), batch_tests), desc="one pass per test", disable=None):
        chunk = todo[start : start + batch_tests]
        scores = score_sets([(texts, cap) for _, texts, cap in chunk])
        for (rows, texts, _), s in zip(chunk, scores, strict=True):
            pos = {t: i for i, t in enumerate(texts)}
            diff = s[[pos[x] for x in a[rows]]] - s[[pos[x] for x in b[rows]]]
            out[rows] = 1.0 / (1.0 + np.exp(-diff / temperature))
    return out


def listwise_pair_probs(ranker, pairs: pd.DataFrame) -> np.ndarray:
    """P(a beats b) for every pair from a `ListwiseRanker`, one pass per held-out test (the way
    it serves)."""
    return pair_probs_by_test(
        ranker.score_sets, pairs, ranker.listwise.temperature, ranker.listwise.max_candidates
    )


def score_both_orders(ranker: PairwiseRanker, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Raw model P(a beats b) and P(b beats a) for every pair (captions used when the model was
    trained with them and the pairs carry them). A listwise ranker scores each test in one pass
    over all its texts, and its P(b beats a) is 1 - P(a beats b) exactly."""
    if hasattr(ranker, "score_sets"):
        p = listwise_pair_probs(ranker, pairs)
        return p, 1.0 - p
    a, b = pairs["text_a"].astype(str).tolist(), pairs["text_b"].astype(str).tolist()
    if ranker.settings.use_caption and "caption" in pairs.columns:
        sep = ranker.tokenizer.sep_token
        caps = pairs["caption"].astype(str).tolist()
        b_cap = [caption_segment(x, c, sep) for x, c in zip(b, caps, strict=True)]
        a_cap = [caption_segment(x, c, sep) for x, c in zip(a, caps, strict=True)]
        ranker_caption_free = RankerSettings(**{**asdict(ranker.settings), "use_caption": False})
        plain = PairwiseRanker(ranker.model, ranker.tokenizer, ranker_caption_free, ranker.device)
        return plain.score_pairs(a, b_cap), plain.score_pairs(b, a_cap)
    return ranker.score_pairs(a, b), ranker.score_pairs(b, a)


def score_and_measure(ranker: PairwiseRanker, pairs: pd.DataFrame) -> dict:
    """Pairwise metrics of `ranker` on `pairs` (both orders scored, decisions symmetrised)."""
    p_ab, p_ba = score_both_orders(ranker, pairs)
    p_value = pairs["p_value"].to_numpy() if "p_value" in pairs.columns else None
    return pairwise_metrics(p_ab, pairs["label"].to_numpy(), p_ba=p_ba, p_value=p_value)
