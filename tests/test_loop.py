"""The production loop: a monitoring alert runs the training pipeline for the blamed part only,
through the quality gate, into the store (kfp's local runner, tiny models, real monitor)."""

import json

import pandas as pd
import pytest
import yaml

from pipelines.loop_pass import monitor_config, serving_windows
from pipelines.monitoring import compile_pipeline
from pushgen.core.store import ArtifactStore, publish_release
from pushgen.data.simulator import SimConfig, simulate, write_simulation
from pushgen.loop.carry import retrain_request


def window_params(root, prefix: str, log, feedback) -> dict:
    """The monitoring pipeline's inputs for one serving window: the window, its feedback and the
    history written under `root`, the lake and the store."""
    paths = {}
    for name, df in (("log", log), ("fb", feedback), ("ref", HISTORY)):
        paths[name] = str(root / f"{prefix}{name}.parquet")
        df.to_parquet(paths[name])
    return {
        "serving_log_uri": paths["log"],
        "feedback_uri": paths["fb"],
        "reference_uri": paths["ref"],
        "config_json": monitor_config(120),
        "training_data_uri": str(root / "lake"),
        "store_uri": str(root / "store"),
    }


def test_compiled_monitoring_pipeline_runs_training_under_its_alert(tmp_path):
    # first document: the pipeline; the second, the GPU steps' tolerations (platform spec)
    spec = next(yaml.safe_load_all(compile_pipeline(tmp_path / "m.yaml").read_text()))
    tasks = spec["root"]["dag"]["tasks"]
    cond = tasks["condition-1"]
    assert cond["taskInfo"]["name"] == "retrain-on-alert"
    trigger = cond["triggerPolicy"]["condition"]
    assert "pipelinechannel--retrain-due-Output" in trigger and trigger.endswith("true")
    due = tasks["retrain-due"]["inputs"]["artifacts"]["summary"]["taskOutputArtifact"]
    assert due == {"outputArtifactKey": "summary", "producerTask": "monitor"}
    inner = spec["components"][cond["componentRef"]["name"]]["dag"]["tasks"]
    assert set(inner) == {"ingest-feedback", "pushgen-training"}
    assert inner["pushgen-training"]["componentRef"]["name"] == "comp-pushgen-training"
    args = inner["pushgen-training"]["inputs"]["parameters"]
    assert (
        args["retrain_part"]["componentInputParameter"] == "pipelinechannel--retrain-request-part"
    )
    assert args["reason"]["componentInputParameter"] == "pipelinechannel--retrain-request-reason"
    # it trains on the window's fresh data: past tables + the served pushes' new A/B tests
    fresh = args["data_location"]["taskOutputParameter"]
    assert fresh == {"outputParameterKey": "Output", "producerTask": "ingest-feedback"}
    past = inner["ingest-feedback"]["inputs"]["parameters"]["past_data_location"]
    assert past["componentInputParameter"] == "pipelinechannel--training_data_uri"
    # the nested training DAG carries its gate and register
    training = spec["components"]["comp-pushgen-training"]["dag"]["tasks"]
    assert {"gate", "register", "plan"} <= set(training)
    for step in ("monitor", "retrain-due", "retrain-request"):  # a new window, same URI
        assert tasks[step]["cachingOptions"] == {}
    assert inner["ingest-feedback"]["cachingOptions"] == {}


@pytest.mark.parametrize(
    ("summary", "part", "says"),
    [
        ({"retrain_targets": ["ranker"], "reward_drift": True}, "ranker", "reward_drift"),
        ({"retrain_targets": ["generator"], "style_collapse": True}, "generator", "style"),
        ({"retrain_targets": ["generator", "ranker"]}, "both", "retrain both"),
        ({"retrain_targets": [], "retrain": True}, "both", "retrain"),
    ],
)
def test_retrain_request_names_the_part_and_why(summary, part, says):
    made = retrain_request(summary)
    assert made["part"] == part and says in made["reason"]


# historical pushes carry no candidates: the monitor judges the log's latest window against its
# earlier ones
HISTORY = pd.DataFrame({"category": ["Humor"], "text": ["an old push"], "ctr": [0.05]})


@pytest.fixture(scope="module")
def production(tiny_causal_lm_dir, tiny_encoder_dir, tmp_path_factory):
    """A store whose production version v1 holds tiny random models."""
    import shutil

    from pushgen.ranker.inputs import RankerSettings

    root = tmp_path_factory.mktemp("loop")
    ranker = root / "ranker0"
    shutil.copytree(tiny_encoder_dir, ranker)
    RankerSettings("pairwise", 32, False, "tiny").save(ranker)
    (root / "eval.json").write_text("{}")
    data = root / "lake"
    lake = simulate(SimConfig(n_videos=30, seed=3))
    write_simulation(lake, data)
    publish_release(
        str(root / "store"),
        "v1",
        str(tiny_causal_lm_dir),
        str(ranker),
        {"videos": str(data / "videos.parquet")},
        {"evaluation.json": str(root / "eval.json")},
        {"generator.val_loss": 2.0, "ranker.val_accuracy": 0.5},
        "seed-data",
    )
    return root, lake


@pytest.mark.slow
def test_alert_retrains_only_the_blamed_part_through_the_gate(
    production, tiny_causal_lm_dir, tiny_encoder_dir
):
    from pipelines.monitoring import run_local

    root, lake = production
    # healthy windows, then one whose ranker is random: the ranker is blamed
    log, feedback = serving_windows(lake.world, 120, seed=9, fault="random_ranker")
    artifacts = run_local(
        {
            **window_params(root, "", log, feedback),
            "base_model": str(tiny_causal_lm_dir),
            "backbone": str(tiny_encoder_dir),
            "n_videos": 30,
            "sft_max_steps": 1,
            "reward_epochs": 1.0,
            "reward_batch_size": 16,
            "gate_videos": 4,
        },
        root / "runs",
    )
    summary = json.loads(open(artifacts["monitor/summary"]).read())
    assert summary["reward_drift"] and summary["retrain"]
    store = ArtifactStore.from_uri(root / "store")
    versions = store.versions()
    assert len(versions) == 2, versions  # v1 and the retrained candidate
    new = store.resolve(next(v for v in versions if v != "v1"))
    old = store.resolve("v1")
    gate = new["gate"]
    assert gate["parts"] == ["ranker"] and "reward_drift" in gate["run_reason"]
    assert gate["production_version"] == "v1"
    assert {c["part"] for c in gate["checks"]} == {"ranker"}
    # the generator was carried over byte for byte, the ranker retrained
    assert new["artifacts"]["generator"]["files"] == old["artifacts"]["generator"]["files"]
    assert new["artifacts"]["ranker"]["files"] != old["artifacts"]["ranker"]["files"]
    # the retrained ranker trained on the window's served pushes as new A/B tests
    fresh = json.loads(open(artifacts["ingest-feedback/metrics"]).read())
    assert fresh and artifacts["ingest-feedback/data"]
    split = json.loads(open(artifacts["reward/ranker"] + "/split.json").read())
    used = set(split["train_test_ids"]) | set(split["val_test_ids"])
    assert any(t.startswith("srv-") for t in used)
    latest = store.resolve("latest")["version"]
    assert new["status"] in ("promoted", "rejected")
    assert latest == (new["version"] if new["status"] == "promoted" else "v1")
    # serving started on LATEST answers with the gate's choice, never a rejected candidate
    import httpx

    from serving.stack import LocalStack, StackConfig

    served = store.resolve("latest")
    cfg = StackConfig(
        log_dir=root / "serving",
        env={"OMP_NUM_THREADS": "1"},
        max_new_tokens=8,
        explore_epsilon=0.0,
    )
    with LocalStack(served["uri"], config=cfg) as stack:
        resp = httpx.post(
            f"{stack.url}/v1/models/pushgen:predict",
            json={"instances": [{"caption": "A cat rides a skateboard"}]},
            timeout=120,
        )
    assert resp.status_code == 200, resp.text
    versions_served = resp.json()["predictions"][0]["model_version"].split("+")
    assert all(v.startswith(f"{latest}-") for v in versions_served), versions_served


def test_cli_loop_bad_input_is_one_line(tmp_path, capsys):
    from pushgen.cli.main import main as cli

    base = ["pipeline", "loop", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "o")]
    for argv, says in (
        ([*base, "--data", str(tmp_path), "--requests", "5"], "at least 30"),
        ([*base, "--data", str(tmp_path)], "world.json"),
    ):
        assert cli(argv) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1


def test_healthy_window_runs_no_training(production, tiny_causal_lm_dir, tiny_encoder_dir):
    """The small local loop (fast tier): a healthy window raises no alert, so the branch that
    retrains is skipped and production stays as it is."""
    from pipelines.monitoring import run_local

    root, lake = production
    before = ArtifactStore.from_uri(root / "store").versions()
    log, feedback = serving_windows(lake.world, 120, seed=1, fault="healthy")
    artifacts = run_local(
        {
            **window_params(root, "healthy_", log, feedback),
            "base_model": str(tiny_causal_lm_dir),  # never used unless it (wrongly) retrains
            "backbone": str(tiny_encoder_dir),
            "sft_max_steps": 1,
        },
        root / "healthy_runs",
    )
    summary = json.loads(open(artifacts["monitor/summary"]).read())
    assert not summary["retrain"]
    assert not any(k.startswith(("ingest-feedback/", "reward/")) for k in artifacts)
    assert ArtifactStore.from_uri(root / "store").versions() == before
