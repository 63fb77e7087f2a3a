"""Caching hygiene: ingest is keyed by the data's content hash; fingerprint and register never
cached; new data at the same URI is read again by kfp's local runner (real cache)."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kfp import dsl

from pipelines.training import (
    ClusterConfig,
    collect_artifacts,
    compile_pipeline,
    ingest_step,
    run_in_process,
)
from pushgen.core.errors import DataContractError
from pushgen.data.ingest import content_hash
from pushgen.data.simulator import SimConfig, simulate, write_simulation


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    out = compile_pipeline(tmp_path_factory.mktemp("c") / "p.yaml")
    return next(yaml.safe_load_all(out.read_text()))  # the second document: platform spec


def test_compiled_caching_flags_and_content_hash_key(spec):
    tasks = spec["root"]["dag"]["tasks"]
    for name in ("fingerprint", "plan", "gate", "register", "publish-features"):
        assert tasks[name]["cachingOptions"] == {}, name  # kfp writes no enableCache: off
    for name in ("simulate-or-ingest", "caption", "sft", "reward"):
        assert tasks[name]["cachingOptions"]["enableCache"] is True, name
    # the ingest step's cache key holds the fingerprint of the data, not just its URI
    key = tasks["simulate-or-ingest"]["inputs"]["parameters"]["content_hash"]
    assert key["taskOutputParameter"]["producerTask"] == "fingerprint"


def _write(dir_, n_videos, seed):
    if dir_.exists():
        shutil.rmtree(dir_)
    write_simulation(simulate(SimConfig(n_videos=n_videos, seed=seed)), dir_)


def test_content_hash_follows_the_bytes(tmp_path):
    data = tmp_path / "data"
    _write(data, 12, 1)
    first = content_hash(str(data))
    assert content_hash(str(data)) == first
    _write(data, 14, 2)
    assert content_hash(str(data)) != first
    assert content_hash("", 30, 0) != content_hash("", 30, 1)
    with pytest.raises(DataContractError, match="does not exist"):
        content_hash(str(tmp_path / "absent"))


@dsl.pipeline(name="ingest-only")
def _ingest_only(data_location: str):
    data, fp = ingest_step(ClusterConfig(storage_retries=0), data_location, 30, 0)
    for task in (data, fp):
        task.set_container_image("python:3.11")  # not pulled: the subprocess runner runs here


def _run(root, data_location) -> dict:
    run_in_process(_ingest_only, {"data_location": str(data_location)}, root)
    return collect_artifacts(root, prefix="ingest-only")


def test_new_data_at_the_same_uri_is_read_again(tmp_path):
    data, root = tmp_path / "lake", tmp_path / "root"
    _write(data, 12, 1)
    first = _run(root, data)
    again = _run(root, data)  # same bytes: served from the cache, same output files
    assert again["simulate-or-ingest/videos"] == first["simulate-or-ingest/videos"]
    _write(data, 17, 2)  # new data, same URI
    fresh = _run(root, data)
    assert fresh["simulate-or-ingest/videos"] != first["simulate-or-ingest/videos"]
    assert len(pd.read_parquet(first["simulate-or-ingest/videos"])) == 12
    assert len(pd.read_parquet(fresh["simulate-or-ingest/videos"])) == 17


def test_without_a_data_location_the_step_simulates_a_world(tmp_path):
    # the fast tier's whole pipeline run ingests the demo's tables (conftest.py training_run)
    out = _run(tmp_path / "root", "")
    assert len(pd.read_parquet(out["simulate-or-ingest/videos"])) == 30  # n_videos
    assert len(pd.read_parquet(out["simulate-or-ingest/ab_tests"])) > 0
    for name in ("pushes", "world", "rejected"):
        assert Path(out[f"simulate-or-ingest/{name}"]).is_file(), name
    metrics = json.loads(Path(out["simulate-or-ingest/metrics"]).read_text())
    assert metrics["simulated"] == 1 and metrics["videos_rows"] == 30


@pytest.mark.slow
def test_whole_pipeline_twice_over_changed_data(tmp_path, tiny_causal_lm_dir, tiny_encoder_dir):
    """Full training pipeline (tiny models) twice, new tables at the same URI in between: the
    second release is trained on the new data and registered as a new version."""
    from pipelines.training import run_local
    from pushgen.core.store import ArtifactStore

    data, root = tmp_path / "lake", tmp_path / "root"
    params = {
        "data_location": str(data),
        "base_model": str(tiny_causal_lm_dir),
        "backbone": str(tiny_encoder_dir),
        "sft_max_steps": 1,
        "sft_batch_size": 4,
        "reward_epochs": 1.0,
    }
    _write(data, 20, 1)
    first = run_local({**params, "version": "v1"}, root)
    _write(data, 26, 2)
    second = run_local({**params, "version": "v2"}, root)
    assert len(pd.read_parquet(second["simulate-or-ingest/videos"])) == 26
    for step in ("caption/captions", "sft/generator", "reward/ranker"):
        assert second[step] != first[step], step  # retrained, not served from the cache
    store = ArtifactStore.from_uri(root / "store")
    assert store.resolve("v1")["source_data_hash"] != store.resolve("v2")["source_data_hash"]
    # tiny random models: the gate may promote or reject v2; either way it is registered
    v2 = store.resolve("v2")
    assert store.resolve("latest")["version"] == ("v2" if v2["status"] == "promoted" else "v1")
