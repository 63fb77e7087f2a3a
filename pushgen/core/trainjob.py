"""Training on several GPUs as a Kubeflow Trainer v2 TrainJob (`trainer.kubeflow.org/v1alpha1`).

A TrainJob on the `torch-distributed` ClusterTrainingRuntime runs one pod per node; the runtime's
torch plugin gives each pod PET_NNODES, PET_NPROC_PER_NODE ("auto": the node's GPUs), PET_NODE_RANK,
PET_MASTER_ADDR and PET_MASTER_PORT (kubeflow/trainer v2.3.0,
pkg/runtime/framework/plugins/torch/torch.go), which `torchrun` reads as its own options. So the
job's command is `torchrun --module <pushgen entry> ...`, in the project image.

Everything is built and sent through the `kubeflow` SDK (`kubeflow.trainer`): the manifest
writer uses the pieces `KubernetesBackend.train` uses (`get_trainer_cr_from_custom_trainer`, the
`kubeflow_trainer_api` models; kubeflow/sdk, kubeflow/trainer/backends/kubernetes/backend.py),
and `run_trainjob` goes through `TrainerClient` (runtime lookup, create, log stream, wait).

    settings = TrainJobSettings(nodes=2, gpus_per_node=8, image="ghcr.io/pushgen/pushgen:0.1.0")
    manifest = trainjob_manifest(settings, "pushgen-sft", ["train-generator", ...])
    run_trainjob(TrainerClient(), settings, "pushgen-sft", ["train-generator", ...])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pushgen.core.errors import ConfigError, PushgenError

TRAINER_RUNTIME = "torch-distributed"  # the runtime Kubeflow Trainer installs for PyTorch
TRAINER_API_VERSION = "trainer.kubeflow.org/v1alpha1"
STEP_LABEL = "pushgen.io/step"  # which pipeline step a job trains (sft, reward)


class TrainJobFailed(PushgenError):
    """A TrainJob ended Failed (a rank died, the image failed, ...): the step fails with it."""


@dataclass
class TrainJobSettings:
    """Where a training step runs: nodes x GPUs per node, on which runtime, in which image."""

    nodes: int = 1
    gpus_per_node: int = 1  # 0: CPU nodes (one process per node)
    runtime: str = TRAINER_RUNTIME
    image: str = ""  # the project image; "" keeps the runtime's
    cpu_per_node: str = "8"
    memory_per_node: str = "64G"
    namespace: str = ""  # "" : the client's (in a pod: the pod's namespace)
    timeout_s: int = 24 * 3600
    poll_s: int = 15
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ConfigError(f"nodes must be at least 1, got {self.nodes}")
        if self.gpus_per_node < 0:
            raise ConfigError(f"gpus_per_node must be 0 or more, got {self.gpus_per_node}")
        if not self.runtime:
            raise ConfigError(
                "runtime must name a (Cluster)TrainingRuntime, e.g. torch-distributed"
            )
        if self.timeout_s <= self.poll_s or self.poll_s < 1:
            raise ConfigError(f"need 1 <= poll_s < timeout_s, got {self.poll_s}, {self.timeout_s}")

    @property
    def processes(self) -> int:
        """Training processes in all: one per GPU (one per node on CPU nodes)."""
        return self.nodes * max(self.gpus_per_node, 1)

    @property
    def distributed(self) -> bool:
        """More than one process: the step runs as a TrainJob, not in its own pod."""
        return self.processes > 1

    def resources_per_node(self) -> dict[str, Any]:
        """The SDK's `resources_per_node` ("gpu" is its alias for nvidia.com/gpu)."""
        resources: dict[str, Any] = {"cpu": self.cpu_per_node, "memory": self.memory_per_node}
        if self.gpus_per_node:
            resources["gpu"] = str(self.gpus_per_node)  # a quantity: "8", not 8.0
        return resources


def torchrun_command(entry: list[str]) -> list[str]:
    """`torchrun --module <entry>`; nodes, processes per node and the rendezvous come from the
    runtime's PET_* variables."""
    return ["torchrun", "--module", *entry]


def check_fsdp(fsdp: str | None, settings: TrainJobSettings) -> None:
    """FSDP shards a model over processes: with one there is nothing to shard over."""
    if fsdp and not settings.distributed:
        raise ConfigError(f"fsdp {fsdp!r} needs more than one GPU (nodes x gpus_per_node)")


def _container(settings: TrainJobSettings) -> Any:
    from kubeflow.trainer import CustomTrainerContainer

    return CustomTrainerContainer(
        image=settings.image,
        num_nodes=settings.nodes,
        resources_per_node=settings.resources_per_node(),
        env=settings.env or None,
    )


def trainjob_manifest(
    settings: TrainJobSettings, name: str, entry: list[str], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """The TrainJob `run_trainjob` would create, as a Kubernetes object (for `kubectl apply`).

    Built as `KubernetesBackend.train` builds it: the SDK's trainer CR from a
    `CustomTrainerContainer`, the command set as the `TrainerCommand` option sets it."""
    from kubeflow.trainer.backends.kubernetes import utils
    from kubeflow.trainer.constants import constants
    from kubeflow.trainer.types import types
    from kubeflow_trainer_api import models

    runtime = types.Runtime(
        name=settings.runtime,
        kind=types.RuntimeKind.CLUSTER_TRAINING_RUNTIME,
        trainer=types.RuntimeTrainer(types.TrainerType.CUSTOM_TRAINER, "torch", settings.image),
    )
    trainer = utils.get_trainer_cr_from_custom_trainer(runtime, _container(settings))
    trainer.command = torchrun_command(entry)
    job = models.TrainerV1alpha1TrainJob(
        apiVersion=constants.API_VERSION,
        kind=constants.TRAINJOB_KIND,
        metadata=models.IoK8sApimachineryPkgApisMetaV1ObjectMeta(
            name=name, namespace=settings.namespace or None, labels=labels or None
        ),
        spec=models.TrainerV1alpha1TrainJobSpec(
            runtimeRef=models.TrainerV1alpha1RuntimeRef(name=runtime.name, kind=runtime.kind.value),
            trainer=trainer,
        ),
    )
    return job.to_dict()


def find_runtime(client: Any, name: str) -> Any:
    """The runtime `name` from the cluster; a name that is not there is a ConfigError naming
    those that are."""
    try:
        return client.get_runtime(name)
    except (RuntimeError, ValueError) as exc:
        try:
            known = sorted(r.name for r in client.list_runtimes())
        except Exception:  # noqa: BLE001 (the listing only adds to the message)
            known = []
        raise ConfigError(
            f"training runtime {name!r} is not in the cluster"
            + (f" (it has {', '.join(known)})" if known else f" ({exc})")
        ) from None


def run_trainjob(
    client: Any,
    settings: TrainJobSettings,
    name: str,
    entry: list[str],
    labels: dict[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> Any:
    """Create the TrainJob through `client` (a `kubeflow.trainer.TrainerClient`), stream rank 0's
    node log to `log`, wait for it to end; returns the finished job, raises `TrainJobFailed` if
    it failed (with its events when the backend has them)."""
    from kubeflow.trainer.options import Labels, Name, TrainerCommand

    runtime = find_runtime(client, settings.runtime)
    options = [Name(name), TrainerCommand(torchrun_command(entry))]
    if labels:
        options.append(Labels(labels))
    client.train(runtime=runtime, trainer=_container(settings), options=options)
    log(
        f"TrainJob {name}: {settings.nodes} node(s) x {settings.gpus_per_node} GPU(s) on {runtime.name}"
    )
    ended = {"Complete", "Failed"}
    wait = {"timeout": settings.timeout_s, "polling_interval": settings.poll_s}
    job = client.wait_for_job_status(name, status={"Running", *ended}, **wait)
    streamed = job.status == "Running"
    if streamed:
        for line in client.get_job_logs(name, follow=True):
            log(line.rstrip("\n"))
        job = client.wait_for_job_status(name, status=ended, **wait)
    if job.status == "Failed" and not streamed:  # ended before we looked: its log, if kept
        for line in client.get_job_logs(name, follow=False):
            log(line.rstrip("\n"))
    if job.status == "Failed":
        raise TrainJobFailed(f"TrainJob {name} failed{_events(client, name)}")
    log(f"TrainJob {name}: {job.status}")
    return job


def _events(client: Any, name: str) -> str:
    try:
        events = client.get_job_events(name)
    except Exception:  # noqa: BLE001 (not every backend has events; the failure stands alone)
        return ""
    return "".join(f"; {e.involved_object_name}: {e.message}" for e in events[-3:])
