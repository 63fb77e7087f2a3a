"""The reward KFP component: compiles, and runs under kfp's local runner on simulated A/B tests."""

import json
import warnings

import pandas as pd
from kfp import compiler, dsl, local
from kfp.dsl import Dataset

from components.reward import reward


def test_component_compiles_with_its_interface(tmp_path):
    path = tmp_path / "reward.yaml"
    compiler.Compiler().compile(reward, str(path))
    spec = path.read_text()
    for name in ("ab_tests", "ranker", "rejected", "metrics", "backbone", "max_p_value"):
        assert name in spec


def test_component_trains_a_ranker_locally(sim_dir, tiny_encoder_dir, tmp_path):
    @dsl.pipeline(name="reward-only")
    def reward_only(ab_uri: str, backbone: str):
        ab = dsl.importer(artifact_uri=ab_uri, artifact_class=Dataset, reimport=False)
        reward(ab_tests=ab.output, backbone=backbone, epochs=1.0, batch_size=16, max_p_value=1.0)

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        reward_only(ab_uri=str(sim_dir / "ab_tests.parquet"), backbone=str(tiny_encoder_dir))
    ranker_dir = next(tmp_path.rglob("ranker_config.json")).parent
    assert (ranker_dir / "model.safetensors").exists() and (ranker_dir / "split.json").exists()
    executor = json.loads((ranker_dir.parent / "executor_output.json").read_text())
    metrics = executor["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert metrics["train_pairs"] > 0 and 0 <= metrics["val_accuracy"] <= 1
    rejected = pd.read_parquet(ranker_dir.parent / "rejected")
    assert "reject_reason" in rejected.columns
