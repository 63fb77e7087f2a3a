"""Cut texts to a token budget before they are paired: bounds what a legal request costs the ranker.

A ranker request may carry K=16 texts of 500 characters and a 2,000-character caption; tokenising
all K(K-1) pairs of them with truncation costs about 20x the forward pass. Each text is cut once,
here, to the budget the model reads anyway (`max_length`), so the pair tokeniser only ever sees
short strings:

    texts = cut_to_token_budget(texts, tokenizer, max_tokens=settings.max_length)
"""

from __future__ import annotations

from typing import Any

# no tokeniser this project uses makes a token of more than this many characters on average
# (WordPiece, byte-level BPE); the cheap pre-cut keeps the exact cut's tokenising bounded too
MAX_CHARS_PER_TOKEN = 16


def cut_to_token_budget(texts: list[str], tokenizer: Any, max_tokens: int) -> list[str]:
    """Each text cut to its first `max_tokens` tokens (no special tokens), decoded back to text.

    Texts already within the budget come back unchanged. A character pre-cut
    (`max_tokens * MAX_CHARS_PER_TOKEN`) runs first, so a long text costs no more to tokenise
    than a text of that many characters.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    limit = max_tokens * MAX_CHARS_PER_TOKEN
    pre = [t[:limit] for t in texts]
    ids = tokenizer(pre, add_special_tokens=False)["input_ids"]
    out = []
    for text, original, tokens in zip(pre, texts, ids, strict=True):
        if len(tokens) <= max_tokens and text == original:
            out.append(original)
        else:
            out.append(tokenizer.decode(tokens[:max_tokens], skip_special_tokens=True))
    return out
