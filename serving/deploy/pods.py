"""InferenceServices and their containers: security context, probes, resources, tolerations."""

from __future__ import annotations

import math
from typing import Any

from kserve import (
    V1beta1InferenceService,
    V1beta1InferenceServiceSpec,
    V1beta1PredictorSpec,
)
from kubernetes.client import (
    V1Capabilities,
    V1Container,
    V1ContainerPort,
    V1EmptyDirVolumeSource,
    V1EnvVar,
    V1HTTPGetAction,
    V1ObjectMeta,
    V1Probe,
    V1ResourceRequirements,
    V1SecurityContext,
    V1Volume,
    V1VolumeMount,
)

from serving.deploy.config import MODEL_NAMES, NAMES, TMP_MOUNT, DeployConfig


def security_context() -> V1SecurityContext:
    # the image's user; nothing but the declared volumes is writable
    return V1SecurityContext(
        run_as_non_root=True,
        run_as_user=1000,
        run_as_group=1000,
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        capabilities=V1Capabilities(drop=["ALL"]),
    )


def make_probe(cfg: DeployConfig, path: str, **kw: int) -> V1Probe:
    return V1Probe(http_get=V1HTTPGetAction(path=path, port=cfg.port), **kw)


def make_container(
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
        readiness_probe=make_probe(cfg, "/v2/health/ready", period_seconds=10, failure_threshold=3),
        liveness_probe=make_probe(
            cfg,
            "/v2/health/live",
            initial_delay_seconds=cfg.liveness_delay_s,
            period_seconds=15,
            failure_threshold=4,
            timeout_seconds=5,
        ),
        security_context=security_context(),
        volume_mounts=[V1VolumeMount(name="tmp", mount_path=TMP_MOUNT), *mounts],
    )


def make_isvc(
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
        # the app's own /metrics on its port: KServe's enable-prometheus-scraping would point
        # the scrape at the queue-proxy's aggregation port (9091) instead
        # (kserve pkg/constants/constants.go: SetPrometheusAnnotation, DefaultPodPrometheusPort)
        annotations.update(
            {
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
