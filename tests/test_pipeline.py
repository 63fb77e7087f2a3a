"""The training pipeline: compiles to a spec kfp loads back, and the CLI around it (offline)."""

import json
import socket

import pytest
import yaml
from kfp import components as kfp_components

from pipelines.submit import build_submit_request
from pipelines.training import ClusterConfig, compile_pipeline
from pushgen.cli.commands.pipeline import parse_params
from pushgen.cli.main import main as cli
from pushgen.core.errors import ConfigError

TASKS = {
    "fingerprint",
    "simulate-or-ingest",
    "plan",
    "gate",
    "caption",
    "clean",
    "label",
    "materialize",
    "publish-features",
    "sft",
    "reward",
    "evaluate",
    "register",
    "report",
}
PARAMS = {
    "data_location",
    "n_videos",
    "seed",
    "base_model",
    "backbone",
    "categories",
    "captioner",
    "sft_max_steps",
    "sft_batch_size",
    "reward_epochs",
    "reward_batch_size",
    "reward_use_caption",
    "store_uri",
    "version",
    "retrain_part",
    "reason",
    "gate_videos",
    "feature_repo",
    "image",
    "report_videos",
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled") / "pipeline.yaml"
    cfg = ClusterConfig(s3_endpoint="http://minio.kubeflow:9000", sft_memory="24G")
    compile_pipeline(out, cfg, image="registry.example.com/pushgen:1.2")
    return out


def test_compiled_spec_loads_back_with_tasks_and_parameters(compiled):
    loaded = kfp_components.load_component_from_file(str(compiled))  # kfp's own loader
    assert loaded.name == "pushgen-training"
    assert set(loaded.component_spec.inputs) == PARAMS
    assert loaded.component_spec.inputs["image"].default == "registry.example.com/pushgen:1.2"
    spec = next(yaml.safe_load_all(compiled.read_text()))  # 2nd: platform
    assert set(spec["root"]["dag"]["tasks"]) == TASKS


def test_resources_retries_caching_and_image(compiled):
    spec = next(yaml.safe_load_all(compiled.read_text()))  # 2nd: platform
    tasks = spec["root"]["dag"]["tasks"]
    executors = spec["deploymentSpec"]["executors"]

    def container(task: str) -> dict:
        return executors[spec["components"][tasks[task]["componentRef"]["name"]]["executorLabel"]][
            "container"
        ]

    for step, memory in (("sft", 24), ("reward", 16)):
        res = container(step)["resources"]
        assert res["accelerator"]["resourceType"] == "nvidia.com/gpu"
        assert res["accelerator"]["resourceCount"] == "1"
        assert res["memoryRequest"] == memory
    for step in TASKS - {"sft", "reward"}:
        res = container(step)["resources"]
        assert "accelerator" not in res and res["cpuRequest"] == 1.0
    for step in TASKS - {"fingerprint", "plan", "gate", "register", "publish-features"}:
        assert tasks[step]["cachingOptions"]["enableCache"] is True
    for step in TASKS:
        # every step runs the image named by the run parameter, not a baked-in one
        assert "pipelinechannel--image" in container(step)["image"]
        # no step pip-installs at run time: everything is in the project image
        assert "pip install" not in " ".join(container(step)["command"])
    for step in ("fingerprint", "simulate-or-ingest", "plan", "gate", "register"):
        assert tasks[step]["retryPolicy"]["maxRetryCount"] == 3
        env = {e["name"]: e["value"] for e in container(step).get("env", [])}
        assert env == {"PUSHGEN_S3_ENDPOINT": "http://minio.kubeflow:9000"}
    assert "retryPolicy" not in tasks["sft"]
    assert "AWS_SECRET" not in compiled.read_text()  # credentials never travel in the YAML


def test_cpu_only_compile_and_secret_needs_kfp_kubernetes(tmp_path):
    out = compile_pipeline(
        tmp_path / "cpu.yaml", ClusterConfig(sft_gpus_per_node=0, reward_gpus_per_node=0)
    )
    assert "nvidia.com/gpu" not in out.read_text()
    try:
        import kfp.kubernetes  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="kfp-kubernetes"):
            compile_pipeline(tmp_path / "s.yaml", ClusterConfig(s3_secret="s3-creds"))
    else:
        text = compile_pipeline(
            tmp_path / "s.yaml", ClusterConfig(s3_secret="s3-creds")
        ).read_text()
        assert "s3-creds" in text and "AWS_SECRET_ACCESS_KEY" in text


def test_cli_compile_and_submit_dry_run(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    assert cli(["pipeline", "compile", "--out", str(out), "--gpus", "2"]) == 0
    assert "as a TrainJob (1 x 2 GPUs, torch-distributed)" in out.read_text()  # 2 GPUs: DDP
    capsys.readouterr()
    code = cli(
        [
            "pipeline",
            "submit",
            "--host",
            "http://kfp.invalid",
            "--package",
            str(out),
            "--experiment",
            "nightly",
            "--run-name",
            "r1",
            "--param",
            "n_videos=50",
            "--param",
            'categories=["Humor","Urgency"]',
            "--dry-run",
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["experiment"] == "nightly"
    assert printed["run"]["display_name"] == "r1"
    assert printed["run"]["runtime_config"]["parameters"] == {
        "n_videos": 50,
        "categories": ["Humor", "Urgency"],
    }


def test_submit_request_checks_parameters(compiled):
    req = build_submit_request(compiled, {"sft_max_steps": 5}, "pushgen")
    # the GPU steps' tolerations make a platform spec beside the pipeline spec
    assert req["run"].pipeline_spec["pipeline_spec"]["pipelineInfo"]["name"] == "pushgen-training"
    assert req["run_name"].startswith("pushgen-training-")
    with pytest.raises(ConfigError, match=r"unknown pipeline parameter\(s\) \['n_vidoes'\]"):
        build_submit_request(compiled, {"n_vidoes": 5}, "pushgen")
    with pytest.raises(ConfigError, match="no pipeline package"):
        build_submit_request(compiled.parent / "absent.yaml", {}, "pushgen")
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_params(["oops"])
    assert parse_params(["base_model=org/model", "seed=3"]) == {
        "base_model": "org/model",
        "seed": 3,
    }


def test_submit_to_unreachable_host_is_one_clear_error(compiled, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    code = cli(["pipeline", "submit", "--host", dead, "--package", str(compiled)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot submit to Kubeflow Pipelines at {dead}" in err[0]
