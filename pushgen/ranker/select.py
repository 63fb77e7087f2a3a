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

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from pushgen.errors import ConfigError, PushgenError
from pushgen.models import DTYPES as MODEL_DTYPES
from pushgen.models import check_dtype, pick_device, resolve_dtype

METHODS = ("copeland", "bradley_terry", "knockout")
# Numeric modes for inference: `pushgen.models.DTYPES` ("auto": bf16 where the hardware has bf16
# units, else fp32), plus "int8", dynamic int8 quantisation of the Linear layers (CPU).
DTYPES = (*MODEL_DTYPES, "int8")
RANKER_CONFIG_FILE = "ranker_config.json"

# compare(pairs) -> P(i beats j) for each (i, j) in pairs; one call per knockout round.
CompareFn = Callable[[list[tuple[int, int]]], np.ndarray]


@dataclass
class RankResult:
    """Per-candidate scores (higher is better), the win matrix, and the chosen candidate."""

    scores: list[float]
    win_matrix: list[list[float]]  # W[i][j] = P(i beats j); entries not compared are NaN (knockout)
    chosen: int
    method: str

    def to_dict(self) -> dict:
        """JSON-ready form (NaN becomes None)."""
        d = asdict(self)
        d["win_matrix"] = [[None if np.isnan(x) else x for x in row] for row in self.win_matrix]
        return d


def _check_square(win: np.ndarray) -> np.ndarray:
    win = np.asarray(win, dtype=float)
    if win.ndim != 2 or win.shape[0] != win.shape[1] or win.shape[0] == 0:
        raise ConfigError(f"a win matrix must be square and non-empty, got shape {win.shape}")
    return win


def copeland_scores(win: np.ndarray) -> np.ndarray:
    """Copeland score per candidate: wins (W > 0.5) + half a point per tie, plus the mean win
    probability / K as a tie-breaker that never outweighs one win."""
    win = _check_square(win)
    k = win.shape[0]
    off = ~np.eye(k, dtype=bool)
    wins = ((win > 0.5) & off).sum(1) + 0.5 * ((win == 0.5) & off).sum(1)
    soft = np.where(off, win, 0.0).sum(1) / max(k - 1, 1)
    return wins + soft / (k + 1)


def bradley_terry_scores(win: np.ndarray, l2: float = 1e-2) -> np.ndarray:
    """Bradley-Terry strengths fitted to soft outcomes W (maximum likelihood, mean zero).

    Maximises sum_{i != j} W_ij log sigmoid(s_i - s_j); the small L2 term keeps strengths finite
    when one candidate wins every comparison with probability 1.
    """
    win = _check_square(win)
    k = win.shape[0]
    if k == 1:
        return np.zeros(1)
    off = ~np.eye(k, dtype=bool)
    target = np.where(off, win, 0.0)

    def loss_and_grad(s: np.ndarray) -> tuple[float, np.ndarray]:
        diff = s[:, None] - s[None, :]
        loss = -(target * log_expit(diff)).sum() + l2 * (s @ s)
        resid = np.where(off, target - (target + target.T) * expit(diff), 0.0)
        grad = -resid.sum(1) + 2 * l2 * s  # resid is antisymmetric: r_ij - r_ji
        return float(loss), grad

    fit = minimize(loss_and_grad, np.zeros(k), jac=True, method="L-BFGS-B")
    return fit.x - fit.x.mean()


def knockout(n: int, compare: CompareFn) -> tuple[int, list[tuple[int, int]]]:
    """Single-elimination bracket over candidates 0..n-1: returns (winner, pairs compared).

    Each round pairs the survivors in order and asks `compare` once for the whole round (so a
    model scores it as one batch); an odd survivor out gets a bye. n-1 comparisons in total.
    """
    if n < 1:
        raise ConfigError("knockout needs at least one candidate")
    alive, compared = list(range(n)), []
    while len(alive) > 1:
        round_pairs = [(alive[i], alive[i + 1]) for i in range(0, len(alive) - 1, 2)]
        probs = np.asarray(compare(round_pairs), dtype=float)
        compared += round_pairs
        nxt = [i if p >= 0.5 else j for (i, j), p in zip(round_pairs, probs, strict=True)]
        alive = nxt + ([alive[-1]] if len(alive) % 2 else [])
    return alive[0], compared


def knockout_from_matrix(win: np.ndarray) -> tuple[int, list[tuple[int, int]]]:
    """`knockout` reading an already computed win matrix (for evaluation)."""
    win = _check_square(win)
    return knockout(win.shape[0], lambda pairs: np.array([win[i, j] for i, j in pairs]))


def aggregate(win: np.ndarray, method: str = "copeland") -> RankResult:
    """Rank candidates from a full win matrix with `copeland` or `bradley_terry` (or `knockout`)."""
    win = _check_square(win)
    if method == "copeland":
        scores = copeland_scores(win)
    elif method == "bradley_terry":
        scores = bradley_terry_scores(win)
    elif method == "knockout":
        chosen, compared = knockout_from_matrix(win)
        return _knockout_result(win.shape[0], chosen, compared, win)
    else:
        raise ConfigError(f"unknown ranking method {method!r}; known: {METHODS}")
    return RankResult([float(s) for s in scores], win.tolist(), int(np.argmax(scores)), method)


def _knockout_result(
    k: int, chosen: int, compared: list[tuple[int, int]], probs: np.ndarray | dict
) -> RankResult:
    """Knockout scores: the round a candidate reached (the winner gets one more)."""
    win = np.full((k, k), np.nan)
    np.fill_diagonal(win, 0.5)
    rounds_won = np.zeros(k)
    for i, j in compared:
        p = probs[i, j] if isinstance(probs, np.ndarray) else probs[(i, j)]
        win[i, j], win[j, i] = p, 1.0 - p
        rounds_won[i if p >= 0.5 else j] += 1
    return RankResult([float(s) for s in rounds_won], win.tolist(), int(chosen), "knockout")


@dataclass
class RankerSettings:
    """What `PairwiseRanker` needs to know about a saved model (written next to its weights)."""

    kind: str = "pairwise"  # "pairwise" cross-encoder or "pointwise" regressor (the ablation)
    max_length: int = 64  # tokens per (a, b) input; longer inputs are truncated
    use_caption: bool = False  # the model was trained with the caption appended to the pair
    backbone: str = ""  # where the encoder came from (for the record)
    batch_size: int = 256  # pairs per forward pass at inference (all K(K-1) pairs for K <= 16)
    head: str = "cls"  # the pairwise head (`pushgen.ranker.model.HEADS`); older models: "cls"
    pool_layers: int = 1  # segment_diff: last N layers averaged before pooling; older models: 1

    @classmethod
    def load(cls, model_dir: str | Path) -> RankerSettings:
        path = Path(model_dir) / RANKER_CONFIG_FILE
        if not path.exists():
            raise PushgenError(f"{model_dir} is not a pushgen ranker (no {RANKER_CONFIG_FILE})")
        raw = json.loads(path.read_text())
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})

    def save(self, model_dir: str | Path) -> None:
        (Path(model_dir) / RANKER_CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2))


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
        return self.win_matrices([(_check_texts(texts), caption)], raw=True)[0]

    def win_matrix(self, texts: Sequence[str], caption: str | None = None) -> np.ndarray:
        """W[i, j] = P(i beats j), both orders averaged so W + W.T = 1 exactly; diag 0.5."""
        return self.win_matrices([(_check_texts(texts), caption)])[0]

    def rank(
        self, texts: Sequence[str], caption: str | None = None, method: str = "copeland"
    ) -> RankResult:
        """Scores, win matrix and chosen index for `texts` under `method` (see `METHODS`)."""
        if method not in METHODS:
            raise ConfigError(f"unknown ranking method {method!r}; known: {METHODS}")
        texts = _check_texts(texts)
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
        return _knockout_result(len(texts), chosen, compared, probs)


def caption_segment(text: str, caption: str, sep_token: str | None) -> str:
    """`text [SEP] caption`: the caption as a third segment after b, which a and b both attend to
    but neither pools (`pushgen.ranker.model`); the one spelling for training and inference."""
    return f"{text} {sep_token or ' '} {caption}"


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ConfigError("texts must be a list of candidate strings")
    if len(texts) == 0:
        raise ConfigError("no candidates to rank")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ConfigError(f"candidate(s) {bad} are empty or not strings")
    return list(texts)
