"""Kubernetes objects for serving pushgen on a KServe cluster, built from the SDK model classes.

`build_manifests(DeployConfig)` returns, by file stem:
- `serviceaccount`: the ServiceAccount the predictors run as; it names the S3 Secret and carries
  KServe's S3 annotations, so KServe's storage initializer can download the weights;
- `feature-store`: a ConfigMap with the transformer's Feast `feature_store.yaml` (SQLite on the
  `pushgen-features` volume by default; Redis or Postgres by `feast_online_store`);
- `features-pvc`, `serving-log-pvc`: the volumes the materialise step fills and the serving log
  goes to;
- `networkpolicy`: only the transformer, the graph's router and Knative's data path may reach the
  generator and ranker pods;
- `generator`, `ranker`: InferenceServices pinned to one immutable version URI
  (`<store>/versions/<v>/<artifact>`; KServe downloads it to /mnt/models, the server verifies
  every file against the version's manifest); `--model_name` tells KServe (GetModelName) the name
  the server registers, so the graph calls `/v1/models/<that name>:predict`;
- `pushgen`: the transformer (Feast lookup, guard, serving log) calling both;
- `graph`: InferenceGraph `pushgen-graph`, a Sequence generator -> ranker.

Every predictor has readiness and liveness probes, and Knative autoscaling derived from the
server's own bound on concurrent requests (`max_pending`): `containerConcurrency` is that bound
(Knative queues the excess instead of the server answering 503) and `scaleTarget` half of it, so
pods are added well before the bound is reached.

    pushgen deploy --store s3://models/pushgen --version V --image IMG --out DIR   # a rollout
    pushgen manifests [--check]     # serving/manifests/ for the example config; --check: stale?
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kserve import (
    V1alpha1InferenceGraph,
    V1alpha1InferenceGraphSpec,
    V1alpha1InferenceRouter,
    V1alpha1InferenceStep,
    V1beta1InferenceService,
    V1beta1InferenceServiceSpec,
    V1beta1PredictorSpec,
)
from kserve.api_client import ApiClient
from kubernetes.client import (
    V1Capabilities,
    V1ConfigMap,
    V1ConfigMapVolumeSource,
    V1Container,
    V1ContainerPort,
    V1EmptyDirVolumeSource,
    V1EnvVar,
    V1EnvVarSource,
    V1HTTPGetAction,
    V1LabelSelector,
    V1LabelSelectorRequirement,
    V1NetworkPolicy,
    V1NetworkPolicyIngressRule,
    V1NetworkPolicyPeer,
    V1NetworkPolicySpec,
    V1ObjectFieldSelector,
    V1ObjectMeta,
    V1ObjectReference,
    V1PersistentVolumeClaim,
    V1PersistentVolumeClaimSpec,
    V1PersistentVolumeClaimVolumeSource,
    V1Probe,
    V1ResourceRequirements,
    V1SecretKeySelector,
    V1SecurityContext,
    V1ServiceAccount,
    V1Toleration,
    V1Volume,
    V1VolumeMount,
    V1VolumeResourceRequirements,
)

from pushgen.errors import ConfigError, PushgenError

MANIFEST_DIR = Path(__file__).parent / "manifests"
KINDS = {
    "InferenceService": "V1beta1InferenceService",
    "InferenceGraph": "V1alpha1InferenceGraph",
    "ServiceAccount": "V1ServiceAccount",
    "ConfigMap": "V1ConfigMap",
    "NetworkPolicy": "V1NetworkPolicy",
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
}
IMAGE_REPO = "ghcr.io/pushgen/pushgen"  # the Dockerfile's image; CPU tag <ver>, CUDA <ver>-cuda
IMAGE_TAG = "0.1.0"
EXAMPLE_STORE = "s3://pushgen-models/pushgen"  # the checked-in example's store and version
EXAMPLE_VERSION = "v1"
MODEL_MOUNT = "/mnt/models"  # where KServe's storage initializer puts STORAGE_URI
LOG_MOUNT = "/var/lib/pushgen/serving-log"
FEATURES_MOUNT = "/var/lib/pushgen/features"
FEATURE_REPO_MOUNT = "/var/lib/pushgen/feature-repo"
TMP_MOUNT = "/tmp"
FEAST_STORES = ("sqlite", "redis", "postgres")
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
    s3_secret: str = "pushgen-s3"  # Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    s3_endpoint: str | None = None  # host[:port] of MinIO/Ceph; None: AWS
    s3_region: str = "us-east-1"
    s3_use_https: bool = True
    feast_online_store: str = "sqlite"  # sqlite (on the features volume) | redis | postgres
    feast_registry: str = f"{FEATURES_MOUNT}/registry.db"  # path on the volume, or s3://...
    feast_secret: str = (
        "pushgen-feast"  # Secret with `connection` for redis / `password` for postgres
    )
    features_claim: str = "pushgen-features"  # PVC the materialise step writes, transformer reads
    serving_log_claim: str = "pushgen-serving-log"  # PVC the serving log goes to (per pod)
    hf_hub_offline: bool = True  # False where the cluster may reach the Hugging Face hub
    ingress_namespaces: tuple[str, ...] = ("knative-serving", "istio-system")  # Knative data path
    monitoring_namespace: str | None = "monitoring"  # Prometheus scrapes from here
    liveness_delay_s: int = 600  # model loading precedes the HTTP server; never kill a loading pod
    port: int = 8080  # container port KServe routes to

    def __post_init__(self) -> None:
        check_version_uri(self.version_uri)
        if self.canary_percent is not None and not 0 <= self.canary_percent <= 100:
            raise ConfigError(f"--canary {self.canary_percent} is outside 0-100")
        if self.feast_online_store not in FEAST_STORES:
            raise ConfigError(
                f"feast online store {self.feast_online_store!r}: one of {FEAST_STORES}"
            )
        for tol in self.gpu_tolerations:
            _toleration(tol)


ManifestConfig = DeployConfig  # the name earlier code used


def check_version_uri(uri: str) -> str:
    """`<store>/versions/<version>`, never `latest`: a rollout must name what it serves."""
    parts = uri.rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] != "versions" or parts[-1] in ("", "latest"):
        raise ConfigError(
            f"version URI {uri!r} must be <store>/versions/<version> with a named version"
        )
    return uri.rstrip("/")


def _toleration(text: str) -> V1Toleration:
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


def _security() -> V1SecurityContext:
    # the image's user; nothing but the declared volumes is writable
    return V1SecurityContext(
        run_as_non_root=True,
        run_as_user=1000,
        run_as_group=1000,
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        capabilities=V1Capabilities(drop=["ALL"]),
    )


def _probe(cfg: DeployConfig, path: str, **kw: int) -> V1Probe:
    return V1Probe(http_get=V1HTTPGetAction(path=path, port=cfg.port), **kw)


def _container(
    cfg: DeployConfig,
    image: str,
    module: str,
    which: str,
    args: list[str],
    resources: dict,
    env: list[V1EnvVar],
    mounts: list[V1VolumeMount],
) -> V1Container:
    env = [V1EnvVar(name="HOME", value=TMP_MOUNT), V1EnvVar(name="TMPDIR", value=TMP_MOUNT), *env]
    return V1Container(
        name="kserve-container",
        image=image,
        command=["python", "-m", module],
        # inside a pod the server listens on every interface; locally it is 127.0.0.1
        args=[
            "--model_name",
            MODEL_NAMES[which],
            *args,
            "--host",
            "0.0.0.0",
            "--port",
            str(cfg.port),
        ],
        env=env,
        ports=[V1ContainerPort(container_port=cfg.port, protocol="TCP")],
        resources=V1ResourceRequirements(
            requests=resources["requests"], limits=resources["limits"]
        ),
        readiness_probe=_probe(cfg, "/v2/health/ready", period_seconds=10, failure_threshold=3),
        liveness_probe=_probe(
            cfg,
            "/v2/health/live",
            initial_delay_seconds=cfg.liveness_delay_s,
            period_seconds=15,
            failure_threshold=4,
            timeout_seconds=5,
        ),
        security_context=_security(),
        volume_mounts=[V1VolumeMount(name="tmp", mount_path=TMP_MOUNT), *mounts],
    )


def _isvc(
    cfg: DeployConfig,
    which: str,
    container: V1Container,
    replicas: tuple[int, int],
    bound: int,
    volumes: list[V1Volume],
    pinned: bool,
    **pod: Any,
) -> V1beta1InferenceService:
    annotations = {"serving.kserve.io/deploymentMode": "Serverless"}
    if cfg.prometheus:
        annotations.update(
            {
                "serving.kserve.io/enable-prometheus-scraping": "true",
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(cfg.port),
                "prometheus.io/path": "/metrics",
            }
        )
    labels = {"app.kubernetes.io/part-of": "pushgen"}
    if pinned:
        labels["pushgen.io/version"] = cfg.version_uri.rsplit("/", 1)[1][:63]
    return V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata=V1ObjectMeta(
            name=NAMES[which], namespace=cfg.namespace, labels=labels, annotations=annotations
        ),
        spec=V1beta1InferenceServiceSpec(
            predictor=V1beta1PredictorSpec(
                containers=[container],
                min_replicas=replicas[0],
                max_replicas=replicas[1],
                container_concurrency=bound,
                scale_metric="concurrency",
                scale_target=max(1, math.ceil(bound / 2)),
                canary_traffic_percent=cfg.canary_percent if pinned else None,
                service_account_name=cfg.service_account,
                volumes=[
                    V1Volume(name="tmp", empty_dir=V1EmptyDirVolumeSource(size_limit="1Gi")),
                    *volumes,
                ],
                **pod,
            )
        ),
    )


def feature_store_yaml(cfg: DeployConfig) -> str:
    """The transformer's Feast config: registry and online store from here, secrets from env."""
    online: dict[str, Any] = {"type": "sqlite", "path": f"{FEATURES_MOUNT}/online_store.db"}
    if cfg.feast_online_store == "redis":
        online = {"type": "redis", "connection_string": "${PUSHGEN_FEAST_CONNECTION}"}
    elif cfg.feast_online_store == "postgres":
        online = {
            "type": "postgres",
            "host": "${PUSHGEN_FEAST_PG_HOST}",
            "port": 5432,
            "database": "feast",
            "db_schema": "pushgen",
            "user": "feast",
            "password": "${PUSHGEN_FEAST_PG_PASSWORD}",
        }
    config = {
        "project": "pushgen",
        "provider": "local",
        "registry": {"path": cfg.feast_registry, "cache_ttl_seconds": 60},
        "online_store": online,
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
        "auth": {"type": "no_auth"},
    }
    head = "# pushgen's Feast store on a cluster (generated by `pushgen deploy`)\n"
    return head + yaml.safe_dump(config, sort_keys=True)


def _feast_env(cfg: DeployConfig) -> list[V1EnvVar]:
    def secret(name: str, key: str) -> V1EnvVar:
        ref = V1SecretKeySelector(name=cfg.feast_secret, key=key)
        return V1EnvVar(name=name, value_from=V1EnvVarSource(secret_key_ref=ref))

    if cfg.feast_online_store == "redis":
        return [secret("PUSHGEN_FEAST_CONNECTION", "connection")]
    if cfg.feast_online_store == "postgres":
        return [
            secret("PUSHGEN_FEAST_PG_HOST", "host"),
            secret("PUSHGEN_FEAST_PG_PASSWORD", "password"),
        ]
    return []


def store_uri(cfg: DeployConfig) -> str:
    """The artifact store the version lives in (`<store>/versions/<version>` minus the tail)."""
    return cfg.version_uri.rstrip("/").rsplit("/", 2)[0]


def _log_ship_env(cfg: DeployConfig) -> list[V1EnvVar]:
    """S3 access for shipping serving-log windows: the Secret KServe's initializer reads too."""
    if not store_uri(cfg).startswith("s3://"):
        return []

    def secret(key: str) -> V1EnvVar:
        ref = V1SecretKeySelector(name=cfg.s3_secret, key=key)
        return V1EnvVar(name=key, value_from=V1EnvVarSource(secret_key_ref=ref))

    env = [
        secret("AWS_ACCESS_KEY_ID"),
        secret("AWS_SECRET_ACCESS_KEY"),
        V1EnvVar(name="AWS_REGION", value=cfg.s3_region),
    ]
    if cfg.s3_endpoint:  # as KServe's BuildS3EnvVars reads it: a scheme given wins
        url = cfg.s3_endpoint
        if not url.startswith(("http://", "https://")):
            url = ("https://" if cfg.s3_use_https else "http://") + url
        env.append(V1EnvVar(name="PUSHGEN_S3_ENDPOINT", value=url))
    return env


def _pvc(cfg: DeployConfig, name: str, size: str) -> V1PersistentVolumeClaim:
    return V1PersistentVolumeClaim(
        api_version="v1",
        kind="PersistentVolumeClaim",
        metadata=V1ObjectMeta(
            name=name, namespace=cfg.namespace, labels={"app.kubernetes.io/part-of": "pushgen"}
        ),
        spec=V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteMany"],  # every transformer replica, and the materialise step
            resources=V1VolumeResourceRequirements(requests={"storage": size}),
        ),
    )


def _network_policy(cfg: DeployConfig) -> V1NetworkPolicy:
    peers = [
        V1NetworkPolicyPeer(
            pod_selector=V1LabelSelector(match_labels={ISVC_LABEL: NAMES["pushgen"]})
        ),
        V1NetworkPolicyPeer(
            pod_selector=V1LabelSelector(match_labels={GRAPH_LABEL: "pushgen-graph"})
        ),
    ]
    namespaces = [*cfg.ingress_namespaces]
    if cfg.monitoring_namespace:
        namespaces.append(cfg.monitoring_namespace)
    for ns in namespaces:  # Knative's activator and gateways forward every request; Prometheus
        sel = V1LabelSelector(match_labels={"kubernetes.io/metadata.name": ns})
        peers.append(V1NetworkPolicyPeer(namespace_selector=sel))
    models = V1LabelSelectorRequirement(
        key=ISVC_LABEL, operator="In", values=[NAMES["generator"], NAMES["ranker"]]
    )
    return V1NetworkPolicy(
        api_version="networking.k8s.io/v1",
        kind="NetworkPolicy",
        metadata=V1ObjectMeta(
            name="pushgen-models",
            namespace=cfg.namespace,
            labels={"app.kubernetes.io/part-of": "pushgen"},
        ),
        spec=V1NetworkPolicySpec(
            pod_selector=V1LabelSelector(match_expressions=[models]),
            policy_types=["Ingress"],
            ingress=[V1NetworkPolicyIngressRule(_from=peers)],
        ),
    )


def _service_account(cfg: DeployConfig) -> V1ServiceAccount:
    annotations = {
        "serving.kserve.io/s3-region": cfg.s3_region,
        "serving.kserve.io/s3-usehttps": "1" if cfg.s3_use_https else "0",
        "serving.kserve.io/s3-verifyssl": "1" if cfg.s3_use_https else "0",
    }
    if cfg.s3_endpoint:
        annotations["serving.kserve.io/s3-endpoint"] = cfg.s3_endpoint
    return V1ServiceAccount(
        api_version="v1",
        kind="ServiceAccount",
        metadata=V1ObjectMeta(
            name=cfg.service_account,
            namespace=cfg.namespace,
            labels={"app.kubernetes.io/part-of": "pushgen"},
            annotations=annotations,
        ),
        secrets=[V1ObjectReference(name=cfg.s3_secret)],
        automount_service_account_token=False,
    )


def build_manifests(cfg: DeployConfig | None = None) -> dict[str, Any]:
    """SDK objects by file stem (see the module docstring)."""
    cfg = cfg or DeployConfig()
    uri = check_version_uri(cfg.version_uri)
    bounds = concurrency_bounds()
    gpu = {"nvidia.com/gpu": str(cfg.generator_gpus)} if cfg.generator_gpus else {}
    required = V1EnvVar(name="PUSHGEN_REQUIRE_MANIFEST", value="1")
    generator = _container(
        cfg,
        cfg.image if gpu else cfg.cpu_image,
        "serving.generator",
        "generator",
        [
            "--model-dir",
            MODEL_MOUNT,
            "--model-root",
            MODEL_MOUNT,
            "--device",
            "cuda" if gpu else "cpu",
        ],
        {"requests": {"cpu": "4", "memory": "24Gi", **gpu}, "limits": {"memory": "32Gi", **gpu}},
        [
            V1EnvVar(name="STORAGE_URI", value=f"{uri}/generator"),
            required,
            V1EnvVar(name="HF_HUB_OFFLINE", value="1" if cfg.hf_hub_offline else "0"),
        ],
        [],
    )
    ranker = _container(
        cfg,
        cfg.cpu_image,
        "serving.ranker",
        "ranker",
        ["--model-dir", MODEL_MOUNT, "--model-root", MODEL_MOUNT],
        {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}},
        [
            V1EnvVar(name="STORAGE_URI", value=f"{uri}/ranker"),
            required,
            V1EnvVar(name="OMP_NUM_THREADS", value="2"),
        ],
        [],
    )
    pod_name = V1EnvVar(
        name="POD_NAME",
        value_from=V1EnvVarSource(field_ref=V1ObjectFieldSelector(field_path="metadata.name")),
    )
    transformer = _container(
        cfg,
        cfg.cpu_image,
        "serving.transformer",
        "pushgen",
        [
            "--generator-url",
            service_url(cfg, NAMES["generator"]),
            "--ranker-url",
            service_url(cfg, NAMES["ranker"]),
            "--feature-repo",
            FEATURE_REPO_MOUNT,
            "--log-dir",
            f"{LOG_MOUNT}/$(POD_NAME)",  # one directory per replica, no name clashes
            # closed windows (hourly) go to the store as parquet, where monitoring and
            # ingest-feedback read them; the PVC keeps the JSONL files either way
            "--log-ship-to",
            f"{store_uri(cfg)}/serving-log/$(POD_NAME)",
        ],
        {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
        [pod_name, *_feast_env(cfg), *_log_ship_env(cfg)],
        [
            V1VolumeMount(name="serving-log", mount_path=LOG_MOUNT),
            V1VolumeMount(name="features", mount_path=FEATURES_MOUNT),
            V1VolumeMount(name="feature-repo", mount_path=FEATURE_REPO_MOUNT, read_only=True),
        ],
    )
    transformer_volumes = [
        V1Volume(
            name="serving-log",
            persistent_volume_claim=V1PersistentVolumeClaimVolumeSource(
                claim_name=cfg.serving_log_claim
            ),
        ),
        V1Volume(
            name="features",
            persistent_volume_claim=V1PersistentVolumeClaimVolumeSource(
                claim_name=cfg.features_claim
            ),
        ),
        V1Volume(
            name="feature-repo", config_map=V1ConfigMapVolumeSource(name="pushgen-feature-store")
        ),
    ]
    gpu_pod: dict[str, Any] = {}
    if gpu:
        gpu_pod["tolerations"] = [_toleration(t) for t in cfg.gpu_tolerations] or None
        gpu_pod["node_selector"] = dict(cfg.gpu_node_selector) or None
    isvcs = {
        "generator": _isvc(
            cfg,
            "generator",
            generator,
            cfg.generator_replicas,
            bounds["generator"],
            [],
            True,
            **gpu_pod,
        ),
        "ranker": _isvc(cfg, "ranker", ranker, cfg.ranker_replicas, bounds["ranker"], [], True),
        "pushgen": _isvc(
            cfg,
            "pushgen",
            transformer,
            cfg.transformer_replicas,
            bounds["pushgen"],
            transformer_volumes,
            False,
        ),
    }
    graph = V1alpha1InferenceGraph(
        api_version="serving.kserve.io/v1alpha1",
        kind="InferenceGraph",
        metadata=V1ObjectMeta(
            name="pushgen-graph",
            namespace=cfg.namespace,
            labels={"app.kubernetes.io/part-of": "pushgen"},
        ),
        spec=V1alpha1InferenceGraphSpec(
            nodes={
                "root": V1alpha1InferenceRouter(
                    router_type="Sequence",
                    steps=[
                        V1alpha1InferenceStep(
                            name="generate", service_name=NAMES["generator"], data="$request"
                        ),
                        V1alpha1InferenceStep(
                            name="rank",
                            service_name=NAMES["ranker"],
                            data="$response",
                            map_predictions_to_instances=True,
                        ),
                    ],
                )
            }
        ),
    )
    config_map = V1ConfigMap(
        api_version="v1",
        kind="ConfigMap",
        metadata=V1ObjectMeta(
            name="pushgen-feature-store",
            namespace=cfg.namespace,
            labels={"app.kubernetes.io/part-of": "pushgen"},
        ),
        data={"feature_store.yaml": feature_store_yaml(cfg)},
    )
    return {
        "serviceaccount": _service_account(cfg),
        "feature-store": config_map,
        "features-pvc": _pvc(cfg, cfg.features_claim, "5Gi"),
        "serving-log-pvc": _pvc(cfg, cfg.serving_log_claim, "20Gi"),
        "networkpolicy": _network_policy(cfg),
        **isvcs,
        "graph": graph,
    }


def to_yaml(obj: Any) -> str:
    """The SDK object as Kubernetes YAML (camelCase keys, no nulls), stable key order."""
    header = "# generated by `pushgen deploy` (serving/manifests.py); do not edit by hand\n"
    return header + yaml.safe_dump(ApiClient().sanitize_for_serialization(obj), sort_keys=True)


def load_manifest(path: str | Path) -> Any:
    """Parse a manifest back into its SDK class; an unknown field anywhere is an error."""
    data = yaml.safe_load(Path(path).read_text())
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in KINDS:
        raise PushgenError(f"{path}: not a kind pushgen deploys (kind={kind!r})")
    return _from_dict(data, KINDS[kind])


def _model_class(name: str) -> Any:
    # kserve's ApiClient only knows kserve.models; the pod parts live in kubernetes.client
    import kserve.models
    import kubernetes.client.models

    for module in (kserve.models, kubernetes.client.models):
        if hasattr(module, name):
            return getattr(module, name)
    raise PushgenError(f"unknown model class {name!r} in a manifest")


def _from_dict(data: Any, type_name: str) -> Any:
    """Deserialize `data` into the openapi type `type_name`, field by field (like ApiClient)."""
    if data is None:
        return None
    if type_name.startswith("list["):
        return [_from_dict(x, type_name[5:-1]) for x in data]
    if type_name.startswith("dict("):
        value_type = type_name[5:-1].split(", ", 1)[1]
        return {k: _from_dict(v, value_type) for k, v in data.items()}
    if type_name in {"str", "int", "bool", "float", "object", "datetime", "ResourceQuantity"}:
        return data
    klass = _model_class(type_name)
    by_json = {json_key: attr for attr, json_key in klass.attribute_map.items()}
    unknown = sorted(set(data) - set(by_json))
    if unknown:
        raise PushgenError(f"unknown field(s) {unknown} for {type_name} in a manifest")
    kwargs = {by_json[k]: _from_dict(v, klass.openapi_types[by_json[k]]) for k, v in data.items()}
    return klass(**kwargs)


def write_manifests(out: str | Path = MANIFEST_DIR, cfg: DeployConfig | None = None) -> list[Path]:
    """Write every manifest under `out` (built in full first: an error writes nothing)."""
    texts = {stem: to_yaml(obj) for stem, obj in build_manifests(cfg).items()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, text in texts.items():
        path = out / f"{stem}.yaml"
        path.write_text(text)
        paths.append(path)
    return paths


def stale_manifests(out: str | Path = MANIFEST_DIR, cfg: DeployConfig | None = None) -> list[str]:
    """Names of checked-in manifests that differ from what the code generates now (or are extra)."""
    out = Path(out)
    built = {f"{stem}.yaml": to_yaml(obj) for stem, obj in build_manifests(cfg).items()}
    stale = [
        n for n, text in built.items() if not (out / n).exists() or (out / n).read_text() != text
    ]
    extra = [p.name for p in sorted(out.glob("*.yaml")) if p.name not in built]
    return stale + extra


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write the example KServe manifests")
    p.add_argument("--out", default=str(MANIFEST_DIR))
    args = p.parse_args(argv)
    for path in write_manifests(args.out):
        print(path)


if __name__ == "__main__":
    main()
