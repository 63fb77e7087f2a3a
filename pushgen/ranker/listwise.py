"""The listwise head: all K candidates in one sequence, one forward pass, K scores.

`[CLS] c1 [SEP] c2 [SEP] ... cK [SEP] caption [SEP]`: every candidate attends to the others and
to the caption; each candidate's score is one linear layer on the mean of its (contextualised)
tokens, and P(i beats j) = sigmoid(s_i - s_j), so the win matrix is antisymmetric by
construction. At K=8 that is ~110 tokens in one sequence where the pairwise heads need 56
sequences of ~27 (FlashEvaluator; `docs/method.md`).

Order must not leak: with `positions="reset"` every candidate's position ids start again at 1
(the caption's start after the longest candidate budget), so the model sees a set, and permuting
the candidates permutes the scores up to float noise. `positions="sequential"` numbers tokens
0..T-1 as usual; training shuffles the order, and inference can average over `permutations`
random orders. Candidates are found from an explicit per-token candidate index built with the
inputs (not from separators, which a candidate's own text could contain).

    model, tokenizer = build_listwise_model(None, pool_layers=1)
    ranker = ListwiseRanker.from_pretrained("runs/ranker-listwise")
    ranker.scores(["Can you guess?", "Watch this now"])  # one pass
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pushgen.core.errors import ConfigError, PushgenError
from pushgen.core.models import DTYPES, pick_device
from pushgen.ranker.budget import char_precut
from pushgen.ranker.heads import POSITION_MODES

LISTWISE_HEAD_FILE = "listwise_head.safetensors"
LISTWISE_CONFIG_FILE = "listwise_config.json"


@dataclass
class ListwiseSettings:
    """How a listwise ranker lays out its one sequence (saved next to its weights)."""

    candidate_tokens: int = 32  # token budget per candidate (cut before tokenising)
    caption_tokens: int = 64  # token budget of the caption
    positions: str = "reset"  # "reset": position ids restart per candidate; "sequential"
    permutations: int = 1  # inference: average the scores over this many candidate orders
    pool_layers: int = 1  # average the token states of the last N layers before pooling
    max_candidates: int = 32  # candidates per sequence; more are refused (serving caps K lower)
    temperature: float = 1.0  # P(i beats j) = sigmoid((s_i - s_j) / temperature)

    def check(self) -> None:
        """Fail early on a layout that cannot work."""
        if self.positions not in POSITION_MODES:
            raise ConfigError(f"positions must be one of {POSITION_MODES}, got {self.positions!r}")
        if self.candidate_tokens < 1 or self.caption_tokens < 0 or self.permutations < 1:
            raise ConfigError("candidate_tokens and permutations must be >= 1, caption_tokens >= 0")
        if self.pool_layers < 1 or self.max_candidates < 1 or self.temperature <= 0:
            raise ConfigError("pool_layers, max_candidates and temperature must be positive")

    @classmethod
    def load(cls, model_dir: str | Path) -> ListwiseSettings:
        path = Path(model_dir) / LISTWISE_CONFIG_FILE
        if not path.exists():
            raise PushgenError(f"{model_dir}: listwise ranker without its {LISTWISE_CONFIG_FILE}")
        raw = json.loads(path.read_text())
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})

    def save(self, model_dir: str | Path) -> None:
        (Path(model_dir) / LISTWISE_CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2))


def encode_sets(
    tokenizer: Any,
    sets: Sequence[tuple[Sequence[str], str | None]],
    settings: ListwiseSettings,
) -> dict[str, Any]:
    """Padded tensors for a batch of candidate sets: input_ids, attention_mask, position_ids,
    token_type_ids and candidate_index (the candidate a token belongs to, -1 for [CLS],
    separators, caption and padding)."""
    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    if sep_id is None:
        raise PushgenError("the listwise head needs a tokenizer with a separator token")
    flat = [char_precut(str(t), settings.candidate_tokens) for texts, _ in sets for t in texts]
    cand_ids = tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
    captions = [char_precut(str(c or ""), settings.caption_tokens) for _, c in sets]
    use_caption = settings.caption_tokens > 0 and any(c.strip() for c in captions)
    cap_ids = tokenizer(captions, add_special_tokens=False)["input_ids"] if use_caption else None
    rows, at = [], 0
    for s, (texts, _) in enumerate(sets):
        ids, pos, cand = [], [], []
        if cls_id is not None:
            ids, pos, cand = [cls_id], [0], [-1]
        for i in range(len(texts)):
            tokens = cand_ids[at + i][: settings.candidate_tokens]
            start = 1 if settings.positions == "reset" else len(ids)
            ids += [*tokens, sep_id]
            pos += list(range(start, start + len(tokens) + 1))
            cand += [i] * len(tokens) + [-1]
        at += len(texts)
        if cap_ids is not None and cap_ids[s]:
            tokens = cap_ids[s][: settings.caption_tokens]
            start = settings.candidate_tokens + 2 if settings.positions == "reset" else len(ids)
            ids += [*tokens, sep_id]
            pos += list(range(start, start + len(tokens) + 1))
            cand += [-1] * (len(tokens) + 1)
        rows.append((ids, pos, cand))
    width = max(len(r[0]) for r in rows)
    pad = pad_id if pad_id is not None else 0
    out = {
        "input_ids": torch.tensor([r[0] + [pad] * (width - len(r[0])) for r in rows]),
        "position_ids": torch.tensor([r[1] + [0] * (width - len(r[1])) for r in rows]),
        "candidate_index": torch.tensor([r[2] + [-1] * (width - len(r[2])) for r in rows]),
        "attention_mask": torch.tensor([[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows]),
    }
    out["token_type_ids"] = torch.zeros_like(out["input_ids"])
    return out


class ListwiseModel(torch.nn.Module):
    """Encoder + per-candidate mean pooling + one linear score: [B, T] -> scores [B, K]."""

    def __init__(self, encoder, pool_layers: int = 1) -> None:
        super().__init__()
        n_layers = getattr(encoder.config, "num_hidden_layers", pool_layers)
        self.encoder, self.pool_layers = encoder, min(max(pool_layers, 1), n_layers)
        self.config = encoder.config
        self.dropout = torch.nn.Dropout(getattr(encoder.config, "hidden_dropout_prob", 0.1))
        # no bias: only score differences matter
        self.score = torch.nn.Linear(encoder.config.hidden_size, 1, bias=False)
        torch.nn.init.normal_(self.score.weight, std=0.02)

    def forward(
        self,
        input_ids,
        attention_mask,
        candidate_index,
        position_ids=None,
        token_type_ids=None,
        n_candidates: int | None = None,
    ):
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            output_hidden_states=self.pool_layers > 1,
            **extra,
        )
        if self.pool_layers > 1:
            hidden = torch.stack(out.hidden_states[-self.pool_layers :]).mean(dim=0)
        else:
            hidden = out.last_hidden_state
        k = n_candidates or int(candidate_index.max().item()) + 1
        member = candidate_index.unsqueeze(-1) == torch.arange(k, device=hidden.device)
        member = member.to(hidden.dtype)  # [B, T, K]
        pooled = torch.einsum("btk,bth->bkh", member, hidden)
        pooled = pooled / member.sum(1).clamp_min(1.0).unsqueeze(-1)
        return self.score(self.dropout(pooled))[..., 0]  # [B, K]

    def save_pretrained(self, out_dir: str | Path, **kwargs: Any) -> None:
        self.encoder.save_pretrained(out_dir, **kwargs)
        weight = self.score.weight.detach().float().cpu().contiguous()
        save_file({"score.weight": weight}, str(Path(out_dir) / LISTWISE_HEAD_FILE))


def build_listwise_model(backbone: str | None, pool_layers: int = 1) -> tuple[Any, Any]:
    """(model, tokenizer): a pretrained encoder with a fresh listwise scoring layer."""
    from pushgen.ranker.model import load_encoder

    encoder, tokenizer = load_encoder(backbone, num_labels=None)
    if tokenizer.sep_token_id is None:
        raise PushgenError("the listwise head needs a tokenizer with a separator token")
    return ListwiseModel(encoder, pool_layers), tokenizer


def load_listwise_model(model_dir: str | Path, pool_layers: int = 1) -> Any:
    """A listwise model saved by `train_listwise`."""
    from transformers import AutoModel

    head_file = Path(model_dir) / LISTWISE_HEAD_FILE
    if not head_file.exists():
        raise PushgenError(f"{model_dir}: listwise ranker without its {LISTWISE_HEAD_FILE}")
    model = ListwiseModel(AutoModel.from_pretrained(str(model_dir)), pool_layers)
    model.score.load_state_dict({"weight": load_file(str(head_file))["score.weight"]})
    return model


def win_from_scores(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """W[i, j] = sigmoid((s_i - s_j) / T): the pairwise win matrix of one pass; diag 0.5."""
    from scipy.special import expit

    s = np.asarray(scores, float)
    return expit((s[:, None] - s[None, :]) / temperature)


class ListwiseRanker:
    """A saved listwise ranker, with the `PairwiseRanker` interface (win_matrix, rank,
    score_pairs) on top of one forward pass per candidate set."""

    def __init__(self, model, tokenizer, settings, listwise: ListwiseSettings, device="cpu"):
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.settings, self.listwise = settings, listwise  # RankerSettings, ListwiseSettings
        self.dtype = "float32"

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path, device: str | None = None, dtype: str = "float32"
    ) -> ListwiseRanker:
        """Load a ranker saved by `train_listwise` (fp32, or bf16 with dtype="bfloat16")."""
        from transformers import AutoTokenizer

        from pushgen.ranker.inputs import RankerSettings

        if dtype not in DTYPES:  # "auto" loads fp32 here; serving casts after resolve_dtype
            raise ConfigError(f"the listwise ranker runs float32 or bfloat16, not {dtype!r}")
        settings, listwise = RankerSettings.load(model_dir), ListwiseSettings.load(model_dir)
        device = pick_device(device)
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = load_listwise_model(model_dir, listwise.pool_layers).to(device).eval()
        ranker = cls(model, tokenizer, settings, listwise, device)
        if dtype == "bfloat16":
            model.to(torch.bfloat16)
            ranker.dtype = "bfloat16"
        return ranker

    def score_sets(
        self, sets: Sequence[tuple[Sequence[str], str | None]], seed: int = 0
    ) -> list[np.ndarray]:
        """Raw scores of each candidate set, all sets in one forward pass per permutation
        (scores averaged over `permutations` random orders; the first is the given order)."""
        for texts, _ in sets:
            if len(texts) > self.listwise.max_candidates:
                raise ConfigError(
                    f"{len(texts)} candidates exceed this ranker's {self.listwise.max_candidates}"
                )
        caption_ok = self.settings.use_caption
        rng = np.random.default_rng(seed)
        total = [np.zeros(len(t)) for t, _ in sets]
        for p in range(self.listwise.permutations):
            orders = [np.arange(len(t)) if p == 0 else rng.permutation(len(t)) for t, _ in sets]
            batch = [
                ([texts[i] for i in order], caption if caption_ok else None)
                for (texts, caption), order in zip(sets, orders, strict=True)
            ]
            enc = encode_sets(self.tokenizer, batch, self.listwise)
            k = max(len(t) for t, _ in sets)
            with torch.inference_mode():
                out = self.model(**{n: v.to(self.device) for n, v in enc.items()}, n_candidates=k)
            scores = out.float().cpu().numpy()
            for s, order in enumerate(orders):
                total[s][order] += scores[s, : len(order)]
        return [t / self.listwise.permutations for t in total]

    def scores(self, texts: Sequence[str], caption: str | None = None) -> np.ndarray:
        """Raw scores of one candidate set (one forward pass)."""
        from pushgen.ranker.inputs import check_texts

        return self.score_sets([(check_texts(texts), caption)])[0]

    def win_matrices(
        self, sets: Sequence[tuple[Sequence[str], str | None]], raw: bool = False
    ) -> list[np.ndarray]:
        """The win matrix of each candidate set `(texts, caption)`, all sets in one pass (as
        `PairwiseRanker.win_matrices`); `raw` changes nothing: they are antisymmetric already."""
        scores = self.score_sets(sets) if sets else []
        return [win_from_scores(s, self.listwise.temperature) for s in scores]

    def win_matrix(self, texts: Sequence[str], caption: str | None = None) -> np.ndarray:
        """W[i, j] = sigmoid((s_i - s_j) / T) from one pass; W + W.T = 1 exactly."""
        from pushgen.ranker.inputs import check_texts

        return self.win_matrices([(check_texts(texts), caption)])[0]

    raw_win_matrix = win_matrix  # antisymmetric already: nothing to average

    def score_pairs(
        self, texts_a: Sequence[str], texts_b: Sequence[str], caption: str | None = None
    ) -> np.ndarray:
        """P(a beats b) for each (a, b), each pair a K=2 set (all pairs in one batch)."""
        if len(texts_a) != len(texts_b):
            raise ConfigError("texts_a and texts_b must have the same length")
        out = []
        for start in range(0, len(texts_a), self.settings.batch_size):
            sets = [
                ([a, b], caption)
                for a, b in zip(
                    texts_a[start : start + self.settings.batch_size],
                    texts_b[start : start + self.settings.batch_size],
                    strict=True,
                )
            ]
            out += [
                win_from_scores(s, self.listwise.temperature)[0, 1] for s in self.score_sets(sets)
            ]
        return np.asarray(out, float)

    def rank(self, texts: Sequence[str], caption: str | None = None, method: str = "copeland"):
        """Scores, win matrix and chosen index; "knockout" reads the same one-pass matrix."""
        from pushgen.ranker.aggregate import METHODS, aggregate

        if method not in METHODS:
            raise ConfigError(f"unknown ranking method {method!r}; known: {METHODS}")
        return aggregate(self.win_matrix(texts, caption), method)
