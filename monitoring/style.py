"""Style-collapse measures of a window of selected pushes (the paper's failure signature).

Collapse shows in two ways: the chosen pushes pile into one category (entropy falls, the top share
rises), or their wording converges (fewer distinct bigrams, higher pairwise similarity, repeated
texts). Each measure is a plain function over a list of categories or texts.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

_TOKEN = re.compile(r"[\w']+")


def normalise_text(text: str) -> str:
    """Lower-case words only, so punctuation or spacing does not hide a repeated wording."""
    return " ".join(_TOKEN.findall(str(text).lower()))


def category_concentration(categories: Sequence[str], n_categories: int | None = None) -> dict:
    """Normalised Shannon entropy (0 = one category, 1 = uniform), top category and its share.

    `n_categories` is the size of the vocabulary to normalise by (default: categories seen here);
    pass the union of reference and current categories so both sides use the same scale.
    """
    counts = Counter(categories)
    total = sum(counts.values())
    if total == 0:
        raise ValueError("no categories to measure")
    k = max(n_categories or len(counts), 1)
    probs = np.array([c / total for c in counts.values()])
    entropy = float(-(probs * np.log(probs)).sum() / math.log(k)) if k > 1 else 0.0
    top, top_n = counts.most_common(1)[0]
    return {"entropy": entropy, "top_category": top, "top_share": top_n / total}


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams (Li et al. 2016); lower = more repeated wording."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = normalise_text(text).split()
        grams.extend(zip(*(words[i:] for i in range(n)), strict=False))
    return len(set(grams)) / len(grams) if grams else 0.0


def repeat_rate(texts: Sequence[str]) -> float:
    """Share of texts whose normalised wording occurs more than once in the window."""
    if not texts:
        return 0.0
    counts = Counter(normalise_text(t) for t in texts)
    return sum(c for c in counts.values() if c > 1) / len(texts)


def _mean_offdiagonal(sim: np.ndarray) -> float:
    n = sim.shape[0]
    if n < 2:
        return 0.0
    return float((sim.sum() - np.trace(sim)) / (n * (n - 1)))


def mean_pairwise_similarity(
    reference: Sequence[str], current: Sequence[str], encoder: str | None = None
) -> tuple[float, float]:
    """Mean cosine similarity between distinct pairs within each side: (reference, current).

    With `encoder` (a sentence-transformers path or id) texts are embedded; without, a TF-IDF
    model fitted on both sides together, so both sides share one vocabulary and scale.
    """
    texts = [str(t) for t in (*reference, *current)]
    if encoder is not None:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(encoder, device="cpu")
        vectors = model.encode(texts, normalize_embeddings=True, show_progress_bar=None)
    else:
        from sklearn.feature_extraction.text import TfidfVectorizer

        # word uni+bigrams: shared phrasing counts, shared stop words alone barely do
        vectors = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
    ref_v, cur_v = vectors[: len(reference)], vectors[len(reference) :]
    sims = []
    for v in (ref_v, cur_v):
        sim = v @ v.T
        sims.append(
            _mean_offdiagonal(sim.toarray() if hasattr(sim, "toarray") else np.asarray(sim))
        )
    return sims[0], sims[1]


def equal_samples(
    reference: Sequence[str], current: Sequence[str], size: int, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Subsample both sides to the same size (at most `size`).

    Distinct-n and repeat rate fall as a window grows, so comparing a 5,000-row history with a
    200-row window would read as collapse by sample size alone.
    """
    n = min(len(reference), len(current), size)
    rng = np.random.default_rng(seed)

    def pick(texts: Sequence[str]) -> list[str]:
        return [texts[i] for i in sorted(rng.choice(len(texts), n, replace=False))]

    return pick(list(reference)), pick(list(current))
