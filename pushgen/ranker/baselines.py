"""The floor any learnt ranker must clear: logistic regression on six surface features.

Features per text: characters, words, has '?', has '!', has a digit, has 'you'/'your'. A pair is
described by the difference of its two feature vectors (so the model is antisymmetric by
construction) and fitted on both orders of the training pairs.

    floor = SurfaceFeatureBaseline().fit(train_pairs)
    p = floor.predict(val_pairs)  # P(a beats b)
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from pushgen.core.errors import DataContractError
from pushgen.ranker.pairs import both_orders

SURFACE_FEATURES = ("chars", "words", "question", "exclamation", "digit", "you")
_YOU = re.compile(r"\byou(?:r|rs|'re|'ll|'ve)?\b", re.IGNORECASE)


def surface_features(texts: pd.Series | list[str]) -> np.ndarray:
    """(n, 6) array of SURFACE_FEATURES for each text."""
    s = pd.Series(list(texts), dtype=object).astype(str)
    return np.column_stack(
        [
            s.str.len(),
            s.str.split().str.len(),
            s.str.contains("?", regex=False),
            s.str.contains("!", regex=False),
            s.str.contains(r"\d", regex=True),
            s.str.contains(_YOU),
        ]
    ).astype(float)


class SurfaceFeatureBaseline:
    """Logistic regression on feature differences; decided pairs only (ties carry no side)."""

    def __init__(self, c: float = 1.0) -> None:
        self.scaler = StandardScaler(with_mean=False)  # differences are centred already
        self.model = LogisticRegression(C=c, fit_intercept=False, max_iter=1000)

    def _diff(self, pairs: pd.DataFrame) -> np.ndarray:
        return surface_features(pairs["text_a"]) - surface_features(pairs["text_b"])

    def fit(self, pairs: pd.DataFrame) -> SurfaceFeatureBaseline:
        data = both_orders(pairs)
        data = data[data["label"] != 0.5]
        if data["label"].nunique() < 2:
            raise DataContractError("the surface-feature baseline needs pairs with both outcomes")
        x = self.scaler.fit_transform(self._diff(data))
        self.model.fit(x, data["label"].astype(int))
        return self

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        """P(a beats b) for each pair."""
        return self.model.predict_proba(self.scaler.transform(self._diff(pairs)))[:, 1]
