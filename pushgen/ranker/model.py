"""The pairwise model: one cross-encoder pass over `[CLS] a [SEP] b [SEP]`, and a choice of head.

- `cls`: the encoder's own sequence-classification head on `[CLS]` (what
  `AutoModelForSequenceClassification` builds: pooler, dropout, one logit).
- `segment_diff`: the mean of a's tokens and the mean of b's tokens, both contextualised by the
  joint encoding (each attends to the other and to the caption), scored by one linear layer:
  `logit = score(a) - score(b)`. Close to antisymmetric by construction, and it starts from
  what a sentence encoder was trained for: all-MiniLM-L6-v2 learnt mean-pooled embeddings, and its
  `[CLS]` output was never trained. Saved as the encoder (safetensors, `config.json`) plus the
  scoring layer in `pair_head.safetensors`. `pool_layers` averages the token states of the last
  N layers (all of them if the encoder has fewer) before pooling: a sentence encoder's last layer
  is tuned for topic similarity, and the style cues that decide a headline test sit lower (frozen
  all-MiniLM-L6-v2 on held-out Upworthy stories, linear probe, significant pairs: last layer
  66.6%, mean of the last three 70.8%).

Segments are found from the separator tokens, so a caption appended as `b [SEP] caption` is a
third segment that both a and b attend to but neither pools; RoBERTa-style double separators
count as one.

    model, tokenizer = build_pair_model("sentence-transformers/all-MiniLM-L6-v2", "segment_diff")
    model = load_pair_model("runs/ranker", "segment_diff")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pushgen.errors import ConfigError, PushgenError

HEADS = ("cls", "segment_diff", "listwise")  # listwise: one pass over all K (listwise.py)
HEAD_FILE = "pair_head.safetensors"


def check_head(head: str) -> None:
    """Reject a head outside `HEADS` with a clear message."""
    if head not in HEADS:
        raise ConfigError(f"head must be one of {HEADS}, got {head!r}")


def segment_masks(input_ids, attention_mask, sep_token_id: int, cls_token_id: int | None):
    """(mask of a's tokens, mask of b's tokens): segment 0 and 1 between separator runs, with
    special and padding tokens left out of both."""
    import torch

    is_sep = input_ids == sep_token_id
    previous = torch.nn.functional.pad(is_sep[:, :-1], (1, 0), value=False)
    run_start = (is_sep & ~previous).long()
    segment = torch.cumsum(run_start, dim=1) - run_start  # separators keep the index before them
    valid = attention_mask.bool() & ~is_sep
    if cls_token_id is not None:
        valid &= input_ids != cls_token_id
    return valid & (segment == 0), valid & (segment == 1)


def _masked_mean(hidden, mask):
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def _segment_diff_class():
    import torch
    from transformers.modeling_outputs import SequenceClassifierOutput

    class SegmentDiffPairModel(torch.nn.Module):
        """Cross-encoder with logit = score(mean of a's tokens) - score(mean of b's tokens)."""

        def __init__(
            self, encoder, sep_token_id: int, cls_token_id: int | None, pool_layers: int = 1
        ) -> None:
            super().__init__()
            if pool_layers < 1:
                raise ConfigError(f"pool_layers must be at least 1, got {pool_layers}")
            # up to N: an encoder with fewer layers pools all of them
            n_layers = getattr(encoder.config, "num_hidden_layers", pool_layers)
            self.encoder, self.pool_layers = encoder, min(pool_layers, n_layers)
            self.config = encoder.config  # what the Trainer and callers read
            self.sep_token_id, self.cls_token_id = sep_token_id, cls_token_id
            dropout = getattr(encoder.config, "hidden_dropout_prob", 0.1)
            self.dropout = torch.nn.Dropout(dropout)
            # no bias: it would cancel in the difference
            self.score = torch.nn.Linear(encoder.config.hidden_size, 1, bias=False)
            torch.nn.init.normal_(self.score.weight, std=0.02)

        def forward(self, input_ids, attention_mask, token_type_ids=None, **_: Any):
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            out = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                output_hidden_states=self.pool_layers > 1,
                **extra,
            )
            if self.pool_layers > 1:
                hidden = torch.stack(out.hidden_states[-self.pool_layers :]).mean(dim=0)
            else:
                hidden = out.last_hidden_state
            mask_a, mask_b = segment_masks(
                input_ids, attention_mask, self.sep_token_id, self.cls_token_id
            )
            pooled_a = self.dropout(_masked_mean(hidden, mask_a))
            pooled_b = self.dropout(_masked_mean(hidden, mask_b))
            return SequenceClassifierOutput(logits=self.score(pooled_a) - self.score(pooled_b))

        def save_pretrained(self, out_dir: str | Path, **kwargs: Any) -> None:
            from safetensors.torch import save_file

            self.encoder.save_pretrained(out_dir, **kwargs)
            weight = self.score.weight.detach().float().cpu().contiguous()
            save_file({"score.weight": weight}, str(Path(out_dir) / HEAD_FILE))

    return SegmentDiffPairModel


def _wrap(encoder: Any, tokenizer: Any, pool_layers: int = 1) -> Any:
    if tokenizer.sep_token_id is None:
        raise PushgenError("the segment_diff head needs a tokenizer with a separator token")
    cls = _segment_diff_class()
    return cls(encoder, tokenizer.sep_token_id, tokenizer.cls_token_id, pool_layers)


def load_encoder(backbone: str | None, num_labels: int | None = 1) -> tuple[Any, Any]:
    """(model, tokenizer) of a pretrained encoder (any HF id or path; None: the packaged
    all-MiniLM-L6-v2): for sequence classification with a fresh `num_labels` head, or the bare
    encoder when `num_labels` is None."""
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from pushgen.models import resolve_encoder

    path = resolve_encoder(backbone)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialised head" warning is expected here
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        if num_labels is None:
            model = AutoModel.from_pretrained(path)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)
    except OSError as exc:
        raise PushgenError(f"cannot load encoder {backbone!r}: {exc}".splitlines()[0]) from exc
    finally:
        hf_logging.set_verbosity(verbosity)
    return model, tokenizer


def build_pair_model(
    backbone: str | None, head: str = "cls", pool_layers: int = 1
) -> tuple[Any, Any]:
    """(model, tokenizer): a pretrained encoder with a fresh pairwise head whose output is one
    logit of P(a beats b); `pool_layers` applies to `segment_diff` only."""
    check_head(head)
    if head == "listwise":
        raise ConfigError("the listwise head is built by pushgen.ranker.listwise")
    if head == "cls":
        return load_encoder(backbone, num_labels=1)
    encoder, tokenizer = load_encoder(backbone, num_labels=None)
    return _wrap(encoder, tokenizer, pool_layers), tokenizer


def head_parameter_names(model: Any) -> set[str]:
    """Names of the freshly initialised head's parameters (they may train at their own rate):
    segment_diff's `score`, and the `classifier` (or `score`) that sequence-classification
    models put on top of the encoder."""
    return {n for n, _ in model.named_parameters() if n.startswith(("classifier.", "score."))}


def load_pair_model(model_dir: str | Path, head: str, tokenizer: Any, pool_layers: int = 1) -> Any:
    """A pairwise model saved by `train_ranker` (its `ranker_config.json` names the head)."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    check_head(head)
    if head == "cls":
        return AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    from safetensors.torch import load_file

    head_file = Path(model_dir) / HEAD_FILE
    if not head_file.exists():
        raise PushgenError(f"{model_dir}: segment_diff ranker without its {HEAD_FILE}")
    model = _wrap(AutoModel.from_pretrained(str(model_dir)), tokenizer, pool_layers)
    model.score.load_state_dict({"weight": load_file(str(head_file))["score.weight"]})
    return model
