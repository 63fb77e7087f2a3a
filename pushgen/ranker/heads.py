"""The ranker's heads by name, and the files each one saves beside the encoder. The lowest module
of `pushgen.ranker`: every other ranker module may import it, and it imports nothing of theirs."""

from __future__ import annotations

from pushgen.core.errors import ConfigError

HEADS = ("cls", "segment_diff", "listwise")  # listwise: one pass over all K (listwise.py)
POSITION_MODES = ("reset", "sequential")  # listwise position ids: per candidate or in order
HEAD_FILE = "pair_head.safetensors"  # segment_diff's scoring layer, next to the encoder


def check_head(head: str) -> None:
    """Reject a head outside `HEADS` with a clear message."""
    if head not in HEADS:
        raise ConfigError(f"head must be one of {HEADS}, got {head!r}")
