"""Generator training data from a simulated (or any) push history: caption, clean, label, join.

The data steps belong to other modules (`pushgen.data.caption`, `pushgen.data.clean`, `pushgen.data.label`);
this is the short recipe that chains them so `pushgen train-generator --sim DIR` and the
evaluation can start from raw simulator tables:

    table, rejected = sft_table_from_tables(videos, pushes)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pushgen.data.contracts import read_table
from pushgen.generator.sft import build_sft_table


def captions_for(videos: pd.DataFrame) -> pd.DataFrame:
    """Offline text captions (title + description + ASR) for every valid video."""
    from pushgen.data.caption import TextCaptioner

    return TextCaptioner().caption_videos(videos)


def sft_table_from_tables(
    videos: pd.DataFrame,
    pushes: pd.DataFrame,
    labeller=None,
    captions: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(SFT table: video_id, caption, category, text, confidence, ...; every removed row + reason)."""
    from pushgen.data.clean import clean_pushes
    from pushgen.data.label import EmbeddingLabeller, label_with_rejects

    captions = captions if captions is not None else captions_for(videos)
    cleaned = clean_pushes(pushes, videos=videos, captions=captions)
    labelled, unlabelled = label_with_rejects(cleaned.cleaned, labeller or EmbeddingLabeller())
    table, uncaptioned = build_sft_table(labelled, captions)
    rejected = pd.concat([cleaned.removed, unlabelled, uncaptioned], ignore_index=True)
    return table, rejected


def load_simulation_tables(sim_dir: str | Path) -> dict[str, pd.DataFrame]:
    """videos and pushes parquet from a `pushgen simulate` output dir (clear error if absent)."""
    sim_dir = Path(sim_dir)
    return {
        "videos": read_table(sim_dir / "videos.parquet", "videos"),
        "pushes": read_table(sim_dir / "pushes.parquet", "pushes"),
    }
