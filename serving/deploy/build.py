"""`build_manifests(DeployConfig)`: every object of a rollout, by file stem."""

from __future__ import annotations

from typing import Any

from kserve import (
    V1alpha1InferenceGraph,
    V1alpha1InferenceGraphSpec,
    V1alpha1InferenceRouter,
    V1alpha1InferenceStep,
)
from kubernetes.client import (
    V1ConfigMap,
    V1ConfigMapVolumeSource,
    V1EmptyDirVolumeSource,
    V1EnvVar,
    V1ObjectMeta,
    V1Volume,
    V1VolumeMount,
)

from serving.deploy.config import (
    FEATURE_REPO_MOUNT,
    HF_CACHE_MOUNT,
    LOG_MOUNT,
    MODEL_MOUNT,
    NAMES,
    TMP_MOUNT,
    DeployConfig,
    check_version_uri,
    concurrency_bounds,
    make_toleration,
    service_url,
)
from serving.deploy.objects import (
    feast_env,
    feature_store_yaml,
    knative_features_patch,
    knative_flags,
    log_ship_env,
    make_network_policy,
    make_s3_secret,
    make_service_account,
    serving_log_uri,
)
from serving.deploy.pods import make_container, make_isvc


def build_manifests(cfg: DeployConfig | None = None) -> dict[str, Any]:
    """SDK objects by file stem (see the module docstring)."""
    cfg = cfg or DeployConfig()
    uri = check_version_uri(cfg.version_uri)
    bounds = concurrency_bounds()
    gpu = {"nvidia.com/gpu": str(cfg.generator_gpus)} if cfg.generator_gpus else {}
    required = V1EnvVar(name="PUSHGEN_REQUIRE_MANIFEST", value="1")
    hub_env, hub_mounts, hub_volumes = [], [], []
    if not cfg.hf_hub_offline:  # the base model downloads into a volume sized for it, not /tmp
        hub_env = [V1EnvVar(name="HF_HOME", value=HF_CACHE_MOUNT)]
        hub_mounts = [V1VolumeMount(name="hf-cache", mount_path=HF_CACHE_MOUNT)]
        size = cfg.hub_cache_size
        hub_volumes = [V1Volume(name="hf-cache", empty_dir=V1EmptyDirVolumeSource(size_limit=size))]
    generator = make_container(
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
            *hub_env,
        ],
        hub_mounts,
    )
    ranker = make_container(
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
    # the transformer builds the generator's prompts from the release's tokenizer and template
    generator_flags = ["--generator-dir", f"{uri}/generator", "--cache-dir", f"{TMP_MOUNT}/models"]
    if cfg.generator_runtime == "huggingface":
        from serving.deploy.llm_runtime import openai_model_name

        model = openai_model_name(cfg.llm_release, cfg.generator_merge)
        generator_flags += ["--generator-model", model]
    transformer = make_container(
        cfg,
        cfg.cpu_image,
        "serving.transformer",
        "pushgen",
        [
            "--generator-url",
            service_url(cfg, NAMES["generator"]),
            *generator_flags,
            "--ranker-url",
            service_url(cfg, NAMES["ranker"]),
            "--feature-repo",
            FEATURE_REPO_MOUNT,
            # open files on an emptyDir, named after the pod (its HOSTNAME, no fieldRef needed);
            # closed windows (hourly) go to the store as parquet under one prefix for the whole
            # deployment, where monitoring and ingest-feedback read every pod's windows
            "--log-dir",
            LOG_MOUNT,
            "--log-ship-to",
            serving_log_uri(cfg),
        ],
        {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
        [*feast_env(cfg), *log_ship_env(cfg)],
        [
            V1VolumeMount(name="serving-log", mount_path=LOG_MOUNT),
            V1VolumeMount(name="feature-repo", mount_path=FEATURE_REPO_MOUNT, read_only=True),
        ],
    )
    log_size = cfg.serving_log_size
    transformer_volumes = [
        V1Volume(name="serving-log", empty_dir=V1EmptyDirVolumeSource(size_limit=log_size)),
        V1Volume(
            name="feature-repo", config_map=V1ConfigMapVolumeSource(name="pushgen-feature-store")
        ),
    ]
    gpu_pod: dict[str, Any] = {}
    if gpu:
        gpu_pod["tolerations"] = [make_toleration(t) for t in cfg.gpu_tolerations] or None
        gpu_pod["node_selector"] = dict(cfg.gpu_node_selector) or None
    isvcs = {
        "generator": make_isvc(
            cfg,
            "generator",
            generator,
            cfg.generator_replicas,
            bounds["generator"],
            hub_volumes,
            True,
            **gpu_pod,
        ),
        "ranker": make_isvc(cfg, "ranker", ranker, cfg.ranker_replicas, bounds["ranker"], [], True),
        "pushgen": make_isvc(
            cfg,
            "pushgen",
            transformer,
            cfg.transformer_replicas,
            bounds["pushgen"],
            transformer_volumes,
            False,
        ),
    }
    graph: Any = None
    if cfg.generator_runtime == "huggingface":  # vLLM answers OpenAI, not our v1 graph step
        from serving.deploy.llm_runtime import build_hf_generator

        isvcs["generator"] = build_hf_generator(cfg, cfg.llm_release, cfg.generator_merge)
    else:
        graph = _graph(cfg)
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
    objects: dict[str, Any] = {
        "serviceaccount": make_service_account(cfg),
        "feature-store": config_map,
        "networkpolicy": make_network_policy(cfg),
        **isvcs,
    }
    if graph is not None:
        objects["graph"] = graph
    # not in the folder `kubectl apply -f` reads: the keys are the operator's to fill in
    if not cfg.s3_role_arn:
        objects["templates/s3-secret"] = make_s3_secret(cfg)
    # the cluster-wide Knative flags the pod specs need (GPU scheduling only); the README names them
    patch = knative_features_patch(knative_flags(gpu_pod))
    if patch is not None:
        objects["knative/config-features-patch"] = patch
    return objects


def _graph(cfg: DeployConfig) -> V1alpha1InferenceGraph:
    """InferenceGraph `pushgen-graph`: a Sequence generator -> ranker over v1."""
    return V1alpha1InferenceGraph(
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
