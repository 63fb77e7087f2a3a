"""Selection: score candidate pairs with the pairwise ranker and aggregate them into a ranking.

`PairwiseRanker.win_matrix` puts all K(K-1) ordered pairs through the cross-encoder in one batch
and returns W with W[i, j] = P(i beats j); `win_matrices` does the same for many candidate sets
at once (the server's batches). It averages both orders, W = (P + 1 - P.T) / 2, so the
matrix is exactly antisymmetric even where the model is not (the evaluation reports how far the
raw model is). `rank` aggregates W into per-candidate scores:
- `copeland`: number of pairwise wins (W > 0.5), ties broken by the mean win probability;
- `bradley_terry`: maximum-likelihood strengths s with P(i beats j) = sigmoid(s_i - s_j);
- `knockout`: a single-elimination bracket, K-1 comparisons instead of K(K-1), for when K is
  large; it reads only the pairs it needs (scored in ceil(log2 K) batches).

`PairwiseRanker.from_pretrained(dir, dtype=...)` loads fp32 by default; "auto" runs bf16 where
the hardware has bf16 units, "int8" is dynamic quantisation. Neither is the default because
neither always picks fp32's candidate (bench_rank, trained sim ranker, 40 sets of K=8: bf16
90% same choice, max |dW| 0.0045, near-ties only; int8 70%, max |dW| 0.25).

    ranker = PairwiseRanker.from_pretrained("runs/ranker")
    result = ranker.rank(["Can you guess?", "Watch this now"], method="copeland")
    result.chosen, result.scores, result.win_matrix
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pushgen.core.errors import ConfigError, PushgenError
from pushgen.core.models import DTYPES as MODEL_DTYPES
from pushgen.core.models import check_dtype, pick_device, resolve_dtype
from pushgen.ranker.aggregate import (
    METHODS,
    RankResult,
    aggregate,
    knockout,
    knockout_result,
)
from pushgen.ranker.inputs import (
    RankerSettings,
    caption_segment,
    check_texts,
)

# Numeric modes for inference: `pushgen.core.models.DTYPES` ("auto": bf16 where the hardware has bf16
# units, else fp32), plus "int8", dynamic int8 quantisation of the Linear layers (CPU).
DTYPES = (*MODEL_DTYPES, "int8")


class PairwiseRanker:
    """A saved cross-encoder `[CLS] a [SEP] b [SEP] -> P(a beats b)`, ready to rank candidates."""

    def __init__(self, model, tokenizer, settings: RankerSettings, device: str = "cpu") -> None:
        self.model, self.tokenizer, self.settings, self.device = model, tokenizer, settings, device
        self.dtype = "float32"  # set by from_pretrained: float32, bfloat16 or int8

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path, device: str | None = None, dtype: str = "float32"
    ) -> PairwiseRanker:
        """Load a ranker saved by `train_ranker` (safetensors + `ranker_config.json`).

        `dtype` (see `DTYPES`): fp32 by default, the exact reference; "auto" (bf16 where the
        hardware has bf16 units) is faster but flips near-tied choices (see the module notes;
        `python -m bench.bench_rank` measures speed and agreement on every run).
        """
        import torch
        from transformers import AutoTokenizer

        from pushgen.ranker.model import load_pair_model

        check_dtype(dtype, DTYPES)
        settings = RankerSettings.load(model_dir)
        if settings.head == "listwise":  # one pass per candidate set, same interface
            from pushgen.ranker.listwise import ListwiseRanker

            return ListwiseRanker.from_pretrained(model_dir, device, dtype)  # type: ignore[return-value]
        if settings.kind != "pairwise":
            raise PushgenError(f"{model_dir} holds a {settings.kind} model, not a pairwise ranker")
        device = pick_device(device)
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = load_pair_model(model_dir, settings.head, tokenizer, settings.pool_layers)
        model.to(device).eval()
        dtype = resolve_dtype(dtype, device, DTYPES)
        if dtype == "bfloat16":
            model.to(torch.bfloat16)
        elif dtype == "int8":
            if device != "cpu":
                raise ConfigError("int8 (dynamic quantisation) runs on the CPU only")
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, torch.qint8)
        ranker = cls(model, tokenizer, settings, device)
        ranker.dtype = dtype
        return ranker

    def _second(self, texts_b: Sequence[str], caption: str | None) -> list[str]:
        if self.settings.use_caption and caption:
            return [caption_segment(b, caption, self.tokenizer.sep_token) for b in texts_b]
        return list(texts_b)

    def pair_inputs(
        self, texts: Sequence[str], caption: str | None = None
    ) -> tuple[list[str], list[str]]:
        """The model's (a, b) inputs for every ordered pair (i, j), i != j, row by row, with the
        caption folded into b when the model was trained with it."""
        ii, jj = np.where(~np.eye(len(texts), dtype=bool))
        return [texts[i] for i in ii], self._second([texts[j] for j in jj], caption)

    def score_pairs(
        self, texts_a: Sequence[str], texts_b: Sequence[str], caption: str | None = None
    ) -> np.ndarray:
        """Raw P(a beats b) for each (a, b), as the model says it (no symmetrisation)."""
        import torch

        if len(texts_a) != len(texts_b):
            raise ConfigError("texts_a and texts_b must have the same length")
        out, bs = [], self.settings.batch_size
        second = self._second(texts_b, caption)
        with torch.inference_mode():
            for start in range(0, len(texts_a), bs):
                enc = self.tokenizer(
                    list(texts_a[start : start + bs]),
                    second[start : start + bs],
                    truncation=True,
                    max_length=self.settings.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                # the sigmoid in fp32: bf16 would round probabilities near 0.5 to steps of 0.002
                logits = self.model(**enc).logits[:, 0].float()
                # temperature scaling (pushgen/ranker/calibrate.py): monotone, same choices
                logits = logits / float(getattr(self.settings, "temperature", 1.0) or 1.0)
                out.append(torch.sigmoid(logits).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def win_matrices(
        self, sets: Sequence[tuple[Sequence[str], str | None]], raw: bool = False
    ) -> list[np.ndarray]:
        """The win matrix of each candidate set `(texts, caption)`, the K(K-1) ordered pairs of
        all sets scored in one batch: W[i, j] = P(i beats j), both orders averaged so W + W.T = 1
        exactly (`raw=True`: the model's P as it says it); diag 0.5. Texts are used as given
        (`win_matrix` checks them; serving has validated them)."""
        pairs = [self.pair_inputs(texts, caption) for texts, caption in sets]
        a = [text for set_a, _ in pairs for text in set_a]
        b = [text for _, set_b in pairs for text in set_b]
        ends = np.cumsum([0] + [len(set_a) for set_a, _ in pairs])
        probs = self.score_pairs(a, b) if a else np.zeros(0)
        out = []
        for (texts, _), lo, hi in zip(sets, ends[:-1], ends[1:], strict=True):
            p = np.full((len(texts), len(texts)), 0.5)
            p[~np.eye(len(texts), dtype=bool)] = probs[lo:hi]  # row-major, as pair_inputs
            out.append(p if raw else (p + 1.0 - p.T) / 2.0)
        return out

    def raw_win_matrix(self, texts: Sequence[str], caption: str | None = None) -> np.ndarray:
        """P[i, j] = model's P(i beats j) for all ordered pairs, scored in one batch; diag 0.5."""
        return self.win_matrices([(check_texts(texts), caption)], raw=True)[0]

    def win_matrix(self, texts: Sequence[str], caption: str | None = None) -> np.ndarray:
        """W[i, j] = P(i beats j), both orders averaged so W + W.T = 1 exactly; diag 0.5."""
        return self.win_matrices([(check_texts(texts), caption)])[0]

    def rank(
        self, texts: Sequence[str], caption: str | None = None, method: str = "copeland"
    ) -> RankResult:
        """Scores, win matrix and chosen index for `texts` under `method` (see `METHODS`)."""
        if method not in METHODS:
            raise ConfigError(f"unknown ranking method {method!r}; known: {METHODS}")
        texts = check_texts(texts)
        if method != "knockout":
            return aggregate(self.win_matrix(texts, caption), method)
        probs: dict[tuple[int, int], float] = {}

        def compare(pairs: list[tuple[int, int]]) -> np.ndarray:
            # Both orders of each match, averaged, as in win_matrix: one batch per round.
            a = [texts[i] for i, _ in pairs] + [texts[j] for _, j in pairs]
            b = [texts[j] for _, j in pairs] + [texts[i] for i, _ in pairs]
            raw = self.score_pairs(a, b, caption)
            p = (raw[: len(pairs)] + 1.0 - raw[len(pairs) :]) / 2.0
            probs.update(dict(zip(pairs, p.tolist(), strict=True)))
            return p

        chosen, compared = knockout(len(texts), compare)
        return knockout_result(len(texts), chosen, compared, probs)
