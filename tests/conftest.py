"""Shared fixtures: a small simulated world and tiny models, built offline once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# keep test runs single-threaded and offline: 2 shared cores, no model hub
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sim():
    """A small simulated world (120 videos, ~1,000 pushes, ~35 A/B tests)."""
    from pushgen.simulator import SimConfig, simulate

    return simulate(SimConfig(n_videos=120, seed=7))


@pytest.fixture(scope="session")
def sim_dir(sim, tmp_path_factory) -> Path:
    """`sim` written to disk as the four simulator files."""
    from pushgen.simulator import write_simulation

    out = tmp_path_factory.mktemp("sim")
    write_simulation(sim, out)
    return out


@pytest.fixture(scope="session")
def tiny_causal_lm_dir(tmp_path_factory) -> Path:
    """A tiny random Llama + BPE tokenizer saved as a HF model directory."""
    from pushgen.models import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A tiny random BERT (sequence classification, 1 label) with MiniLM's vocabulary."""
    from pushgen.models import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("tiny_encoder"))
