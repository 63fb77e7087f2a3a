"""`pushgen train-job`: `train-generator` or `train-ranker` on several GPUs, as a Kubeflow Trainer
TrainJob (runtime `torch-distributed`): write its YAML, or submit it and follow it.

    pushgen train-job --nodes 2 --gpus-per-node 8 --image ghcr.io/pushgen/pushgen:0.1.0 \\
        --yaml trainjob.yaml -- train-generator --data /data/sft.parquet --out /models/generator
    kubectl apply -f trainjob.yaml                       # or: ... --submit (kubeconfig context)

The training command after `--` is checked as `pushgen` would check it before anything is
written; its paths are the pods' (a shared volume, mounted through the runtime or a patch).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from pathlib import Path
from typing import Any

from pushgen.core.errors import ConfigError

TRAIN_COMMANDS = ("train-generator", "train-ranker")
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # DNS-1035 label (a TrainJob's name)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train-job` subcommand."""
    t = subparsers.add_parser(
        "train-job",
        help="run train-generator / train-ranker as a Kubeflow Trainer TrainJob (several GPUs)",
        description="Write (or submit) a TrainJob on the torch-distributed runtime that runs the "
        "training command after `--` under torchrun: nodes x GPUs per node processes, DDP, rank "
        "0 writes.",
    )
    t.add_argument("--nodes", type=int, default=1, help="training nodes (pods)")
    t.add_argument("--gpus-per-node", type=int, default=1, help="GPUs (processes) per node")
    t.add_argument("--runtime", default="torch-distributed", help="ClusterTrainingRuntime name")
    t.add_argument("--image", default="", help="the project image ('' keeps the runtime's)")
    t.add_argument("--cpu-per-node", default="8", help="CPU request per node")
    t.add_argument("--memory-per-node", default="64G", help="memory request per node")
    t.add_argument("--namespace", default="", help="namespace ('' : the kubeconfig context's)")
    t.add_argument("--name", default="pushgen-train", help="the TrainJob's name (DNS-1035)")
    t.add_argument("--yaml", dest="yaml_out", help="write the TrainJob here")
    t.add_argument(
        "--submit", action="store_true", help="create it in the cluster, stream logs, wait"
    )
    t.add_argument("train", nargs=argparse.REMAINDER, help="-- train-generator|train-ranker ...")
    t.set_defaults(func=run_train_job)


def check_training_command(train: list[str], settings: Any) -> list[str]:
    """The training command, checked as `pushgen` would parse it (options and settings)."""
    train = train[1:] if train[:1] == ["--"] else train
    if not train or train[0] not in TRAIN_COMMANDS:
        raise ConfigError(f"give the training command after `--`: one of {TRAIN_COMMANDS}")
    from pushgen.cli.main import build_parser
    from pushgen.core.trainjob import check_fsdp

    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            args = build_parser().parse_args(train)
    except SystemExit:  # argparse's usage and error, as one line of ours
        why = said.getvalue().strip().splitlines()[-1].partition("error: ")[2]
        raise ConfigError(f"the training command: {why}") from None
    if train[0] == "train-generator":
        from pushgen.cli.commands.generator import config_from_args

        check_fsdp(config_from_args(args).fsdp, settings)  # and the config's own checks
    else:
        from pushgen.cli.commands.ranker import recipe_from_args

        recipe = recipe_from_args(args)
        if settings.distributed and (recipe.train.head == "listwise" or recipe.pointwise):
            raise ConfigError("on several GPUs only the pairwise heads train (segment_diff, cls)")
    return train


def trainer_client(namespace: str) -> Any:
    """A `TrainerClient` on the kubeconfig's (or in-cluster) Kubernetes API."""
    from kubeflow.common.types import KubernetesBackendConfig
    from kubeflow.trainer import TrainerClient

    return TrainerClient(KubernetesBackendConfig(namespace=namespace or None))


def run_train_job(args: argparse.Namespace) -> int:
    """Check everything, then write the YAML and/or submit."""
    from pushgen.core.trainjob import STEP_LABEL, TrainJobSettings, run_trainjob, trainjob_manifest

    settings = TrainJobSettings(
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        runtime=args.runtime,
        image=args.image,
        cpu_per_node=args.cpu_per_node,
        memory_per_node=args.memory_per_node,
        namespace=args.namespace,
    )
    if not _NAME.match(args.name):
        raise ConfigError(f"--name {args.name!r} is not a DNS-1035 label (a-z, 0-9, -; <= 63)")
    if not args.yaml_out and not args.submit:
        raise ConfigError("say what to do: --yaml PATH, --submit, or both")
    train = check_training_command(args.train, settings)
    entry, labels = ["pushgen", *train], {STEP_LABEL: train[0]}
    if args.yaml_out:
        import yaml

        manifest = trainjob_manifest(settings, args.name, entry, labels)
        Path(args.yaml_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.yaml_out).write_text(yaml.safe_dump(manifest, sort_keys=False))
        print(f"wrote {args.yaml_out} ({settings.processes} processes on {settings.runtime})")
    if args.submit:
        run_trainjob(trainer_client(args.namespace), settings, args.name, entry, labels)
    return 0
