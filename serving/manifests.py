"""KServe manifests for a cluster, built from the kserve SDK's model classes and checked in.

Writes `serving/manifests/`:
- `generator.yaml`: InferenceService, custom predictor container, one GPU, model from S3
  (`STORAGE_URI` makes KServe's storage initializer download it to /mnt/models), 1..4 replicas;
- `ranker.yaml`: InferenceService, CPU predictor, model from S3, 1..8 replicas;
- `pushgen.yaml`: InferenceService running the pushgen transformer (Feast lookup, guard, serving
  log), which calls the two services above. It is a predictor container of its own because it
  fans out to two models, which KServe's one-predictor transformer slot cannot express;
- `graph.yaml`: InferenceGraph `pushgen-graph`, a Sequence generator -> ranker for callers that
  already have the caption (`mapPredictionsToInstances` turns the generator's predictions into the
  ranker's instances, which the ranker accepts).

    python -m serving.manifests [--out serving/manifests] [--storage-uri s3://models/pushgen/versions/v1]
    pushgen manifests --check       # fails if the checked-in files are stale
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
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
    V1Container,
    V1ContainerPort,
    V1EnvVar,
    V1HTTPGetAction,
    V1ObjectMeta,
    V1Probe,
    V1ResourceRequirements,
)

from pushgen.errors import PushgenError

MANIFEST_DIR = Path(__file__).parent / "manifests"
KINDS = {"InferenceService": "V1beta1InferenceService", "InferenceGraph": "V1alpha1InferenceGraph"}


@dataclass(frozen=True)
class ManifestConfig:
    """What differs between clusters; the defaults describe a typical one."""

    namespace: str = "pushgen"  # Kubernetes namespace of every object
    image: str = "ghcr.io/pushgen/pushgen-serving:0.1.0"  # image with `pip install pushgen`
    storage_uri: str = "s3://pushgen-models/versions/latest"  # registered version in the store
    feature_repo: str = (
        "/opt/pushgen/feature_repo"  # Feast repo baked into (or mounted in) the image
    )
    generator_gpus: int = 1  # nvidia.com/gpu per generator replica
    generator_replicas: tuple[int, int] = (1, 4)  # min, max
    ranker_replicas: tuple[int, int] = (1, 8)
    transformer_replicas: tuple[int, int] = (1, 4)
    port: int = 8080  # container port KServe routes to


def _container(
    cfg: ManifestConfig, module: str, args: list[str], resources: dict, env: list[V1EnvVar]
) -> V1Container:
    return V1Container(
        name="kserve-container",
        image=cfg.image,
        command=["python", "-m", module],
        # inside a pod the server must listen on every interface; locally it is 127.0.0.1
        args=[*args, "--host", "0.0.0.0", "--port", str(cfg.port)],
        env=env,
        ports=[V1ContainerPort(container_port=cfg.port, protocol="TCP")],
        resources=V1ResourceRequirements(
            requests=resources["requests"], limits=resources["limits"]
        ),
        readiness_probe=V1Probe(
            http_get=V1HTTPGetAction(path="/v2/health/ready", port=cfg.port),
            period_seconds=10,
            failure_threshold=30,  # model loading takes minutes on a cold node
        ),
    )


def _isvc(
    cfg: ManifestConfig, name: str, container: V1Container, replicas: tuple[int, int]
) -> V1beta1InferenceService:
    return V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata=V1ObjectMeta(
            name=name, namespace=cfg.namespace, labels={"app.kubernetes.io/part-of": "pushgen"}
        ),
        spec=V1beta1InferenceServiceSpec(
            predictor=V1beta1PredictorSpec(
                containers=[container], min_replicas=replicas[0], max_replicas=replicas[1]
            )
        ),
    )


def _service_url(cfg: ManifestConfig, name: str) -> str:
    return f"http://{name}-predictor.{cfg.namespace}.svc.cluster.local"


def build_manifests(cfg: ManifestConfig | None = None) -> dict[str, Any]:
    """SDK objects by file stem: generator, ranker, pushgen (InferenceServices) and graph."""
    cfg = cfg or ManifestConfig()
    store = cfg.storage_uri.rstrip("/")
    gpu = {"nvidia.com/gpu": str(cfg.generator_gpus)}
    generator = _container(
        cfg, "serving.generator",
        ["--model-dir", "/mnt/models", "--model-root", "/mnt/models", "--device", "cuda"],
        {"requests": {"cpu": "4", "memory": "24Gi", **gpu}, "limits": {"memory": "32Gi", **gpu}},
        [V1EnvVar(name="STORAGE_URI", value=f"{store}/generator")],
    )  # fmt: skip
    ranker = _container(
        cfg, "serving.ranker", ["--model-dir", "/mnt/models", "--model-root", "/mnt/models"],
        {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}},
        [V1EnvVar(name="STORAGE_URI", value=f"{store}/ranker"), V1EnvVar(name="OMP_NUM_THREADS", value="2")],
    )  # fmt: skip
    transformer = _container(
        cfg, "serving.transformer",
        ["--generator-url", _service_url(cfg, "pushgen-generator"),
         "--ranker-url", _service_url(cfg, "pushgen-ranker"),
         "--feature-repo", cfg.feature_repo, "--log-dir", "/var/log/pushgen"],
        {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
        [],
    )  # fmt: skip
    graph = V1alpha1InferenceGraph(
        api_version="serving.kserve.io/v1alpha1",
        kind="InferenceGraph",
        metadata=V1ObjectMeta(name="pushgen-graph", namespace=cfg.namespace),
        spec=V1alpha1InferenceGraphSpec(
            nodes={
                "root": V1alpha1InferenceRouter(
                    router_type="Sequence",
                    steps=[
                        V1alpha1InferenceStep(name="generate", service_name="pushgen-generator", data="$request"),
                        V1alpha1InferenceStep(name="rank", service_name="pushgen-ranker", data="$response",
                                              map_predictions_to_instances=True),
                    ],
                )
            }
        ),
    )  # fmt: skip
    return {
        "generator": _isvc(cfg, "pushgen-generator", generator, cfg.generator_replicas),
        "ranker": _isvc(cfg, "pushgen-ranker", ranker, cfg.ranker_replicas),
        "pushgen": _isvc(cfg, "pushgen", transformer, cfg.transformer_replicas),
        "graph": graph,
    }


def to_yaml(obj: Any) -> str:
    """The SDK object as Kubernetes YAML (camelCase keys, no nulls), stable key order."""
    header = "# generated by `pushgen manifests` (serving/manifests.py); do not edit by hand\n"
    return header + yaml.safe_dump(ApiClient().sanitize_for_serialization(obj), sort_keys=True)


def load_manifest(path: str | Path) -> Any:
    """Parse a manifest back into its kserve SDK class (InferenceService or InferenceGraph)."""
    data = yaml.safe_load(Path(path).read_text())
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in KINDS:
        raise PushgenError(
            f"{path}: not a KServe InferenceService or InferenceGraph (kind={kind!r})"
        )
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


def write_manifests(
    out: str | Path = MANIFEST_DIR, cfg: ManifestConfig | None = None
) -> list[Path]:
    """Write every manifest under `out`; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, obj in build_manifests(cfg).items():
        path = out / f"{stem}.yaml"
        path.write_text(to_yaml(obj))
        paths.append(path)
    return paths


def stale_manifests(out: str | Path = MANIFEST_DIR, cfg: ManifestConfig | None = None) -> list[str]:
    """Names of checked-in manifests that differ from what the code generates now."""
    out = Path(out)
    stale = []
    for stem, obj in build_manifests(cfg).items():
        path = out / f"{stem}.yaml"
        if not path.exists() or path.read_text() != to_yaml(obj):
            stale.append(path.name)
    return stale


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write the KServe manifests")
    p.add_argument("--out", default=str(MANIFEST_DIR))
    p.add_argument("--storage-uri", default=ManifestConfig.storage_uri)
    p.add_argument("--image", default=ManifestConfig.image)
    p.add_argument("--namespace", default=ManifestConfig.namespace)
    args = p.parse_args(argv)
    cfg = ManifestConfig(namespace=args.namespace, image=args.image, storage_uri=args.storage_uri)
    for path in write_manifests(args.out, cfg):
        print(path)


if __name__ == "__main__":
    main()
