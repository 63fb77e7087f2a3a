"""Training steps as Kubeflow Trainer TrainJobs, without a cluster.

- `pushgen train-job` writes a TrainJob that validates against Kubeflow Trainer's CRD (v2.3.0,
  copied into tests/crds with its source named);
- the pipeline compiled with `sft_gpus_per_node=8` has SFT as a TrainJob step (CPU pod, the
  TrainJob's nodes x GPUs as its arguments), and the TrainJob that step creates validates;
- the SDK path (`TrainerClient` on its Kubernetes backend) against a stand-in API
  (tests/trainjob_cluster.py) that validates and runs the job here under torchrun: the object the
  SDK sends is the one the writer writes; the SFT step trains through a 2-process TrainJob and
  reads its result from the store; a failed job fails the step with one line;
- bad settings (nodes < 1, FSDP on one GPU or with merged weights, a runtime that is not in the
  cluster, a bad training command) get one line and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.trainjob import params_of, train_in_trainjob
from pipelines.training import ClusterConfig, compile_pipeline
from pushgen.cli.main import main as cli
from pushgen.core.errors import ConfigError
from pushgen.core.trainjob import TrainJobFailed, TrainJobSettings, run_trainjob, trainjob_manifest
from pushgen.generator.config import GeneratorTrainConfig
from tests.trainjob_cluster import TrainJobCluster, trainer_client, validate_trainjob

TRAIN = ["train-generator", "--data", "/data/sft.parquet", "--out", "/models/generator"]


def test_train_job_writes_a_trainjob_that_validates(tmp_path, capsys):
    out = tmp_path / "trainjob.yaml"
    argv = ["train-job", "--nodes", "2", "--gpus-per-node", "8", "--image", "reg/pushgen:1"]
    assert cli([*argv, "--yaml", str(out), "--", *TRAIN, "--fsdp", "full_shard auto_wrap"]) == 0
    job = yaml.safe_load(out.read_text())
    validate_trainjob(job)
    trainer = job["spec"]["trainer"]
    assert job["spec"]["runtimeRef"] == {
        "kind": "ClusterTrainingRuntime",
        "name": "torch-distributed",
    }
    assert trainer["command"][:3] == ["torchrun", "--module", "pushgen"]
    assert trainer["command"][3:] == [*TRAIN, "--fsdp", "full_shard auto_wrap"]
    assert trainer["numNodes"] == 2 and trainer["image"] == "reg/pushgen:1"
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"
    assert "16 processes" in capsys.readouterr().out


def _compiled_tasks(path: Path) -> tuple[dict, dict]:
    docs = list(yaml.safe_load_all(path.read_text()))
    spec = docs[0]
    tasks = spec["root"]["dag"]["tasks"]
    executors = spec["deploymentSpec"]["executors"]
    return tasks, executors


def test_pipeline_with_8_gpus_per_node_has_the_trainjob_step(tmp_path):
    cfg = ClusterConfig(sft_gpus_per_node=8)
    tasks, executors = _compiled_tasks(compile_pipeline(tmp_path / "p.yaml", cfg))
    sft = tasks["sft"]
    assert "as a TrainJob (1 x 8 GPUs, torch-distributed)" in sft["taskInfo"]["name"]
    args = {
        k: v["runtimeValue"]["constant"]
        for k, v in sft["inputs"]["parameters"].items()
        if "runtimeValue" in v
    }
    assert (args["nodes"], args["gpus_per_node"], args["trainjob_runtime"]) == (
        1,
        8,
        "torch-distributed",
    )
    # the step's own pod asks for no GPU (the TrainJob's pods do); the reward step still trains
    # in its pod on its one GPU
    sft_pod = executors[sft["componentRef"]["name"].replace("comp-", "exec-")]["container"]
    assert "accelerator" not in sft_pod.get("resources", {})
    reward_pod = executors["exec-reward"]["container"]
    assert reward_pod["resources"]["accelerator"]["resourceCount"] == "1"
    assert "TrainJob" not in tasks["reward"]["taskInfo"]["name"]
    # the TrainJob that step creates (its nodes x GPUs from the compiled arguments) validates
    settings = TrainJobSettings(
        int(args["nodes"]),
        int(args["gpus_per_node"]),
        args["trainjob_runtime"],
        image="reg/pushgen:1",
    )
    entry = [
        "components.trainjob",
        "generator",
        "--store-uri",
        "s3://b/p",
        "--job",
        "pushgen-sft-1",
    ]
    validate_trainjob(
        trainjob_manifest(settings, "pushgen-sft-1", entry, {"pushgen.io/step": "sft"})
    )


def test_the_sdk_sends_what_the_writer_writes_and_the_job_runs():
    cluster = TrainJobCluster(procs=2)
    settings = TrainJobSettings(gpus_per_node=0, nodes=2, namespace="ml", poll_s=1, timeout_s=60)
    entry = ["pushgen", "--version"]
    job = run_trainjob(trainer_client(cluster), settings, "pushgen-v", entry, {"a": "b"}, log=print)
    assert job.status == "Complete"
    sent = dict(cluster.jobs["pushgen-v"])
    sent.pop("status")
    sent["metadata"] = {k: v for k, v in sent["metadata"].items() if k != "creationTimestamp"}
    assert sent == trainjob_manifest(settings, "pushgen-v", entry, {"a": "b"})
    assert cluster.ran["pushgen-v"].stdout.count("pushgen ") == 2  # two ranks ran it


def _sft_inputs(tmp_path: Path) -> dict[str, str]:
    texts = {"Humor": "Hilarious! The cat steals the show", "Practical": "3 tips to cook pasta"}
    pushes = pd.DataFrame(
        [
            {"video_id": f"v{v}", "category": c, "text": t, "confidence": 0.3 + 0.1 * v}
            for v in range(6)
            for c, t in texts.items()
        ]
        + [{"video_id": "v99", "category": "Humor", "text": "no caption", "confidence": 1.0}]
    )
    captions = pd.DataFrame(
        {"video_id": [f"v{v}" for v in range(6)], "caption": "a cat", "captioner": "text"}
    ).assign(created_at=pd.Timestamp("2026-01-01", tz="UTC"))
    pushes.to_parquet(tmp_path / "labelled.parquet")
    captions.to_parquet(tmp_path / "captions.parquet")
    return {
        "labelled": str(tmp_path / "labelled.parquet"),
        "captions": str(tmp_path / "captions.parquet"),
    }


@pytest.mark.parametrize("store_kind", ["local", pytest.param("s3", marks=pytest.mark.slow)])
def test_the_sft_step_trains_through_a_2_process_trainjob(
    store_kind, tiny_causal_lm_dir, tmp_path, request
):
    """The step's way: inputs to the store, a 2-process TrainJob, the result back from the store
    (a local directory, or S3 on moto's server: the job's pods get the endpoint from the step)."""
    if store_kind == "s3":
        import boto3

        endpoint = request.getfixturevalue("s3_env")
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="pushgen-trainjob")
        store = "s3://pushgen-trainjob/runs"
    else:
        store = str(tmp_path / "store")
    cluster = TrainJobCluster(procs=2)
    cfg = GeneratorTrainConfig(
        base_model=str(tiny_causal_lm_dir),
        max_steps=4,
        batch_size=4,
        val_fraction=0.0,
        device="cpu",
        progress=False,
        bf16="off",
    )
    outputs = {
        "model": str(tmp_path / "out" / "generator"),
        "rejected": str(tmp_path / "out" / "rejected.parquet"),
    }
    figures = train_in_trainjob(
        "generator",
        TrainJobSettings(gpus_per_node=2, poll_s=1, timeout_s=600),
        store,
        _sft_inputs(tmp_path),
        params_of(cfg),
        outputs,
        client=trainer_client(cluster),
    )
    (name,) = cluster.jobs
    assert cluster.ran[name].returncode == 0, cluster.ran[name].stderr[-3000:]
    assert figures["steps"] == 4 and figures["rejected_rows"] == 1  # v99 has no caption
    model = Path(outputs["model"])
    assert (model / "adapter_model.safetensors").exists()
    assert json.loads((model / "metrics.json").read_text())["processes"] == 2
    rejected = pd.read_parquet(outputs["rejected"])["reject_reason"].tolist()
    assert rejected == ["no caption for video"]
    env = {e["name"]: e["value"] for e in cluster.jobs[name]["spec"]["trainer"].get("env") or []}
    if store_kind == "s3":
        assert env == {"PUSHGEN_S3_ENDPOINT": endpoint}
    else:
        assert env == {} and not list(Path(store).rglob("*.partial"))


@pytest.mark.slow  # a runtime not in the cluster stays fast (test_a_runtime_not_in_the_cluster_gets_one_line)
def test_a_failed_trainjob_fails_with_one_line(monkeypatch, tmp_path, capsys):
    cluster = TrainJobCluster(procs=2)
    monkeypatch.setattr(
        "pushgen.cli.commands.trainjob.trainer_client", lambda ns: trainer_client(cluster)
    )
    train = [
        "train-generator",
        "--data",
        str(tmp_path / "missing.parquet"),
        "--out",
        str(tmp_path / "g"),
    ]
    code = cli(
        ["train-job", "--gpus-per-node", "2", "--submit", "--name", "pushgen-bad", "--", *train]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["pushgen train-job: error: TrainJob pushgen-bad failed"]
    assert "no such file" in cluster.ran["pushgen-bad"].stderr
    assert not (tmp_path / "g").exists()
    with pytest.raises(TrainJobFailed):
        run_trainjob(
            trainer_client(cluster),
            TrainJobSettings(gpus_per_node=2, poll_s=1, timeout_s=60),
            "pushgen-bad2",
            ["pushgen", *train],
        )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--nodes", "0"], "nodes must be at least 1"),
        (["--gpus-per-node", "-1"], "gpus_per_node must be 0 or more"),
        (["--gpus-per-node", "1", "--", *TRAIN, "--fsdp", "full_shard"], "needs more than one GPU"),
        (
            ["--gpus-per-node", "4", "--", *TRAIN, "--fsdp", "full_shard", "--save-merged"],
            "writes the adapter only",
        ),
        (["--gpus-per-node", "4", "--", *TRAIN, "--fsdp", "sharded"], "unknown option"),
        (["--gpus-per-node", "4", "--", *TRAIN, "--bogus"], "unrecognized arguments: --bogus"),
        (["--gpus-per-node", "4", "--", "serve"], "one of ('train-generator', 'train-ranker')"),
        (["--name", "Bad_Name", "--", *TRAIN], "not a DNS-1035 label"),
    ],
)
def test_bad_settings_get_one_line_and_exit_2(argv, says, tmp_path, capsys):
    out = tmp_path / "tj.yaml"
    if "--" not in argv:
        argv = [*argv, "--", *TRAIN]
    i = argv.index("--")
    assert cli(["train-job", *argv[:i], "--yaml", str(out), *argv[i:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert not out.exists()


def test_a_runtime_not_in_the_cluster_gets_one_line(monkeypatch, capsys):
    cluster = TrainJobCluster()
    monkeypatch.setattr(
        "pushgen.cli.commands.trainjob.trainer_client", lambda ns: trainer_client(cluster)
    )
    code = cli(
        [
            "train-job",
            "--gpus-per-node",
            "2",
            "--runtime",
            "torch-distributd",
            "--submit",
            "--",
            *TRAIN,
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "pushgen train-job: error: training runtime 'torch-distributd' is not in the cluster "
        "(it has torch-distributed)"
    ]
    assert not cluster.jobs


def test_bad_pipeline_training_settings(tmp_path, capsys):
    with pytest.raises(ConfigError, match="sft_nodes must be at least 1"):
        ClusterConfig(sft_nodes=0)
    with pytest.raises(ConfigError, match="reward_gpus_per_node must be 0 or more"):
        ClusterConfig(reward_gpus_per_node=-2)
    assert cli(["pipeline", "compile", "--out", str(tmp_path / "p.yaml"), "--nodes", "0"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "pushgen pipeline: error: --nodes must be at least 1, got 0"
    )
