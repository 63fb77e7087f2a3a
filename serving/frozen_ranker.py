"""A frozen encoder with a linear probe or a set scorer on its embeddings, served as a ranker.

The real-data release (`pushgen.evidence.upworthy_replay.stage_release`) serves whichever ranker
recipe its run chose; when that is a frozen recipe, `ranker/` holds:

    frozen_ranker.json   {"kind": "probe" | "set", "recipe", "layers", "max_length", "coef"?}
    encoder/             the sentence encoder (config, tokenizer, safetensors)
    set_scorer/          kind "set" only: `pushgen.ranker.frozen.save_set_scorer`'s files

Each candidate's embedding is the token mean of the encoder's last `layers` layers, averaged
(as `pushgen.ranker.frozen.EmbeddingCache.embed` computes it in training). A probe scores a text
by w.e; a set scorer scores a request's K candidates together. Either way the ranker is served
like a listwise one (`score_sets`): W[i, j] = sigmoid(s_i - s_j), the same API as the pairwise
cross-encoder's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pushgen.core.errors import PushgenError

MANIFEST = "frozen_ranker.json"


def is_frozen_ranker(model_dir: str | Path) -> bool:
    """Whether `model_dir` holds a frozen-encoder ranker (else: a pairwise or listwise model)."""
    return (Path(model_dir) / MANIFEST).exists()


class FrozenRanker:
    """Scores candidate sets with a frozen encoder and a probe or set scorer (see the module)."""

    def __init__(self, model: Any, tokenizer: Any, manifest: dict, head: Any, device: str) -> None:
        self.model, self.tokenizer, self.manifest, self.device = model, tokenizer, manifest, device
        self.head = head  # the probe's w (np.ndarray) or a SetScorer
        self.layers = int(manifest.get("layers", 3))
        self.max_length = int(manifest.get("max_length", 64))

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, device: str | None = None) -> FrozenRanker:
        from pushgen.core.models import pick_device
        from pushgen.ranker.model import load_encoder

        root = Path(model_dir)
        manifest = json.loads((root / MANIFEST).read_text())
        kind = manifest.get("kind")
        if kind == "probe":
            head: Any = np.asarray(manifest["coef"], np.float32)
        elif kind == "set":
            from pushgen.ranker.frozen import load_set_scorer

            head = load_set_scorer(root / "set_scorer")
        else:
            raise PushgenError(f"{root / MANIFEST}: kind must be 'probe' or 'set', got {kind!r}")
        device = pick_device(device)
        model, tokenizer = load_encoder(str(root / "encoder"), num_labels=None)
        model.to(device).eval()
        return cls(model, tokenizer, manifest, head, device)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), hidden] float32 embeddings, in one batch."""
        import torch

        from pushgen.ranker.frozen import masked_layer_means

        enc = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            states = self.model(**enc, output_hidden_states=True).hidden_states[-self.layers :]
            pooled = masked_layer_means(states, enc["attention_mask"])
            return pooled.mean(1).float().cpu().numpy()

    def score_sets(self, sets: Sequence[tuple[Sequence[str], str | None]]) -> list[np.ndarray]:
        """One score per candidate of each set; every text of every set embedded in one batch."""
        flat = [t for texts, _ in sets for t in texts]
        table = dict(zip(flat, self.embed(flat), strict=True)) if flat else {}
        if isinstance(self.head, np.ndarray):
            return [np.array([table[t] @ self.head for t in texts], float) for texts, _ in sets]
        from pushgen.ranker.frozen import set_scorer_scores

        return [np.asarray(s, float) for s in set_scorer_scores(self.head, list(sets), table)]

    def win_matrices(
        self, sets: Sequence[tuple[Sequence[str], str | None]], raw: bool = False
    ) -> list[np.ndarray]:
        """W[i, j] = sigmoid(s_i - s_j) for each set (diag 0.5; `raw` changes nothing here)."""
        return [1.0 / (1.0 + np.exp(-(s[:, None] - s[None, :]))) for s in self.score_sets(sets)]
