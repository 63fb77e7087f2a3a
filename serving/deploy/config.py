"""What a deployment is: `DeployConfig`, the image and object names, the URLs the graph calls, and
the concurrency bounds the predictors advertise."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kserve import (
    V1beta1InferenceService,
)
from kubernetes.client import (
    V1Toleration,
)

from pushgen.core.errors import ConfigError

MANIFEST_DIR = Path(__file__).parent.parent / "manifests"
KINDS = {
    "InferenceService": "V1beta1InferenceService",
    "InferenceGraph": "V1alpha1InferenceGraph",
    "ServiceAccount": "V1ServiceAccount",
    "ConfigMap": "V1ConfigMap",
    "NetworkPolicy": "V1NetworkPolicy",
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
    "Secret": "V1Secret",
}
IMAGE_REPO = "ghcr.io/pushgen/pushgen"  # the Dockerfile's image; CPU tag <ver>, CUDA <ver>-cuda
IMAGE_TAG = "0.1.0"
EXAMPLE_STORE = "s3://pushgen-models/pushgen"  # the checked-in example's store and version
EXAMPLE_VERSION = "v1"
MODEL_MOUNT = "/mnt/models"  # where KServe's storage initializer puts STORAGE_URI
LOG_MOUNT = "/var/lib/pushgen/serving-log"  # an emptyDir: closed windows are shipped to S3
FEATURES_MOUNT = "/var/lib/pushgen/features"  # SQLite on one machine only (not on a cluster)
FEATURE_REPO_MOUNT = "/var/lib/pushgen/feature-repo"
HF_CACHE_MOUNT = "/var/lib/pushgen/hf-cache"  # the hub's cache, when the generator may download
TMP_MOUNT = "/tmp"
# A cluster's transformer replicas share one online store, which the materialise step fills: Redis
# (feast[redis] is in the image). SQLite is the one-machine store (`pushgen serve`, the demo).
FEAST_STORES = ("redis",)
# The Knative config-features flags a pod spec field needs (knative/serving
# pkg/apis/serving/fieldmask.go PodSpecMask; all "disabled" in config/core/configmaps/features.yaml)
KNATIVE_FLAGS = {
    "tolerations": "kubernetes.podspec-tolerations",
    "node_selector": "kubernetes.podspec-nodeselector",
}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a namespace name (RFC 1123)
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
# KServe's names (pkg/constants, pkg/credentials/s3): labels on predictor pods, S3 annotations
ISVC_LABEL = "serving.kserve.io/inferenceservice"
GRAPH_LABEL = "serving.kserve.io/inferencegraph"
NAMES = {"generator": "pushgen-generator", "ranker": "pushgen-ranker", "pushgen": "pushgen"}
MODEL_NAMES = {"generator": "generator", "ranker": "ranker", "pushgen": "pushgen"}


def image_name(variant: str = "cpu", repo: str = IMAGE_REPO, tag: str = IMAGE_TAG) -> str:
    """The image a Dockerfile variant builds: `<repo>:<tag>` (cpu) or `<repo>:<tag>-cuda`."""
    if variant not in ("cpu", "cuda"):
        raise ConfigError(f"unknown image variant {variant!r}: cpu or cuda")
    return f"{repo}:{tag}" if variant == "cpu" else f"{repo}:{tag}-cuda"


@dataclass(frozen=True)
class DeployConfig:
    """One rollout of pushgen on a cluster: which version, which image, how it scales and runs."""

    version_uri: str = (
        f"{EXAMPLE_STORE}/versions/{EXAMPLE_VERSION}"  # immutable version in the store
    )
    namespace: str = "pushgen"  # Kubernetes namespace of every object
    image: str = field(default_factory=lambda: image_name("cuda"))  # generator's image (GPU)
    cpu_image: str = field(default_factory=lambda: image_name("cpu"))  # ranker + transformer
    canary_percent: int | None = None  # new revision's traffic share; None: all (a promote)
    generator_gpus: int = 1  # nvidia.com/gpu per generator replica (0: CPU generator)
    generator_replicas: tuple[int, int] = (1, 4)  # min, max
    ranker_replicas: tuple[int, int] = (1, 8)
    transformer_replicas: tuple[int, int] = (1, 4)
    gpu_tolerations: tuple[str, ...] = ("nvidia.com/gpu:NoSchedule",)  # key[=value]:Effect
    gpu_node_selector: tuple[tuple[str, str], ...] = ()  # (label, value) pairs for the generator
    prometheus: bool = True  # scrape annotations on every predictor (/metrics on the port)
    service_account: str = "pushgen-models"  # what the predictors run as
    # Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and, as annotations, the S3 settings
    # KServe's credential builder reads (templates/s3-secret.yaml)
    s3_secret: str = "pushgen-s3"
    s3_endpoint: str | None = None  # host[:port] (or a URL) of MinIO/Ceph; None: AWS
    s3_region: str = "us-east-1"
    s3_use_https: bool = True
    s3_role_arn: str | None = None  # IRSA role on the account instead of keys in the Secret
    feast_online_store: str = "redis"  # the online store every transformer replica shares
    feast_registry: str | None = None  # None: `<store>/feast/registry.db` (beside the versions)
    feast_secret: str = "pushgen-feast"  # Secret with `connection` (host:port[,password=...])
    hf_hub_offline: bool = True  # False where the cluster may reach the Hugging Face hub
    hub_cache_size: str = "20Gi"  # emptyDir for the hub's cache when the generator downloads
    serving_log_size: str = "2Gi"  # emptyDir for the open serving-log files (closed ones ship)
    ingress_namespaces: tuple[str, ...] = ("knative-serving", "istio-system")  # Knative data path
    monitoring_namespace: str | None = "monitoring"  # Prometheus scrapes from here
    liveness_delay_s: int = 600  # model loading precedes the HTTP server; never kill a loading pod
    port: int = 8080  # container port KServe routes to
    # "pushgen": our generator container; "huggingface": KServe's HF runtime, vLLM (llm_runtime.py)
    generator_runtime: str = "pushgen"
    llm_release: Any = None  # llm_runtime.LLMRelease, read from the store, for "huggingface"
    generator_merge: bool = False  # HF runtime: serve generator/merged/ instead of base + LoRA
    llm_max_model_len: int = 2048  # vLLM's context: a push prompt plus 24 new tokens fits

    def __post_init__(self) -> None:
        check_version_uri(self.version_uri)
        if self.canary_percent is not None and not 0 <= self.canary_percent <= 100:
            raise ConfigError(f"--canary {self.canary_percent} is outside 0-100")
        if self.feast_online_store not in FEAST_STORES:
            raise ConfigError(
                f"feast online store {self.feast_online_store!r}: a cluster's transformers share "
                f"one online store the image has the client for: one of {FEAST_STORES}"
            )
        for flag, names in (
            ("--namespace", (self.namespace,)),
            ("--ingress-namespace", self.ingress_namespaces),
            ("--monitoring-namespace", (self.monitoring_namespace or "default",)),
        ):
            for name in names:
                if not _DNS_LABEL.match(name):
                    raise ConfigError(f"{flag} {name!r} is not a Kubernetes namespace name")
        for flag, size in (
            ("--hub-cache-size", self.hub_cache_size),
            ("--serving-log-size", self.serving_log_size),
        ):
            if not _QUANTITY.match(size):
                raise ConfigError(f"{flag} {size!r} is not a Kubernetes quantity (e.g. 20Gi)")
        for tol in self.gpu_tolerations:
            make_toleration(tol)
        if self.generator_runtime not in ("pushgen", "huggingface"):
            raise ConfigError(
                f"--generator-runtime {self.generator_runtime!r}: pushgen or huggingface"
            )
        if self.generator_runtime == "huggingface" and self.llm_release is None:
            raise ConfigError("the huggingface generator runtime needs the release's details")


ManifestConfig = DeployConfig  # the name earlier code used


def check_version_uri(uri: str) -> str:
    """`<store>/versions/<version>`, never `latest`: a rollout must name what it serves."""
    parts = uri.rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] != "versions" or parts[-1] in ("", "latest"):
        raise ConfigError(
            f"version URI {uri!r} must be <store>/versions/<version> with a named version"
        )
    return uri.rstrip("/")


def make_toleration(text: str) -> V1Toleration:
    key_value, sep, effect = text.rpartition(":")
    if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise ConfigError(
            f"toleration {text!r}: use key[=value]:NoSchedule|PreferNoSchedule|NoExecute"
        )
    key, eq, value = key_value.partition("=")
    if eq:
        return V1Toleration(key=key, operator="Equal", value=value, effect=effect)
    return V1Toleration(key=key, operator="Exists", effect=effect)


def concurrency_bounds() -> dict[str, int]:
    """Each server's own bound on requests in flight (more get a 503): its `max_pending`, or the
    gate's admission bound where that is tighter (the transformer admits 4)."""
    from serving.generator import GeneratorModel
    from serving.ranker import RankerModel
    from serving.transformer import PushgenTransformer

    return {
        "generator": GeneratorModel.max_pending,
        "ranker": RankerModel.max_pending,
        "pushgen": min(PushgenTransformer.max_pending, PushgenTransformer.max_inflight),
    }


def service_url(cfg: DeployConfig, isvc: str) -> str:
    """An InferenceService's cluster-local address (`status.address.url` in Serverless mode)."""
    return f"http://{isvc}.{cfg.namespace}.svc.cluster.local"


def model_name_of(isvc: V1beta1InferenceService) -> str:
    """KServe's GetModelName for a custom predictor: `--model_name` in the args, else the name."""
    args = isvc.spec.predictor.containers[0].args or []
    name = ""
    for i, arg in enumerate(args):
        if arg.startswith("--model_name"):  # KServe matches the prefix, `--model_name=x` too
            if "=" in arg:
                name = arg.split("=", 1)[1]
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                name = args[i + 1]
    return name or isvc.metadata.name


def predict_url(cfg: DeployConfig, isvc: V1beta1InferenceService) -> str:
    """The URL KServe's router calls for a graph step (GetPredictorEndpoint, protocol v1)."""
    return f"{service_url(cfg, isvc.metadata.name)}/v1/models/{model_name_of(isvc)}:predict"
