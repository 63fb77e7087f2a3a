"""The `segment_diff` pairwise head as a torch module (see `pushgen.ranker.model` for the idea).

Kept apart from `model.py`, which stays free of torch at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers.modeling_outputs import SequenceClassifierOutput

from pushgen.core.errors import ConfigError
from pushgen.ranker.heads import HEAD_FILE


def segment_masks(input_ids, attention_mask, sep_token_id: int, cls_token_id: int | None):
    """(mask of a's tokens, mask of b's tokens): segment 0 and 1 between separator runs, with
    special and padding tokens left out of both."""
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
        self.encoder.save_pretrained(out_dir, **kwargs)
        weight = self.score.weight.detach().float().cpu().contiguous()
        save_file({"score.weight": weight}, str(Path(out_dir) / HEAD_FILE))
