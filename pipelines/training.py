"""The PushGen training pipeline (KFP v2): data -> generator + ranker -> evaluation -> release.

    fingerprint -> simulate|ingest -> caption -> clean -> label -> materialize (Feast) -> SFT --\\
       plan (parts to retrain)   \\-> A/B tests ----------------------------> reward model
                                          --> evaluate -> gate (vs production) -> register

Every step is a component from `components/` running in the project image (the `image`
parameter); SFT and reward training request a GPU and memory, the rest CPU; steps that talk to
storage retry. Caching is on for the data and training steps, so a rerun resumes after the last
step that succeeded; the ingest step is keyed by the content hash of the source data (the
uncached `fingerprint` step), so new data at the same URI is read again; `plan`, `gate` and
`register` are never cached (production moves; a cached register would publish nothing).

    python -m pipelines.training                         # compile to pushgen_training.yaml
    pushgen pipeline compile --out pipeline.yaml
    pushgen pipeline run --local                         # the whole run here, tiny settings
    pushgen pipeline submit --host https://kfp.example.com --experiment pushgen

`run_local(params, pipeline_root)` runs it with kfp's local SubprocessRunner (no cluster, no image
pull: the current environment runs each step) and returns {artifact: local path}.
"""

import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kfp import compiler, dsl

from components import PUSHGEN_IMAGE
from components.caption import caption
from components.clean import clean
from components.evaluate import evaluate
from components.fingerprint import fingerprint
from components.gate import gate
from components.label import label
from components.materialize import materialize, publish_features
from components.plan import plan
from components.register import register
from components.report import report
from components.reward import reward
from components.sft import sft
from components.simulate import simulate_or_ingest
from pushgen.core.errors import ConfigError
from pushgen.core.store import is_remote
from pushgen.core.trainjob import TRAINER_RUNTIME, TrainJobSettings
from pushgen.data.categories import DEFAULT_CATEGORIES
from pushgen.generator.config import GeneratorTrainConfig
from pushgen.ranker.config import RankerTrainConfig
from serving.deploy.config import DeployConfig, make_toleration

PIPELINE_NAME = "pushgen-training"
DEFAULT_STORE = "s3://pushgen-models/pushgen"


@dataclass
class ClusterConfig:
    """Where and how the steps run on a cluster; fixed at compile time (not run parameters)."""

    gpu_type: str = "nvidia.com/gpu"  # Kubernetes extended resource for the training steps
    # Above one process in all (nodes x GPUs per node) a training step runs as a Kubeflow Trainer
    # TrainJob on `trainjob_runtime` (components/trainjob.py); at one it trains in its own pod.
    sft_nodes: int = 1
    sft_gpus_per_node: int = 1  # GPUs for LoRA SFT per node (0: CPU)
    reward_nodes: int = 1
    reward_gpus_per_node: int = 1  # GPUs for reward-model training per node (0: CPU)
    trainjob_runtime: str = TRAINER_RUNTIME
    sft_memory: str = "32G"  # an 8B base model in bf16 plus activations needs this much host RAM
    reward_memory: str = "16G"  # a BERT-300M-class cross-encoder at the default batch fits easily
    train_cpu: str = "4"  # data loading and tokenisation for the training steps
    cpu: str = "1"  # every other step is light pandas work
    memory: str = "4G"  # enough for ~1M pushes in pandas
    storage_retries: int = 3  # S3 hiccups (throttling, 5xx) should not fail a long run
    retry_backoff: str = "30s"  # first wait before a retry; doubles each time
    s3_secret: str = ""  # Kubernetes Secret with AWS_ACCESS_KEY_ID/SECRET (needs kfp-kubernetes)
    s3_endpoint: str = ""  # non-secret S3 endpoint (MinIO) given to the storage steps' env
    # the taints GPU nodes carry, tolerated by the GPU steps: the same as `pushgen deploy`'s
    gpu_tolerations: tuple[str, ...] = DeployConfig.gpu_tolerations
    feast_secret: str = ""  # Secret with `connection` (Redis) for the publish-features step

    def __post_init__(self) -> None:
        self.trainjob("sft"), self.trainjob("reward")  # bad nodes/GPUs/runtime: ConfigError

    def trainjob(self, step: str) -> TrainJobSettings:
        """Where the `sft` or `reward` step trains (nodes x GPUs per node, runtime)."""
        nodes, gpus = getattr(self, f"{step}_nodes"), getattr(self, f"{step}_gpus_per_node")
        try:
            return TrainJobSettings(nodes=nodes, gpus_per_node=gpus, runtime=self.trainjob_runtime)
        except ConfigError as exc:
            raise ConfigError(f"{step}_{exc}") from None


def _cpu_step(task: dsl.PipelineTask, cfg: ClusterConfig) -> dsl.PipelineTask:
    task.set_cpu_request(cfg.cpu).set_memory_request(cfg.memory)
    return task.set_caching_options(enable_caching=True)


def _kubernetes(what: str):
    try:
        from kfp import kubernetes
    except ImportError:
        raise ConfigError(
            f"{what} needs the kfp-kubernetes package (pip install kfp-kubernetes); "
            "or leave it empty and give the pods S3 access another way (IRSA, env)"
        ) from None
    return kubernetes


def _gpu_step(
    task: dsl.PipelineTask, cfg: ClusterConfig, gpus: int, memory: str
) -> dsl.PipelineTask:
    """Resources, the GPU and the GPU nodes' tolerations, and store credentials (the training
    steps read carried-over models and past data from the store)."""
    task.set_cpu_request(cfg.train_cpu).set_memory_request(memory).set_memory_limit(memory)
    if gpus > 0:
        task.set_accelerator_type(cfg.gpu_type).set_accelerator_limit(gpus)
        for text in cfg.gpu_tolerations:
            tol = make_toleration(text)
            _kubernetes("gpu_tolerations").add_toleration(
                task, key=tol.key, operator=tol.operator, value=tol.value, effect=tol.effect
            )
    return store_credentials(task, cfg).set_caching_options(enable_caching=True)


def _training_step(
    task: dsl.PipelineTask, cfg: ClusterConfig, step: str, memory: str, title: str
) -> dsl.PipelineTask:
    """A training step: with one process it trains in its pod (GPU requested); with more, its pod
    creates a TrainJob and waits (CPU only, store access, no retry: a rerun is a new job)."""
    jobs = cfg.trainjob(step)
    if not jobs.distributed:
        task.set_display_name(title)
        return _gpu_step(task, cfg, jobs.gpus_per_node, memory)
    task.set_display_name(
        f"{title} as a TrainJob ({jobs.nodes} x {jobs.gpus_per_node} GPUs, {jobs.runtime})"
    )
    return _storage_step(_cpu_step(task, cfg), cfg, retry=False)


def store_credentials(task: dsl.PipelineTask, cfg: ClusterConfig) -> dsl.PipelineTask:
    """S3 endpoint and credentials from the cluster (never from parameters), the same way for
    every step that touches the store."""
    if cfg.s3_endpoint:
        task.set_env_variable("PUSHGEN_S3_ENDPOINT", cfg.s3_endpoint)
    if cfg.s3_secret:
        _kubernetes("s3_secret").use_secret_as_env(
            task,
            secret_name=cfg.s3_secret,
            secret_key_to_env={
                "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
            },
        )
    return task


def _storage_step(
    task: dsl.PipelineTask, cfg: ClusterConfig, retry: bool = True
) -> dsl.PipelineTask:
    """Retries, plus S3 endpoint and credentials from the cluster (never from parameters)."""
    if retry and cfg.storage_retries > 0:
        task.set_retry(
            num_retries=cfg.storage_retries, backoff_duration=cfg.retry_backoff, backoff_factor=2.0
        )
    return store_credentials(task, cfg)


def publish_step(cfg: ClusterConfig, data, cap, cleaned, feature_repo) -> dsl.PipelineTask:
    """Materialise into the store serving reads (`feature_repo`); never cached: it writes outside
    the run, and a cached step would leave the online store as an older run left it."""
    pub = publish_features(
        videos=data.outputs["videos"],
        captions=cap.outputs["captions"],
        pushes=cleaned.outputs["cleaned"],
        feature_repo=feature_repo,
    )
    pub.set_display_name("publish features (serving's Feast store)")
    _storage_step(_cpu_step(pub, cfg), cfg).set_caching_options(enable_caching=False)
    if cfg.s3_endpoint:  # feast's S3 registry reads its endpoint here (feast/infra/registry/s3.py)
        pub.set_env_variable("FEAST_S3_ENDPOINT_URL", cfg.s3_endpoint)
    if cfg.feast_secret:
        _kubernetes("feast_secret").use_secret_as_env(
            pub,
            secret_name=cfg.feast_secret,
            secret_key_to_env={"connection": "PUSHGEN_FEAST_CONNECTION"},
        )
    return pub


def ingest_step(
    cfg: ClusterConfig, data_location, n_videos, seed
) -> tuple[dsl.PipelineTask, dsl.PipelineTask]:
    """(ingest, fingerprint): the source tables, cached by the content hash of their bytes."""
    fp = fingerprint(data_location=data_location, n_videos=n_videos, seed=seed)
    fp.set_display_name("fingerprint source data")
    _storage_step(_cpu_step(fp, cfg), cfg).set_caching_options(enable_caching=False)
    data = simulate_or_ingest(
        data_location=data_location, n_videos=n_videos, seed=seed, content_hash=fp.output
    )
    data.set_display_name("simulate or ingest")
    _storage_step(_cpu_step(data, cfg), cfg)
    return data, fp


def gate_step(
    cfg: ClusterConfig, gen, rank, cap, data, store_uri, parts, encoder, n_videos, reason
):
    """The quality gate (candidate vs production, same held-out data); never cached."""
    check = gate(
        generator=gen.outputs["generator"],
        ranker=rank.outputs["ranker"],
        captions=cap.outputs["captions"],
        pushes=data.outputs["pushes"],
        ab_tests=data.outputs["ab_tests"],
        world=data.outputs["world"],
        store_uri=store_uri,
        parts=parts,
        encoder=encoder,
        n_videos=n_videos,
        reason=reason,
    )
    check.set_display_name("quality gate")
    return _storage_step(_cpu_step(check, cfg), cfg).set_caching_options(enable_caching=False)


def build_training_pipeline(cfg: ClusterConfig | None = None, image: str | None = None):
    """The `@dsl.pipeline` for `cfg` (resources, retries, secrets are compile-time); `image` is
    the default of the run parameter of the same name."""
    cfg = cfg or ClusterConfig()
    default_image = image or PUSHGEN_IMAGE

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="PushGen: category-controlled push generator (LoRA SFT) + pairwise reward "
        "model from A/B tests, evaluated and registered to the artifact store.",
    )
    def training_pipeline(
        data_location: str = "",
        n_videos: int = 200,
        seed: int = 0,
        base_model: str = GeneratorTrainConfig.base_model,
        backbone: str = "default",
        categories: list = list(DEFAULT_CATEGORIES),  # noqa: B006 (KFP reads the default)
        captioner: str = "text",
        # the training settings' defaults are the config dataclasses' (one source with the CLI
        # and the components)
        sft_max_steps: int = GeneratorTrainConfig.max_steps,
        sft_batch_size: int = GeneratorTrainConfig.batch_size,
        reward_epochs: float = RankerTrainConfig.epochs,
        reward_batch_size: int = RankerTrainConfig.batch_size,
        reward_use_caption: bool = RankerTrainConfig.use_caption,
        store_uri: str = DEFAULT_STORE,
        version: str = "",
        retrain_part: str = "both",
        reason: str = "",
        gate_videos: int = 12,
        feature_repo: str = "",
        image: str = default_image,
        report_videos: int = 24,
    ):
        data, fp = ingest_step(cfg, data_location, n_videos, seed)
        # which parts to train; the others are carried over from the production release
        parts = plan(retrain_part=retrain_part, store_uri=store_uri)
        parts.set_display_name("plan: parts to retrain")
        _storage_step(_cpu_step(parts, cfg), cfg).set_caching_options(enable_caching=False)

        cap = caption(videos=data.outputs["videos"], captioner=captioner)
        _cpu_step(cap, cfg)
        cleaned = clean(pushes=data.outputs["pushes"], captions=cap.outputs["captions"])
        _cpu_step(cleaned, cfg)
        labelled = label(
            pushes=cleaned.outputs["cleaned"],
            captions=cap.outputs["captions"],
            categories=categories,
            backbone=backbone,
        )
        _cpu_step(labelled, cfg)
        # fresh features into Feast; SFT (and, with reward_use_caption, the ranker) read their
        # captions back through Feast
        feats = materialize(
            videos=data.outputs["videos"],
            captions=cap.outputs["captions"],
            pushes=cleaned.outputs["cleaned"],
            training_pushes=labelled.outputs["labelled"],
            ab_tests=data.outputs["ab_tests"],
        )
        feats.set_display_name("materialize (Feast)")
        _cpu_step(feats, cfg)
        pub = publish_step(cfg, data, cap, cleaned, feature_repo)

        gen = sft(
            labelled=labelled.outputs["labelled"],
            captions=feats.outputs["training_captions"],
            base_model=base_model,
            categories=categories,
            max_steps=sft_max_steps,
            batch_size=sft_batch_size,
            seed=seed,
            carry_from=parts.outputs["generator_from"],
            nodes=cfg.sft_nodes,
            gpus_per_node=cfg.sft_gpus_per_node,
            trainjob_runtime=cfg.trainjob_runtime,
            trainjob_image=image,
            store_uri=store_uri,
        )
        _training_step(gen, cfg, "sft", cfg.sft_memory, "SFT (LoRA generator)")
        rank = reward(
            ab_tests=data.outputs["ab_tests"],
            backbone=backbone,
            epochs=reward_epochs,
            batch_size=reward_batch_size,
            seed=seed,
            carry_from=parts.outputs["ranker_from"],
            captions=feats.outputs["ab_captions"],  # read through Feast by the materialize step
            use_caption=reward_use_caption,
            nodes=cfg.reward_nodes,
            gpus_per_node=cfg.reward_gpus_per_node,
            trainjob_runtime=cfg.trainjob_runtime,
            trainjob_image=image,
            store_uri=store_uri,
        )
        _training_step(rank, cfg, "reward", cfg.reward_memory, "reward model (pairwise ranker)")

        ev = evaluate(
            data_metrics=data.outputs["metrics"],
            clean_metrics=cleaned.outputs["metrics"],
            label_metrics=labelled.outputs["metrics"],
            generator_metrics=gen.outputs["metrics"],
            ranker_metrics=rank.outputs["metrics"],
        )
        _cpu_step(ev, cfg)
        check = gate_step(
            cfg, gen, rank, cap, data, store_uri, retrain_part, backbone, gate_videos, reason
        )
        reg = register(
            generator=gen.outputs["generator"],
            ranker=rank.outputs["ranker"],
            videos=data.outputs["videos"],
            captions=cap.outputs["captions"],
            summary=ev.outputs["summary"],
            report=ev.outputs["report"],
            evaluation=ev.outputs["evaluation"],
            eval_metrics=ev.outputs["metrics"],
            gate_decision=check.outputs["decision"],
            store_uri=store_uri,
            source_data_hash=data.outputs["Output"],
            version=version,
        )
        _storage_step(_cpu_step(reg, cfg), cfg).set_caching_options(enable_caching=False)
        # The run report (its HTML is the run's HTML output): data, generator, ranker, replay.
        rep = report(
            videos=data.outputs["videos"],
            pushes=data.outputs["pushes"],
            ab_tests=data.outputs["ab_tests"],
            world=data.outputs["world"],
            captions=cap.outputs["captions"],
            clean_metrics=cleaned.outputs["metrics"],
            labelled=labelled.outputs["labelled"],
            generator=gen.outputs["generator"],
            ranker=rank.outputs["ranker"],
            replay_videos=report_videos,
        )
        rep.set_display_name("report (replay + plots)")
        _cpu_step(rep, cfg)
        # The image is a run parameter: the same compiled spec runs any build of the project.
        for task in (
            fp,
            data,
            parts,
            cap,
            cleaned,
            labelled,
            feats,
            pub,
            gen,
            rank,
            ev,
            check,
            reg,
            rep,
        ):
            task.set_container_image(image)

    return training_pipeline


training_pipeline = build_training_pipeline()

# Small settings for a run on one laptop-class machine (the demo and `pipeline run --local`).
LOCAL_PARAMS: dict = {
    "n_videos": 60,
    "sft_max_steps": 8,
    "sft_batch_size": 4,
    "reward_epochs": 1.0,
    "reward_batch_size": 16,
}


def compile_pipeline(
    out_path: str | Path = "pushgen_training.yaml",
    cfg: ClusterConfig | None = None,
    image: str | None = None,
) -> Path:
    """Compile the training pipeline to KFP IR YAML at `out_path` (`image`: its default image)."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_training_pipeline(cfg, image), package_path=str(out))
    return out


def run_local(params: dict | None = None, pipeline_root: str | Path = "runs/pipeline") -> dict:
    """Run the whole pipeline on this machine; returns {"<task>/<output>": local path}.

    Uses kfp's SubprocessRunner in the current environment (no venv, no pip install, no image)
    with kfp's local cache under `pipeline_root/.kfp_cache`, so a rerun after a failure resumes
    from the steps that already succeeded. `store_uri` defaults to `pipeline_root/store`.
    """
    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    params = {**LOCAL_PARAMS, "store_uri": str(root / "store"), **(params or {})}
    known = set(training_pipeline.component_spec.inputs or {})
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(f"unknown pipeline parameter(s) {unknown}; known: {sorted(known)}")
    if not is_remote(params["store_uri"]):
        params["store_uri"] = str(Path(params["store_uri"]).resolve())
    # kfp.local honours retry policies; here a failure should surface now, not after backoffs.
    run_in_process(build_training_pipeline(ClusterConfig(storage_retries=0)), params, root)
    artifacts = collect_artifacts(root)
    (root / "last_run.json").write_text(json.dumps(artifacts, indent=2))
    return artifacts


def run_in_process(pipeline, params: dict, root: Path):
    """One run of `pipeline(**params)` with kfp's local SubprocessRunner in this environment (no
    venv, no pip install, no image), kfp's cache on, outputs under `root`; returns what the
    pipeline call returns (its outputs)."""
    from kfp import local

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        enable_caching=True,
        raise_on_error=True,
    )
    with warnings.catch_warnings():
        # The subprocess runner warns when the image name lacks "python"; locally no image runs.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        return pipeline(**params)


def collect_artifacts(root: Path, prefix: str = PIPELINE_NAME) -> dict[str, str]:
    """{"<task>/<output>": path} for the outputs of the local runs under `root`.

    Runs are read oldest to newest, so each output resolves to its newest copy; a step served
    from the cache in the last run writes nothing new and keeps the path of the run that made it.
    """
    found: dict[str, str] = {}
    runs = sorted(p for p in Path(root).iterdir() if p.is_dir() and p.name.startswith(prefix))
    for run_dir in runs:  # names end in a timestamp, so they sort by time
        for task_dir in sorted(p for p in run_dir.iterdir() if p.is_dir()):
            for out in sorted(task_dir.iterdir()):
                if out.name != "executor_output.json":
                    found[f"{task_dir.name}/{out.name}"] = str(out)
    return found


@dataclass
class CompileArgs:
    """`python -m pipelines.training [out.yaml]`: compile with the default cluster settings."""

    out: str = "pushgen_training.yaml"  # where the IR YAML goes
    cluster: ClusterConfig = field(default_factory=ClusterConfig)  # resources, secrets


def main(argv: list[str] | None = None) -> None:
    """Compile to the path given (default `pushgen_training.yaml`) and print it."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    args = CompileArgs(out=argv[0]) if argv else CompileArgs()
    path = compile_pipeline(args.out, args.cluster)
    print(f"compiled {PIPELINE_NAME} -> {path} ({json.dumps(asdict(args.cluster))[:60]}...)")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
