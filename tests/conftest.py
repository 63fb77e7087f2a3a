"""Shared fixtures: a small simulated world and tiny models, built offline once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API for the session: moto's standalone server in a thread on 127.0.0.1.

    One server serves every test; they keep apart by bucket name. (test_serving_log starts its
    own on a fixed port: it stops and restarts it to play an S3 outage.)
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_variables(s3_endpoint: str) -> dict[str, str]:
    """The environment that points boto3 and pushgen at the session's S3 server (moto's keys)."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PUSHGEN_S3_ENDPOINT": s3_endpoint,
    }


@pytest.fixture
def s3_env(s3_variables: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials and endpoint through the environment only, the way the pipeline gets them."""
    for name, value in s3_variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_variables["PUSHGEN_S3_ENDPOINT"]
