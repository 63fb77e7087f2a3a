"""`pushgen deploy`: the Kubernetes objects that serve one registered version on a KServe cluster.

    pushgen deploy --store s3://models/pushgen --version 20260101-120000-ab12cd34 \
        --image registry.example.com/pushgen:0.1.0-cuda --cpu-image registry.example.com/pushgen:0.1.0 \
        --namespace pushgen [--canary 10] [--gpu-toleration nvidia.com/gpu:NoSchedule] --out deploy/
    kubectl apply -f deploy/     # after filling in deploy/templates/s3-secret.yaml once

The version must exist in the store with its manifest (generator and ranker inside); the objects
pin its immutable URI. A rollout is a new version with `--canary P`, a promote the same version
without it, a rollback a deploy of the previous version. Bad input writes nothing and exits 2.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add `pushgen deploy`."""
    p = sub.add_parser(
        "deploy",
        help="write the KServe InferenceServices, graph, ServiceAccount and policies for a version",
    )
    p.add_argument(
        "--store", required=True, help="artifact store: s3://bucket/prefix or a directory"
    )
    p.add_argument(
        "--version", required=True, help="registered version to serve ('latest' resolves now)"
    )
    p.add_argument("--out", required=True, help="directory the YAML files are written to")
    p.add_argument("--namespace", default="pushgen")
    p.add_argument("--image", default=None, help="generator image (default: the CUDA image)")
    p.add_argument(
        "--cpu-image", default=None, help="ranker/transformer image (default: the CPU image)"
    )
    p.add_argument(
        "--canary",
        type=int,
        default=None,
        metavar="PERCENT",
        help="traffic share of the new revision, 0-100 (omit to promote)",
    )
    p.add_argument(
        "--gpu-toleration",
        action="append",
        default=None,
        metavar="KEY[=VALUE]:EFFECT",
        help="generator toleration (repeatable; default nvidia.com/gpu:NoSchedule)",
    )
    p.add_argument(
        "--gpu-node-selector",
        action="append",
        default=[],
        metavar="LABEL=VALUE",
        help="generator nodeSelector (repeatable)",
    )
    p.add_argument(
        "--gpus", type=int, default=1, help="GPUs per generator replica (0: CPU generator)"
    )
    p.add_argument("--min-replicas", type=int, default=1, help="minReplicas of every predictor")
    p.add_argument("--s3-secret", default="pushgen-s3", help="Secret with the S3 keys")
    p.add_argument("--s3-endpoint", default=None, help="host[:port] of MinIO/Ceph (default: AWS)")
    p.add_argument("--s3-region", default="us-east-1")
    p.add_argument("--s3-no-https", action="store_true", help="plain HTTP to the S3 endpoint")
    p.add_argument(
        "--s3-role-arn", default=None, help="IRSA role for S3 (on the account; no keys needed)"
    )
    p.add_argument(
        "--feast-online-store",
        default="redis",
        help="online store the transformer replicas share (redis; Secret pushgen-feast)",
    )
    p.add_argument(
        "--ingress-namespace",
        action="append",
        default=None,
        metavar="NS",
        help="namespace of the Knative data path allowed to reach the models (repeatable; "
        "default knative-serving and istio-system; e.g. kourier-system)",
    )
    p.add_argument(
        "--monitoring-namespace",
        default="monitoring",
        help="namespace Prometheus scrapes from ('' for none)",
    )
    p.add_argument("--hub-online", action="store_true", help="let the generator reach the HF hub")
    p.add_argument(
        "--hub-cache-size",
        default="20Gi",
        help="emptyDir for the hub's cache with --hub-online (sized for the base model)",
    )
    p.add_argument(
        "--generator-runtime",
        default="pushgen",
        choices=["pushgen", "huggingface"],
        help="huggingface: KServe's HF ServingRuntime with vLLM, the adapter as a LoRA module",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="huggingface runtime: serve the release's merged weights instead of base + LoRA",
    )
    p.add_argument("--no-prometheus", action="store_true", help="no scrape annotations")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the version, build every object, then write them (nothing on any error)."""
    from dataclasses import replace

    from pushgen.core.errors import ConfigError
    from pushgen.core.store import VERSION_FILE, ArtifactStore
    from serving.deploy import DeployConfig, write_manifests

    if args.canary is not None and not 0 <= args.canary <= 100:
        raise ConfigError(f"--canary {args.canary} is outside 0-100")
    selectors = []
    for item in args.gpu_node_selector:
        label, eq, value = item.partition("=")
        if not eq or not label:
            raise ConfigError(f"--gpu-node-selector {item!r}: use LABEL=VALUE")
        selectors.append((label, value))
    store = ArtifactStore.from_uri(args.store)
    manifest = store.resolve(args.version)  # unknown version / no manifest: StoreError, exit 2
    version = manifest["version"]
    missing = [a for a in ("generator", "ranker") if a not in manifest.get("artifacts", {})]
    if missing:
        raise ConfigError(f"version {version!r} in {store.uri} has no {missing} artifact(s)")
    for name in ("generator", "ranker"):
        if not store.exists(f"versions/{version}/{name}/{VERSION_FILE}"):
            raise ConfigError(
                f"version {version!r} has no {name}/{VERSION_FILE} (registered by an older "
                "pushgen): a pod could not verify it; register it again"
            )
    base = _generator_base(store, version)
    hf = args.generator_runtime == "huggingface"
    llm = _llm_release(store, version, manifest) if hf else None
    if args.merge and llm is None:
        raise ConfigError("--merge applies to --generator-runtime huggingface only")
    if base and not args.hub_online and not args.merge:
        raise ConfigError(
            f"version {version!r}'s generator is trained on the hub model {base!r}; the pod must "
            "download it: pass --hub-online (HF_HUB_OFFLINE=0 for the generator)"
        )
    replicas = lambda top: (args.min_replicas, max(top, args.min_replicas))  # noqa: E731
    cfg = DeployConfig(
        version_uri=f"{store.uri.rstrip('/')}/versions/{version}",
        namespace=args.namespace,
        canary_percent=args.canary,
        generator_gpus=args.gpus,
        generator_replicas=replicas(4),
        ranker_replicas=replicas(8),
        transformer_replicas=replicas(4),
        gpu_node_selector=tuple(selectors),
        prometheus=not args.no_prometheus,
        s3_secret=args.s3_secret,
        s3_endpoint=args.s3_endpoint,
        s3_region=args.s3_region,
        s3_use_https=not args.s3_no_https,
        s3_role_arn=args.s3_role_arn,
        feast_online_store=args.feast_online_store,
        hf_hub_offline=not args.hub_online,
        hub_cache_size=args.hub_cache_size,
        monitoring_namespace=args.monitoring_namespace or None,
        generator_runtime=args.generator_runtime,
        llm_release=llm,
        generator_merge=args.merge,
    )
    if args.ingress_namespace is not None:
        cfg = replace(cfg, ingress_namespaces=tuple(args.ingress_namespace))
    if args.gpu_toleration is not None:
        cfg = replace(cfg, gpu_tolerations=tuple(args.gpu_toleration))
    if args.image:
        cfg = replace(cfg, image=args.image)
    if args.cpu_image:
        cfg = replace(cfg, cpu_image=args.cpu_image)
    for path in write_manifests(args.out, cfg):
        print(path)
    share = "all traffic" if args.canary is None else f"{args.canary}% of traffic (canary)"
    print(f"version {version} -> {share}; apply with: kubectl apply -f {args.out}")
    return 0


def _generator_base(store, version: str) -> str | None:
    """The Hugging Face hub id the version's generator was trained on, if it names one."""
    import re

    from pushgen.generator.generate import GENERATOR_MANIFEST

    key = f"versions/{version}/generator/{GENERATOR_MANIFEST}"
    if not store.exists(key):
        return None
    base = str(store.get_json(key).get("base_model") or "")
    return base if re.fullmatch(r"[\w.-]+/[\w.-]+", base) and not base.startswith(".") else None


def _llm_release(store, version: str, manifest: dict):  # noqa: ANN001, ANN202 - store, LLMRelease
    """The version's runtimes record: the one registered with it, else read from its files."""
    from pushgen.generator.runtimes import HF_RUNTIME, describe
    from serving.deploy.llm_runtime import LLMRelease

    record = (manifest.get("runtimes") or {}).get(HF_RUNTIME)
    if record is None:  # a release registered before runtimes were recorded
        prefix = f"versions/{version}/generator"
        record = describe(
            lambda name: store.exists(f"{prefix}/{name}"),
            lambda name: store.get_json(f"{prefix}/{name}"),
        )[HF_RUNTIME]
    return LLMRelease(version=version, record=record)
