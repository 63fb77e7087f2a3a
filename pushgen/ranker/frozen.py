"""The frozen-encoder listwise ranker: cached sentence embeddings + a small set transformer.

Every headline (and caption) is embedded once by a frozen sentence encoder (mean of its tokens,
averaged over the last few layers, where a headline's style cues sit) and cached on disk. A small
transformer then reads the K candidate vectors of one A/B test (plus the caption vector, when
there is one) with no position information, so its K scores do not depend on the order, and
P(i beats j) = sigmoid(s_i - s_j). It trains in minutes on CPU on whole tests (`listwise_train`).

The floor it must beat is the frozen linear probe on the same features: logistic regression on
e_a - e_b (`linear_probe`).

    emb = EmbeddingCache("runs/emb", "all-mpnet-base-v2", layers=3).embed(texts)
    model = SetScorer(FrozenListwiseConfig(dim=emb.shape[1]))
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pushgen.core.errors import ConfigError

KEEP_LAYERS = 4  # the cache keeps the mean-pooled states of the last 4 layers
POOL_LAYERS = 3  # an embedding is the mean of the last 3 of them (EmbeddingCache's default)
MAX_LENGTH = 64  # tokens read per text (a headline or caption fits)
ANCHORS = ("none", "probe")


def masked_layer_means(
    hidden_states: tuple[torch.Tensor, ...], attention_mask: torch.Tensor
) -> torch.Tensor:
    """[n, layers, hidden]: each text's mean over its real (unpadded) tokens in each layer given.
    The one pooling of the frozen ranker, offline (`pooled_layer_states`) and served."""
    mask = attention_mask.unsqueeze(-1).to(hidden_states[0].dtype)
    pooled = [(h * mask).sum(1) / mask.sum(1).clamp_min(1.0) for h in hidden_states]
    return torch.stack(pooled, dim=1)


def pooled_layer_states(
    texts: list[str], backbone: str | None, batch_size: int = 64, max_length: int = MAX_LENGTH
) -> np.ndarray:
    """[n, KEEP_LAYERS, hidden] float32: each text's token mean in each of the last layers."""
    from pushgen.ranker.model import load_encoder

    model, tokenizer = load_encoder(backbone, num_labels=None)
    model.eval()
    out = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc="embed", disable=None):
            enc = tokenizer(
                texts[start : start + batch_size],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            states = model(**enc, output_hidden_states=True).hidden_states[-KEEP_LAYERS:]
            out.append(masked_layer_means(states, enc["attention_mask"]).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, KEEP_LAYERS, 0), np.float32)


class EmbeddingCache:
    """Text -> frozen embedding (mean of the last `layers` layers), computed once per text and
    kept on disk under `root`, one file per (encoder, text set)."""

    def __init__(self, root: str | Path, backbone: str | None, layers: int = POOL_LAYERS) -> None:
        if not 1 <= layers <= KEEP_LAYERS:
            raise ConfigError(f"layers must be in 1..{KEEP_LAYERS}, got {layers}")
        self.root, self.backbone, self.layers = Path(root), backbone, layers

    def _path(self, texts: list[str]) -> Path:
        digest = hashlib.sha256(
            json.dumps([str(self.backbone), sorted(set(texts))]).encode()
        ).hexdigest()[:16]
        return self.root / f"{Path(str(self.backbone or 'default')).name}-{digest}.npz"

    def layer_states(self, texts: list[str]) -> dict[str, np.ndarray]:
        """{text: [KEEP_LAYERS, hidden]} for the distinct `texts` (from disk when cached)."""
        unique = sorted(set(texts))
        path = self._path(unique)
        # any cached text set of this encoder that holds all of `texts` will do
        prefix = f"{Path(str(self.backbone or 'default')).name}-"
        candidates = [path] + sorted(self.root.glob(f"{prefix}*.npz")) if self.root.exists() else []
        for cached in candidates:
            if not cached.exists() or cached.name.endswith(".tmp.npz"):
                continue
            data = np.load(cached, allow_pickle=False)
            table = dict(zip(data["texts"].tolist(), data["states"], strict=True))
            if all(t in table for t in unique):
                return table
        states = pooled_layer_states(unique, self.backbone)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, texts=np.array(unique), states=states.astype(np.float16))
        tmp.replace(path)
        return dict(zip(unique, states, strict=True))

    def embed(self, texts: list[str]) -> np.ndarray:
        """[len(texts), hidden] float32: mean of the last `layers` layers' pooled states."""
        table = self.layer_states(texts)
        return np.stack([table[t][-self.layers :].astype(np.float32).mean(0) for t in texts])


@dataclass
class FrozenListwiseConfig:
    """The set transformer over candidate vectors, and how it is trained."""

    dim: int = 384  # input embedding size (sum of the encoders' sizes when concatenated)
    width: int = 64  # model width after the input projection
    layers: int = 2  # transformer layers over the K candidates (+ caption)
    heads: int = 4  # attention heads
    dropout: float = 0.3  # inside the set layers
    input_dropout: float = 0.2  # on the raw embeddings (regularises the projection)
    # passes over the training groups: at 30 the dev-fitted temperature was 8 (overfit), at 8 ~1.3
    epochs: int = 8
    batch_groups: int = 64  # A/B tests per optimiser step
    lr: float = 1e-3  # AdamW rate
    weight_decay: float = 0.05  # AdamW decoupled weight decay
    loss: str = "pairwise"  # "pairwise" (weighted logistic over arm pairs) or "plackett_luce"
    seed: int = 0  # initialisation and batch order
    # "none": the direct (linear) path trains with the rest; "probe": the direct path holds a
    # fitted linear probe's weights, frozen, and the set layers' output starts at zero, so the
    # model starts as the probe and learns only a correction that depends on the set
    anchor: str = "none"

    def check(self) -> None:
        """Fail early on values that would waste a run."""
        if self.loss not in ("pairwise", "plackett_luce"):
            raise ConfigError(f"loss must be pairwise or plackett_luce, got {self.loss!r}")
        if self.width % self.heads:
            raise ConfigError("width must be a multiple of heads")
        if self.anchor not in ANCHORS:
            raise ConfigError(f"anchor must be one of {ANCHORS}, got {self.anchor!r}")


class SetScorer(torch.nn.Module):
    """Scores K candidate vectors jointly: no positions, so permuting the candidates
    permutes the scores (up to float noise). A caption vector, when given, is one more
    token that every candidate attends to and that is not scored."""

    def __init__(self, cfg: FrozenListwiseConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.norm_in = torch.nn.LayerNorm(cfg.dim)
        self.drop_in = torch.nn.Dropout(cfg.input_dropout)
        self.proj = torch.nn.Linear(cfg.dim, cfg.width)
        self.caption_type = torch.nn.Parameter(torch.zeros(cfg.width))
        layer = torch.nn.TransformerEncoderLayer(
            cfg.width,
            cfg.heads,
            2 * cfg.width,
            cfg.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = torch.nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        # the direct path is the linear probe on the raw embedding; the set layers add what
        # depends on the other candidates
        self.direct = torch.nn.Linear(cfg.dim, 1, bias=False)
        self.score = torch.nn.Linear(cfg.width, 1, bias=False)
        if cfg.anchor == "probe":  # the probe's weights come with `set_probe`
            torch.nn.init.zeros_(self.score.weight)
            self.direct.weight.requires_grad_(False)

    def set_probe(self, coef) -> None:
        """The direct path := the linear probe w (scores w . e), kept frozen."""
        with torch.no_grad():
            self.direct.weight.copy_(torch.as_tensor(coef, dtype=torch.float32).view(1, -1))

    def forward(self, cands, mask, caption=None):
        """cands [B, K, dim], mask [B, K] (True: a real candidate), caption [B, dim] or None
        -> scores [B, K] (padding slots score 0)."""
        raw = self.drop_in(cands)
        h = self.proj(self.norm_in(raw))
        keep = mask
        if caption is not None:
            c = self.proj(self.norm_in(self.drop_in(caption))) + self.caption_type
            h = torch.cat([h, c.unsqueeze(1)], dim=1)
            keep = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        h = self.encoder(h, src_key_padding_mask=~keep)[:, : cands.shape[1]]
        # an anchored probe sees the clean embedding, as it did when it was fitted
        direct = self.direct(cands if self.cfg.anchor == "probe" else raw)[..., 0]
        s = self.score(h)[..., 0] + direct
        return s.masked_fill(~mask, 0.0)


def build_set_scorer(cfg: FrozenListwiseConfig) -> Any:
    """A fresh `SetScorer` for `cfg`."""
    cfg.check()
    return SetScorer(cfg)


def save_set_scorer(model: Any, out_dir: str | Path, extra: dict | None = None) -> None:
    """Weights (safetensors) + config (JSON) of a trained `SetScorer`."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "set_scorer.safetensors"))
    (out / "set_scorer.json").write_text(json.dumps({**asdict(model.cfg), **(extra or {})}))


def load_set_scorer(model_dir: str | Path) -> Any:
    """A `SetScorer` saved by `save_set_scorer`, in eval mode."""
    from safetensors.torch import load_file

    raw = json.loads((Path(model_dir) / "set_scorer.json").read_text())
    cfg = FrozenListwiseConfig(
        **{k: v for k, v in raw.items() if k in FrozenListwiseConfig.__dataclass_fields__}
    )
    model = build_set_scorer(cfg)
    model.load_state_dict(load_file(str(Path(model_dir) / "set_scorer.safetensors")))
    return model.eval()


def _batch_tensors(examples, table: dict[str, np.ndarray], captions: bool):
    """Padded [B, K, dim] candidate vectors, [B, K] mask and [B, dim] captions (or None)."""
    k = max(len(e.texts) for e in examples)
    dim = len(next(iter(table.values())))
    cands = np.zeros((len(examples), k, dim), np.float32)
    mask = np.zeros((len(examples), k), bool)
    for n, e in enumerate(examples):
        cands[n, : len(e.texts)] = [table[t] for t in e.texts]
        mask[n, : len(e.texts)] = True
    cap = None
    if captions:
        none = np.zeros(dim, np.float32)  # an empty caption is the zero vector
        cap = torch.as_tensor(np.stack([table.get(e.caption or "", none) for e in examples]))
    return torch.as_tensor(cands), torch.as_tensor(mask), cap


def train_set_scorer(
    groups: list,
    table: dict[str, np.ndarray],
    cfg: FrozenListwiseConfig,
    captions: bool = False,
    max_set_size: int = 16,
    probe_coef: np.ndarray | None = None,
    dev_score: Callable[[Any], float] | None = None,
) -> Any:
    """Fit a `SetScorer` on whole tests (`listwise_train.ArmGroup`s) whose texts (and captions,
    when `captions`) are keys of `table` (text -> frozen embedding), with the chosen loss.

    `probe_coef` (the linear probe's w, required when `cfg.anchor == "probe"`) starts the model
    at the probe. `dev_score(model) -> float` (higher is better), when given, is measured before
    training and after every epoch; the model keeps the best epoch's weights (the earliest on a
    tie) and `model.selection` says which."""
    import copy

    from pushgen.ranker.listwise_train import epoch_examples, pairwise_set_loss, plackett_luce_loss

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_set_scorer(cfg)
    if cfg.anchor == "probe":
        if probe_coef is None:
            raise ConfigError("anchor 'probe' needs the probe's weights (probe_coef)")
        model.set_probe(probe_coef)
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[float] = []
    best: tuple[float, int, dict] | None = None

    def measure(epoch: int) -> None:
        nonlocal best
        if dev_score is None:
            return
        model.eval()
        value = float(dev_score(model))
        history.append(value)
        if best is None or value > best[0]:
            best = (value, epoch, copy.deepcopy(model.state_dict()))

    measure(0)
    for epoch in tqdm(range(1, cfg.epochs + 1), desc="set scorer", disable=None):
        model.train()
        examples = epoch_examples(groups, max_set_size, "hard", rng)
        for b0 in range(0, len(examples), cfg.batch_groups):
            batch = examples[b0 : b0 + cfg.batch_groups]
            cands, mask, cap = _batch_tensors(batch, table, captions)
            scores = model(cands, mask, cap)
            if cfg.loss == "plackett_luce":
                loss = plackett_luce_loss(scores, batch, rng)
            else:
                loss = pairwise_set_loss(scores, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        measure(epoch)
    if best is not None:
        model.load_state_dict(best[2])
        model.selection = {"epoch": best[1], "dev": best[0], "dev_by_epoch": history}
    return model.eval()


def set_scorer_scores(
    model: Any,
    sets: list[tuple[list[str], str | None]],
    table: dict[str, np.ndarray],
    captions: bool = False,
) -> list[np.ndarray]:
    """Scores of each candidate set in one pass per batch (texts must be keys of `table`)."""
    from pushgen.ranker.listwise_train import SetExample

    out = []
    empty = np.zeros(0)
    with torch.inference_mode():
        for b0 in range(0, len(sets), 256):
            chunk = [
                SetExample(list(t), c, empty, empty, empty, empty, empty, empty)
                for t, c in sets[b0 : b0 + 256]
            ]
            cands, mask, cap = _batch_tensors(chunk, table, captions)
            scores = model(cands, mask, cap).numpy()
            out += [scores[n, : len(e.texts)] for n, e in enumerate(chunk)]
    return out


def ensemble_scores(
    models: list,
    sets: list[tuple[list[str], str | None]],
    table: dict[str, np.ndarray],
    captions: bool = False,
) -> list[np.ndarray]:
    """The mean of several set scorers' scores of each set (differences, and so pair logits,
    are averaged too)."""
    each = [set_scorer_scores(m, sets, table, captions) for m in models]
    return [np.mean(member, axis=0) for member in zip(*each, strict=True)]


def linear_probe(
    pairs, table: dict[str, np.ndarray], c: float = 1.0, use_weights: bool = False
) -> Any:
    """The floor: logistic regression on e_a - e_b (both orders, no intercept), fitted on
    `pairs` (text_a, text_b, label, and `weight` when `use_weights`); the fitted sklearn model."""
    from sklearn.linear_model import LogisticRegression

    decided = pairs[pairs["label"] != 0.5]
    diff = np.stack(
        [table[a] - table[b] for a, b in zip(decided["text_a"], decided["text_b"], strict=True)]
    )
    y = decided["label"].to_numpy(int)
    w = decided["weight"].to_numpy(float) if use_weights else np.ones(len(y))
    x, y, w = np.concatenate([diff, -diff]), np.concatenate([y, 1 - y]), np.concatenate([w, w])
    return LogisticRegression(C=c, fit_intercept=False, max_iter=3000).fit(x, y, sample_weight=w)


def fit_temperature(diff: np.ndarray, label: np.ndarray) -> float:
    """The T that minimises the log loss of sigmoid(diff / T) on decided labels (calibration on
    a split the model was not trained on)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_expit

    keep = label != 0.5
    d, y = diff[keep], label[keep]

    def nll(log_t: float) -> float:
        z = d / np.exp(log_t)
        return float(-(y * log_expit(z) + (1 - y) * log_expit(-z)).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(-3, 4), method="bounded").x))
