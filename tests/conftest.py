"""Shared fixtures: a small simulated world and tiny models, built offline once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pushgen.cli.demo import DemoConfig
    from pushgen.data.simulator import World

# keep test runs single-threaded and offline: 2 shared cores, no model hub
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sim():
    """A small simulated world (120 videos, ~1,000 pushes, ~35 A/B tests)."""
    from pushgen.data.simulator import SimConfig, simulate

    return simulate(SimConfig(n_videos=120, seed=7))


@pytest.fixture(scope="session")
def sim_dir(sim, tmp_path_factory) -> Path:
    """`sim` written to disk as the four simulator files."""
    from pushgen.data.simulator import write_simulation

    out = tmp_path_factory.mktemp("sim")
    write_simulation(sim, out)
    return out


@pytest.fixture(scope="session")
def tiny_causal_lm_dir(tmp_path_factory) -> Path:
    """A tiny random Llama + BPE tokenizer saved as a HF model directory."""
    from pushgen.core.models import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A tiny random BERT (sequence classification, 1 label) with MiniLM's vocabulary."""
    from pushgen.core.models import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("tiny_encoder"))


@dataclass(frozen=True)
class TrainingRun:
    """The fast tier's one whole run of the training pipeline, laid out as `pushgen demo` does."""

    out: Path  # the demo's directory: train_data/, pipeline/ (kfp's root, the store under it)
    demo: DemoConfig  # the demo settings its data was made with
    params: dict  # the pipeline's parameters (a rerun with them is served from kfp's cache)
    artifacts: dict[str, str]  # {"<task>/<output>": path}, as `run_local` returns it
    release: Path  # the release the run registered
    world: World  # the simulated world's truth (feedback for served pushes)
    new_ids: list[str]  # videos held out of training: the demo serves them


@pytest.fixture(scope="session")
def tiny_demo(tiny_causal_lm_dir, tiny_encoder_dir):
    """`DemoConfig` at test size (40 videos, 3 of them new) on the tiny models: `tiny_demo(out,
    loop=...)`."""
    from pushgen.cli.demo import DemoConfig

    def make(out: Path, loop: bool) -> DemoConfig:
        return DemoConfig(
            out=str(out),
            n_videos=40,
            n_new_videos=3,
            sft_steps=2,
            base_model=str(tiny_causal_lm_dir),
            backbone=str(tiny_encoder_dir),
            loop=loop,
        )

    return make


@pytest.fixture(scope="session")
def training_run(tmp_path_factory, tiny_demo) -> TrainingRun:
    """The training pipeline run once by kfp's local runner, on tiny models, for the fast tier.

    Its data is the demo's (40 videos, the last 3 held out as new): test_pipeline_local checks the
    steps and the release, test_demo serves, monitors and ships from the same run. `pushgen demo`
    whole, with a pipeline run of its own, is in the slow tier (test_demo).
    """
    from pipelines.training import run_local
    from pushgen.cli.demo import make_data
    from pushgen.core.store import ArtifactStore

    out = tmp_path_factory.mktemp("demo")
    demo = tiny_demo(out, loop=False)
    train, world, new_ids = make_data(demo, out)
    params = {
        "data_location": str(train),
        "base_model": demo.base_model,
        "backbone": demo.backbone,
        "sft_max_steps": demo.sft_steps,
        "sft_batch_size": 4,
        "reward_epochs": 1.0,
        "reward_use_caption": True,  # the ranker reads its captions through Feast too
        "version": "t1",
    }
    artifacts = run_local(params, out / "pipeline")
    release = ArtifactStore.from_uri(out / "pipeline" / "store").resolve("latest")
    return TrainingRun(out, demo, params, artifacts, Path(release["uri"]), world, new_ids)


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
