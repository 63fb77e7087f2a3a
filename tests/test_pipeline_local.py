"""The whole training pipeline, run by kfp's local runner on tiny models and the demo's 40 videos.

The run is the session's `training_run` (tests/conftest.py): the fast tier's only whole pipeline
run, which test_demo serves and monitors too.
"""

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.training import run_local
from pushgen.core.store import ArtifactStore, sha256_file


@pytest.fixture(scope="module")
def local_run(training_run):
    return training_run.out / "pipeline", training_run.params, training_run.artifacts


def test_every_step_produces_its_artifacts(local_run):
    root, _, artifacts = local_run
    for name in (
        "simulate-or-ingest/videos",
        "simulate-or-ingest/ab_tests",
        "simulate-or-ingest/rejected",
        "caption/captions",
        "clean/cleaned",
        "label/labelled",
        "materialize/features",
        "materialize/training_captions",
        "materialize/ab_captions",
        "gate/decision",
        "sft/generator",
        "reward/ranker",
        "evaluate/summary",
        "evaluate/report",
        "evaluate/evaluation",
        "register/manifest",
        "report/html",
        "report/markdown",
    ):
        assert name in artifacts, sorted(artifacts)
    # the reward step trained with the captions the materialize step read back through Feast
    ab_captions = pd.read_parquet(artifacts["materialize/ab_captions"])
    ab_tests = pd.read_parquet(artifacts["simulate-or-ingest/ab_tests"])
    assert set(ab_captions["video_id"]) == set(ab_tests["video_id"].astype(str))
    ranker_cfg = json.loads((Path(artifacts["reward/ranker"]) / "ranker_config.json").read_text())
    assert ranker_cfg["use_caption"] is True
    summary = open(artifacts["evaluate/summary"]).read()
    assert "## generator" in summary and "## ranker" in summary
    assert (root / "last_run.json").exists()
    # the run's HTML output: the report, plots embedded; the simulated data allows a replay
    page = open(artifacts["report/html"]).read()
    assert "data:image/png;base64," in page and "Ranker" in page


def test_release_is_registered_and_loads_back(local_run, tmp_path):
    root, _, artifacts = local_run
    store = ArtifactStore.from_uri(root / "store")
    manifest = store.resolve("latest")
    assert manifest["version"] == "t1"
    assert set(manifest["artifacts"]) == {"generator", "ranker", "features", "reports"}
    assert len(manifest["source_data_hash"]) == 64
    assert any(k.startswith("ranker.") for k in manifest["metrics"])
    out = store.fetch("latest", tmp_path / "release")
    for rel, info in manifest["artifacts"]["ranker"]["files"].items():
        assert sha256_file(out / "ranker" / rel) == info["sha256"]

    from pushgen.ranker.select import PairwiseRanker

    ranker = PairwiseRanker.from_pretrained(out / "ranker")
    assert len(ranker.rank(["Watch this now", "Can you guess what happens?"]).scores) == 2
    assert (out / "features" / "captions.parquet").exists()
    assert (out / "generator" / "adapter_config.json").exists()


@pytest.mark.slow  # a second whole run; test_pipeline_caching keeps caching in the fast tier
def test_rerun_is_served_from_the_cache(local_run):
    root, params, first = local_run
    again = run_local(params, root)
    # Every step is cached: the rerun points at the first run's outputs and retrains nothing.
    for name in ("caption/captions", "label/labelled", "sft/generator", "reward/ranker"):
        assert again[name] == first[name]


def test_bad_data_location_fails_without_registering(tmp_path):
    with pytest.raises(RuntimeError, match="fingerprint|simulate-or-ingest"):
        run_local({"data_location": str(tmp_path / "absent")}, tmp_path / "p")
    assert not (tmp_path / "p" / "store").exists()
