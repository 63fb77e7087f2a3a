"""The confidence-weighting ablation: retrain the run's generator with another SFT weighting.

Same labelled pushes, captions, base model, steps and seed as the run's own generator; only the
per-sample loss weight differs: `literal` (the paper's formula as written), `bounded` (the
default) or `none` (every sample weighs 1). The result is a generator directory the replay takes
as an extra arm (`pushgen replay --train-weighting literal,none`).

    path = train_weighting_variant(run, "none", "runs/replay/ablation/none", max_steps=40)
"""

from __future__ import annotations

import json
from pathlib import Path

from pushgen.core.errors import ConfigError
from pushgen.data.clean import WEIGHTINGS, confidence_weight
from pushgen.data.contracts import read_table
from pushgen.evidence.replay_data import RunArtifacts


def weighted_table(run: RunArtifacts, weighting: str):
    """The run's SFT table (labelled pushes joined with captions) with `confidence` recomputed."""
    from pushgen.generator.sft import build_sft_table

    if weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    labelled = read_table(run["label/labelled"])
    labelled = labelled.assign(
        confidence=confidence_weight(labelled["ctr"], labelled["pv"], weighting)
    )
    table, _ = build_sft_table(labelled, read_table(run["caption/captions"], "captions"))
    return table


def train_weighting_variant(
    run: RunArtifacts, weighting: str, out_dir: str | Path, max_steps: int | None = None
) -> Path:
    """Train the run's generator recipe with `weighting`; returns the generator directory.

    An existing directory with a finished generator is reused (the ablation is resumable).
    """
    from pushgen.generator.config import GeneratorTrainConfig
    from pushgen.generator.generate import GENERATOR_MANIFEST
    from pushgen.generator.sft import train_generator

    out = Path(out_dir)
    if (out / GENERATOR_MANIFEST).is_file() and (out / "metrics.json").is_file():
        return out
    manifest = json.loads((run["sft/generator"] / GENERATOR_MANIFEST).read_text())
    config = dict(manifest["config"])
    if max_steps:
        config["max_steps"] = max_steps
    cfg = GeneratorTrainConfig(**config)
    train_generator(weighted_table(run, weighting), out, cfg)
    return out
