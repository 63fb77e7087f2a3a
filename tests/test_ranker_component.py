"""The reward KFP component: compiles, and runs under kfp's local runner on simulated A/B tests."""

import inspect
import json

import pandas as pd
import pytest
import yaml
from kfp import compiler, dsl
from kfp.dsl import Dataset

from components import PUSHGEN_IMAGE
from components.reward import reward
from pipelines.training import run_in_process
from pushgen.core.errors import DataContractError
from pushgen.ranker.config import RankerTrainConfig
from pushgen.ranker.pairs import PairConfig
from pushgen.ranker.recipe import AbTestsSource, RankerRecipeConfig, train_from_ab_tests

# How kfp writes a Python annotation as a parameter type in the compiled spec.
KFP_TYPES = {str: "STRING", int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", bool: "BOOLEAN"}


def test_component_compiles_with_its_interface(tmp_path):
    path = tmp_path / "reward.yaml"
    compiler.Compiler().compile(reward, str(path))
    spec = yaml.safe_load(path.read_text())
    component = spec["components"]["comp-reward"]
    inputs, outputs = component["inputDefinitions"], component["outputDefinitions"]

    def schema(artifacts: dict) -> dict:
        return {name: a["artifactType"]["schemaTitle"] for name, a in artifacts.items()}

    assert schema(inputs["artifacts"]) == {
        "ab_tests": "system.Dataset",
        "captions": "system.Dataset",
    }
    assert inputs["artifacts"]["captions"].get("isOptional") is True  # only with use_caption
    assert "isOptional" not in inputs["artifacts"]["ab_tests"]
    assert schema(outputs["artifacts"]) == {
        "ranker": "system.Model",
        "rejected": "system.Dataset",
        "metrics": "system.Metrics",
    }
    # every parameter of the function, with its type and default, and its Args: line for the UI
    signature = inspect.signature(reward.python_func).parameters
    expected = {name: p for name, p in signature.items() if p.annotation in KFP_TYPES}
    params = inputs["parameters"]
    assert set(params) == set(expected) >= {"backbone", "max_p_value", "epochs", "use_caption"}
    for name, p in expected.items():
        assert params[name]["parameterType"] == KFP_TYPES[p.annotation], name
        assert params[name]["defaultValue"] == p.default and params[name]["isOptional"], name
        assert params[name]["description"], name
    assert params["max_p_value"]["parameterType"] == "NUMBER_DOUBLE"
    # the executor runs this function from the project image through kfp's executor, no pip
    executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    assert executor["image"] == PUSHGEN_IMAGE
    assert executor["args"] == ["--executor_input", "{{$}}", "--function_to_execute", "reward"]
    command = "\n".join(executor["command"])
    assert "python3 -m kfp.dsl.executor_main" in command and "\ndef reward(" in command
    assert "pip install" not in command  # install_kfp_package=False: it runs offline


def test_component_trains_a_ranker_locally(sim_dir, tiny_encoder_dir, tmp_path):
    @dsl.pipeline(name="reward-only")
    def reward_only(ab_uri: str, backbone: str):
        ab = dsl.importer(artifact_uri=ab_uri, artifact_class=Dataset, reimport=False)
        reward(ab_tests=ab.output, backbone=backbone, epochs=1.0, batch_size=16, max_p_value=1.0)

    params = {"ab_uri": str(sim_dir / "ab_tests.parquet"), "backbone": str(tiny_encoder_dir)}
    run_in_process(reward_only, params, tmp_path)
    ranker_dir = next(tmp_path.rglob("ranker_config.json")).parent
    assert (ranker_dir / "model.safetensors").exists() and (ranker_dir / "split.json").exists()
    executor = json.loads((ranker_dir.parent / "executor_output.json").read_text())
    metrics = executor["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert metrics["train_pairs"] > 0 and 0 <= metrics["val_accuracy"] <= 1
    # Metrics also lie on disk as a file: kfp's local cache only reuses steps whose files exist.
    metrics_file = next(p for p in tmp_path.rglob("metrics") if p.is_file())
    assert json.loads(metrics_file.read_text())["train_pairs"] == metrics["train_pairs"]
    # every arm and pair the run set aside is in the rejected output, with its reason
    rejected = pd.read_parquet(ranker_dir.parent / "rejected")
    stats = json.loads((ranker_dir / "train_metrics.json").read_text())["pairs"]
    aside = sum(stats[side]["set_aside"] + stats[side]["arms_rejected"] for side in stats)
    assert aside > 0 and len(rejected) == aside and rejected["reject_reason"].notna().all()


def _coin_flip_tests(n_tests: int = 24) -> pd.DataFrame:
    """Two arms per test with 60 exposures each: no pair can reach p <= 0.1."""
    rows = []
    for t in range(n_tests):
        for i, (text, clicks) in enumerate([(f"story {t} told plainly", 3), (f"story {t}?", 4)]):
            rows.append(
                {
                    "test_id": f"t{t}",
                    "video_id": f"v{t}",
                    "push_id": f"t{t}-{i}",
                    "text": text,
                    "pv": 60,
                    "clicks": clicks,
                }
            )
    return pd.DataFrame(rows)


def test_tiny_data_without_significant_pairs_falls_back_to_weighted_pairs(
    tiny_encoder_dir, tmp_path
):
    source = AbTestsSource(_coin_flip_tests(), "ab_tests", (), ("text", "video_id"))
    cfg = RankerRecipeConfig(
        pairs=PairConfig(max_p_value=0.1),
        train=RankerTrainConfig(
            backbone=str(tiny_encoder_dir), epochs=1, batch_size=8, max_length=16, device="cpu"
        ),
    )
    metrics = train_from_ab_tests(source, tmp_path, cfg)
    assert "p <= 0.1" in metrics["pairs_fallback"]
    assert metrics["train_pairs"] == metrics["pairs"]["train"]["pairs"] > 0
    assert metrics["val"]["pairs"] > 0  # validation scores all held-out pairs
    # all pairs were kept: none was set aside for its p-value (they carry 1 - p weights instead)
    assert "p_value" not in str(metrics["pairs"]["train"])


def test_no_fallback_when_switched_off(tiny_encoder_dir, tmp_path):
    source = AbTestsSource(_coin_flip_tests(), "ab_tests", (), ("text", "video_id"))
    cfg = RankerRecipeConfig(
        pairs=PairConfig(max_p_value=0.1),
        train=RankerTrainConfig(backbone=str(tiny_encoder_dir), device="cpu"),
        fallback_all_pairs=False,
    )
    with pytest.raises(DataContractError, match="no pairs"):
        train_from_ab_tests(source, tmp_path, cfg)
