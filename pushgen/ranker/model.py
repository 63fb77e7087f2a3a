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
count as one. The torch module is `segment_diff.SegmentDiffPairModel`; this module stays free of
torch at import (the head names live in `heads`, which the CLI imports).

    model, tokenizer = build_pair_model("sentence-transformers/all-MiniLM-L6-v2", "segment_diff")
    model = load_pair_model("runs/ranker", "segment_diff")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pushgen.core.errors import ConfigError, PushgenError
from pushgen.ranker.heads import HEAD_FILE, check_head


def _wrap(encoder: Any, tokenizer: Any, pool_layers: int = 1) -> Any:
    from pushgen.ranker.segment_diff import SegmentDiffPairModel

    if tokenizer.sep_token_id is None:
        raise PushgenError("the segment_diff head needs a tokenizer with a separator token")
    return SegmentDiffPairModel(
        encoder, tokenizer.sep_token_id, tokenizer.cls_token_id, pool_layers
    )


def load_encoder(backbone: str | None, num_labels: int | None = 1) -> tuple[Any, Any]:
    """(model, tokenizer) of a pretrained encoder (any HF id or path; None: the packaged
    all-MiniLM-L6-v2): for sequence classification with a fresh `num_labels` head, or the bare
    encoder when `num_labels` is None."""
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from pushgen.core.models import resolve_encoder

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
