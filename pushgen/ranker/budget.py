"""Token budgets for ranker inputs: long texts are cut before the tokenizer sees them in full.

A request of K=16 candidates, each a megabyte long, must not cost a megabyte of tokenising per
candidate. `cut_to_token_budget` first cuts each text to a length in characters that surely holds
`max_tokens` tokens (a cheap slice), then tokenises that slice without special tokens, keeps the
first `max_tokens` tokens and decodes them back to text.

    texts = cut_to_token_budget(texts, tokenizer, max_tokens=32)
"""

from __future__ import annotations

from typing import Any

from pushgen.core.errors import ConfigError

# A WordPiece/BPE token of English covers well under this many characters; the pre-cut only has
# to keep at least max_tokens tokens, so a generous bound is safe and still bounds the work.
CHARS_PER_TOKEN_BOUND = 16


def char_precut(text: str, max_tokens: int) -> str:
    """`text` cut to the characters that can hold at most `max_tokens` tokens (a cheap slice)."""
    return text[: max(max_tokens, 1) * CHARS_PER_TOKEN_BOUND]


def cut_to_token_budget(texts: list[str], tokenizer: Any, max_tokens: int) -> list[str]:
    """Each text cut to at most `max_tokens` tokens of `tokenizer` (no special tokens counted):
    char pre-cut, tokenise, keep the first `max_tokens` tokens, decode. Texts already within the
    budget come back unchanged."""
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be at least 1, got {max_tokens}")
    cut = [char_precut(str(t), max_tokens) for t in texts]
    ids = tokenizer(cut, add_special_tokens=False)["input_ids"]
    out = []
    for original, short, tokens in zip(texts, cut, ids, strict=True):
        if len(tokens) <= max_tokens and short == original:
            out.append(original)
        else:
            out.append(tokenizer.decode(tokens[:max_tokens], skip_special_tokens=True).strip())
    return out
