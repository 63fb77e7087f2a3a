"""A stand-in for the Kubernetes API behind the `kubeflow` SDK's Kubernetes backend (test helper).

The SDK (`TrainerClient`, `KubernetesBackend`) is the real one; only its two API clients are
replaced by `TrainJobCluster`, which answers the calls the backend makes:

- runtimes: the ClusterTrainingRuntimes in tests/crds (copied from kubeflow/trainer v2.3.0);
- create TrainJob: validated against the TrainJob CRD's openAPIV3Schema as the API server does
  (`jsonschema`, plus unknown fields refused as `kubectl --validate=strict` does; the CEL rules,
  which only guard immutability and fields pushgen does not set, are not evaluated), then run:
  the trainer command, here, with the PET_* variables the torch plugin sets (one node, `procs`
  processes per node), and the job's conditions set from its exit code (Complete / Failed);
- pods: none listed (so no pod log is streamed; the job's output is kept in `ran`).

What differs from a cluster: the job runs synchronously inside `create`; one node only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes.client import ApiException, V1PodList

CRDS = Path(__file__).resolve().parent / "crds"
REPO = CRDS.parent.parent


def trainjob_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the TrainJob CRD (kubeflow/trainer v2.3.0)."""
    crd = yaml.safe_load((CRDS / "trainer.kubeflow.org_trainjobs.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _unknown_fields(obj: Any, schema: dict, path: str = "") -> list[str]:
    if isinstance(obj, dict) and "properties" in schema:
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return []
        found = []
        for key, value in obj.items():
            if key not in schema["properties"]:
                found.append(f"{path}.{key}")
            else:
                found += _unknown_fields(value, schema["properties"][key], f"{path}.{key}")
        return found
    if isinstance(obj, list) and "items" in schema:
        return [
            f
            for i, v in enumerate(obj)
            for f in _unknown_fields(v, schema["items"], f"{path}[{i}]")
        ]
    return []


def validate_trainjob(obj: dict[str, Any]) -> None:
    """Raise if `obj` is not a valid TrainJob (schema errors or unknown fields)."""
    schema = trainjob_schema()
    jsonschema.validate(obj, schema)
    unknown = _unknown_fields(obj, schema)
    if unknown:
        raise jsonschema.ValidationError(f"unknown field(s) {unknown}")
    assert obj["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and obj["kind"] == "TrainJob"


class _Done:
    """What `async_req=True` returns: `.get(timeout)` gives the result or raises."""

    def __init__(self, value: Any = None, error: Exception | None = None):
        self.value, self.error = value, error

    def get(self, timeout: float | None = None) -> Any:
        if self.error:
            raise self.error
        return self.value


class TrainJobCluster:
    """The custom-objects and core API calls of the SDK's Kubernetes backend (see module doc)."""

    def __init__(self, procs: int = 2, runtimes: tuple[str, ...] = ("torch_distributed",)):
        self.procs = procs
        self.runtimes = {}
        for file in runtimes:
            obj = yaml.safe_load((CRDS / f"{file}.yaml").read_text())
            self.runtimes[obj["metadata"]["name"]] = obj
        self.jobs: dict[str, dict] = {}
        self.ran: dict[str, subprocess.CompletedProcess] = {}

    # --- custom objects
    def get_cluster_custom_object(self, group, version, plural, name, async_req=False):
        if name not in self.runtimes:
            return _Done(error=ApiException(status=404, reason="Not Found"))
        return _Done(self.runtimes[name])

    def get_namespaced_custom_object(
        self, group, version, namespace, plural, name, async_req=False
    ):
        if plural == "trainjobs" and name in self.jobs:
            return _Done(self.jobs[name])
        return _Done(error=ApiException(status=404, reason="Not Found"))

    def list_cluster_custom_object(self, group, version, plural, async_req=False):
        return _Done({"items": list(self.runtimes.values())})

    def list_namespaced_custom_object(self, group, version, namespace, plural, async_req=False):
        return _Done({"items": []})

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        validate_trainjob(body)
        name = body["metadata"]["name"]
        job = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
        job["metadata"]["creationTimestamp"] = datetime.now(UTC).isoformat()
        self.jobs[name] = job
        ran = self._run(job)
        self.ran[name] = ran
        kind = "Complete" if ran.returncode == 0 else "Failed"
        job["status"] = {
            "conditions": [
                {
                    "type": kind,
                    "status": "True",
                    "reason": "JobSet" + kind,
                    "message": f"trainer exited {ran.returncode}",
                    "lastTransitionTime": job["metadata"]["creationTimestamp"],
                }
            ]
        }
        return job

    def _run(self, job: dict) -> subprocess.CompletedProcess:
        """The trainer container's command, as the torch plugin would start it on one node."""
        from serving.stack import free_port

        command = list(job["spec"]["trainer"]["command"])
        if command[0] == "torchrun":  # the image's torchrun: this environment's
            command = [sys.executable, "-m", "torch.distributed.run", *command[1:]]
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "OMP_NUM_THREADS": "1",
            "PET_NNODES": "1",
            "PET_NPROC_PER_NODE": str(self.procs),
            "PET_NODE_RANK": "0",
            "PET_MASTER_ADDR": "127.0.0.1",
            "PET_MASTER_PORT": str(free_port()),
        }
        for var in job["spec"]["trainer"].get("env") or []:
            env[var["name"]] = var["value"]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)

    # --- core
    def list_namespaced_pod(self, namespace, label_selector=None, async_req=False):
        return _Done(V1PodList(items=[]))

    def read_namespaced_config_map(self, name, namespace):
        raise ApiException(status=404, reason="Not Found")

    def list_namespaced_event(self, namespace, **kwargs):
        raise ApiException(status=403, reason="Forbidden")


def trainer_client(cluster: TrainJobCluster, namespace: str = "ml") -> Any:
    """A real `TrainerClient` whose Kubernetes backend talks to `cluster` (built without its
    `__init__`, which would load a kubeconfig and probe the control plane)."""
    from kubeflow.trainer import TrainerClient
    from kubeflow.trainer.backends.kubernetes.backend import KubernetesBackend

    backend = KubernetesBackend.__new__(KubernetesBackend)
    backend.custom_api = backend.core_api = cluster
    backend.namespace = namespace
    client = TrainerClient.__new__(TrainerClient)
    client.backend = backend
    return client
