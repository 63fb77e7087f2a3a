"""The generator on KServe's Hugging Face ServingRuntime (vLLM backend), over the OpenAI protocol.

`pushgen deploy --generator-runtime huggingface` writes the generator InferenceService with
`predictor.model` (modelFormat `huggingface`, runtime `kserve-huggingfaceserver`) instead of our
own container. The runtime (kserve/kserve `config/runtimes/kserve-huggingfaceserver.yaml`) runs
`python -m huggingfaceserver --model_name={{.Name}}` plus these args; its `__main__.py`
(`python/huggingfaceserver/huggingfaceserver/__main__.py`) parses kserve's model-server flags and
its own, and, with the vLLM backend, vLLM's engine and OpenAI frontend flags
(`maybe_add_vllm_cli_parser` -> `vllm.entrypoints.openai.cli_args.make_arg_parser`). It serves
`/openai/v1/completions` with every `--lora-modules` name as a model, which is what the
transformer asks (serving/completions.py).

- vLLM backend (`--backend=vllm`), base model from the release: the hub id its generator
  manifest names (`--model_id`, the pod downloads it: `--hub-online`), the release's generator
  directory at /mnt/models holding the adapter and the tokenizer (chat template included);
- the SFT adapter as a LoRA module named after the version (`--enable-lora`,
  `--lora-modules VERSION=/mnt/models`, `--max-lora-rank` from its adapter_config.json), or, with
  `--merge`, the release's merged weights (`generator/merged/`) as the model itself;
- the prefix cache on (`--enable-prefix-caching`: the K prompts share the task and caption);
- vLLM's own sampling defaults (`--generation-config=vllm`), so a request's temperature, top_p
  and seed decide, as in our generator; GPU resources, tolerations and node selector.

`runtime_arg_parser()` is a copy of the argument list those files define, for the flags written
here (each cited), so a test and `build_hf_generator` itself parse the args the way the runtime
would: an unknown flag or a bad value fails before any YAML is written.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from kserve import (
    V1beta1InferenceService,
    V1beta1InferenceServiceSpec,
    V1beta1ModelFormat,
    V1beta1ModelSpec,
    V1beta1PredictorSpec,
)
from kubernetes.client import V1EnvVar, V1ObjectMeta, V1ResourceRequirements

from pushgen.core.errors import ConfigError
from serving.deploy.config import MODEL_MOUNT, MODEL_NAMES, NAMES, DeployConfig, make_toleration

RUNTIME = "kserve-huggingfaceserver"  # config/runtimes/kserve-huggingfaceserver.yaml
MODEL_FORMAT = "huggingface"  # its supportedModelFormats
# vllm/config/lora.py (vllm 0.24.0, kserve[llm]'s pin): MaxLoRARanks
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
GENERATOR_RUNTIMES = ("pushgen", "huggingface")


@dataclass(frozen=True)
class LLMRelease:
    """A release's generator as the runtime sees it: its version and its runtimes record
    (`pushgen.generator.runtimes.describe`, kept in the release manifest under `runtimes`)."""

    version: str  # the release's version: the LoRA module's (and the OpenAI model's) name
    record: dict  # the `kserve-huggingfaceserver` entry of the runtimes record

    @property
    def base_model(self) -> str | None:
        return self.record.get("base_model")

    @property
    def lora_rank(self) -> int | None:
        adapter = self.record.get("adapter") or {}
        return adapter.get("rank")


def runtime_support(release: LLMRelease, merge: bool) -> list[str]:
    """Why the HF runtime (vLLM) cannot serve this release as asked; empty when it can."""
    rec = release.record
    if not rec.get("tokenizer"):
        return ["the generator has no tokenizer files (tokenizer.json)"]
    if merge:
        return [] if rec.get("merged") else ["--merge needs merged weights in generator/merged/"]
    problems = list(rec.get("lora_problems") or [])
    if problems and rec.get("merged"):
        problems.append("deploy with --merge to serve its merged weights")
    return problems


def lora_rank_flag(rank: int) -> int:
    """The smallest `--max-lora-rank` vLLM accepts that covers `rank`."""
    return next(r for r in MAX_LORA_RANKS if r >= rank)


def runtime_args(cfg: DeployConfig, release: LLMRelease, merge: bool) -> list[str]:
    """The args after the runtime's own `--model_name={{.Name}}` (later flags win in argparse)."""
    args = [f"--model_name={MODEL_NAMES['generator']}", "--backend=vllm"]
    if merge:
        args.append(f"--model_dir={MODEL_MOUNT}")
    else:
        assert release.base_model is not None and release.lora_rank is not None
        args += [
            f"--model_id={release.base_model}",
            f"--tokenizer={MODEL_MOUNT}",
            "--enable-lora",
            f"--lora-modules={release.version}={MODEL_MOUNT}",
            f"--max-lora-rank={lora_rank_flag(release.lora_rank)}",
        ]
    return [
        *args,
        "--enable-prefix-caching",
        "--generation-config=vllm",
        f"--max-model-len={cfg.llm_max_model_len}",
        f"--tensor-parallel-size={max(1, cfg.generator_gpus)}",
    ]


def openai_model_name(release: LLMRelease, merge: bool) -> str:
    """The `model` the transformer asks for: the LoRA module, or the served base name."""
    return MODEL_NAMES["generator"] if merge else release.version


def runtime_arg_parser() -> argparse.ArgumentParser:
    """A copy of the runtime's argument list, for the flags `runtime_args` writes.

    kserve's model-server parser is the installed one (`kserve.model_server.parser`); the rest is
    copied from huggingfaceserver's `__main__.py` (kserve/kserve python/huggingfaceserver) and
    vLLM 0.24.0's `vllm/engine/arg_utils.py` (`EngineArgs.add_cli_args`) and
    `vllm/entrypoints/openai/cli_args.py` (`FrontendArgs`), with vLLM's
    `FlexibleArgumentParser` spelling (dashes; its underscores are accepted as dashes).
    """
    from kserve.model_server import parser as kserve_parser

    p = argparse.ArgumentParser(parents=[kserve_parser], add_help=False, exit_on_error=False)
    # huggingfaceserver/__main__.py
    p.add_argument("--model_dir", default="/mnt/models")
    p.add_argument("--model_id", default=None)
    p.add_argument("--backend", default="auto", choices=["auto", "vllm", "huggingface"])
    # vllm/engine/arg_utils.py, EngineArgs.add_cli_args (model, cache, lora, parallel groups)
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--generation-config", default="auto")
    p.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction)
    p.add_argument("--enable-lora", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--max-lora-rank", type=int, choices=MAX_LORA_RANKS, default=16)
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    # vllm/entrypoints/openai/cli_args.py, FrontendArgs.lora_modules + LoRAParserAction
    p.add_argument("--lora-modules", nargs="+", default=None)
    return p


def parse_runtime_args(args: list[str]) -> argparse.Namespace:
    """`args` as the runtime parses them, or a ConfigError naming the flag it refuses."""
    parser = runtime_arg_parser()
    try:
        ns, unknown = parser.parse_known_args(["--model_name=x", *args])
    except (argparse.ArgumentError, SystemExit) as exc:
        raise ConfigError(f"the HF runtime refuses {args}: {exc}") from None
    if unknown:
        raise ConfigError(f"the HF runtime does not know {unknown}")
    for item in ns.lora_modules or []:  # LoRAParserAction: name=path (old format) or JSON
        if not ("=" in item and "," not in item):
            json.loads(item)
    return ns


def build_hf_generator(cfg: DeployConfig, release: LLMRelease, merge: bool) -> Any:
    """The generator InferenceService on the HF ServingRuntime (ConfigError if it cannot be)."""
    problems = runtime_support(release, merge)
    if problems:
        raise ConfigError(
            f"version {release.version!r} cannot run on {RUNTIME}: " + "; ".join(problems)
        )
    if cfg.generator_gpus < 1:
        raise ConfigError("the vLLM backend needs a GPU: --gpus 1 or more")
    args = runtime_args(cfg, release, merge)
    parse_runtime_args(args)
    gpu = {"nvidia.com/gpu": str(cfg.generator_gpus)}
    storage = f"{cfg.version_uri.rstrip('/')}/generator" + ("/merged" if merge else "")
    model = V1beta1ModelSpec(
        model_format=V1beta1ModelFormat(name=MODEL_FORMAT),
        runtime=RUNTIME,
        storage_uri=storage,
        args=args,
        env=[V1EnvVar(name="HF_HUB_OFFLINE", value="1" if cfg.hf_hub_offline else "0")],
        resources=V1ResourceRequirements(
            requests={"cpu": "4", "memory": "24Gi", **gpu}, limits={"memory": "32Gi", **gpu}
        ),
    )
    labels = {
        "app.kubernetes.io/part-of": "pushgen",
        "pushgen.io/version": cfg.version_uri.rsplit("/", 1)[1][:63],
    }
    return V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata=V1ObjectMeta(
            name=NAMES["generator"],
            namespace=cfg.namespace,
            labels=labels,
            annotations={"serving.kserve.io/deploymentMode": "Serverless"},
        ),
        spec=V1beta1InferenceServiceSpec(
            predictor=V1beta1PredictorSpec(
                model=model,
                min_replicas=cfg.generator_replicas[0],
                max_replicas=cfg.generator_replicas[1],
                canary_traffic_percent=cfg.canary_percent,
                service_account_name=cfg.service_account,
                tolerations=[make_toleration(t) for t in cfg.gpu_tolerations] or None,
                node_selector=dict(cfg.gpu_node_selector) or None,
            )
        ),
    )
