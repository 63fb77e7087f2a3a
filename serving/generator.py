"""The `generator` predictor: one candidate push per requested category, in one batched generate call.

Loads a trained generator directory (base model named in its manifest + LoRA adapter, merged into
the weights for inference: the base is loaded in full precision, so merging is exact) or any
causal LM directory, from a local path or an s3:// URI of the artifact store; on GPU when present.

v1: `{"instances": [{"caption": "...", "categories": [...], "n_per_category": 1}]}` ->
    `{"predictions": [{"candidates": [{"category", "text", "guard_ok", "guard_reasons"}], ...}]}`
v2: inputs `caption` (BYTES [1]), optional `categories` (BYTES [n]), parameter `n_per_category`;
    outputs `category`, `text` (BYTES [K]) and `guard_ok` (BOOL [K]).
OpenAI completions (`POST /openai/v1/completions`, serving/completions.py), as KServe's
    Hugging Face runtime serves them: `{"model", "prompt": [[token ids], ...], "n", "max_tokens",
    "temperature", "top_p", "seed"}`, answered from ONE batched generate call, the same one v1/v2
    make (`CandidateGenerator.complete`), so token-id prompts give the same text. The model is
    named `--name` or the release's version (`model_version`, the adapter's name on vLLM).

    python -m serving.generator --model-dir runs/models/generator --port 8081
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kserve.errors import InvalidInput
from openai.types import Completion

from pushgen.core.models import DTYPES, resolve_dtype
from serving.base import PushgenModel
from serving.completions import MAX_PROMPT_TOKENS, CompletionBody, CompletionModel, completion
from serving.envelope import GENERATOR_V2
from serving.protocol import GenerateRequest, RequestLimits, generate_request
from serving.server import add_server_args, serve, server_config
from serving.storage import StorageConfig, check_safe_weights, model_version, resolve_model_location


@dataclass(frozen=True)
class GeneratorServeConfig:
    """How the generator is served."""

    max_new_tokens: int = 24  # a push is one short line; longer budgets only cost latency
    # None: greedy for one candidate per category, sampling when a request asks for more (greedy
    # would repeat itself). Measured on 24 held-out simulated videos after a 90-step SFT, one per
    # category: controllability 96.9% greedy vs 82.3% sampled at T=0.8, and the categories'
    # wording no less distinct (distinct-2 0.83 vs 0.80). True/False force one way.
    do_sample: bool | None = None
    temperature: float = 0.8  # sampling temperature (when sampling)
    seed: int | None = 0  # fixed seed: the same caption gets the same candidates (cacheable)
    max_chars: int = 120  # guard length budget, also applied again by the transformer
    merge_lora: bool = True  # fold the adapter into the weights (exact for a full-precision base)
    device: str | None = None  # None: cuda when available, else cpu
    # "auto": bf16 on CUDA or on CPUs with AMX/AVX512-BF16, else fp32 (speed: bench.bench_generate)
    dtype: str = "auto"


def _local_base_model(model_dir: Path) -> Path | None:
    """The local base-model directory a trained generator's manifest names, if it names one."""
    from pushgen.generator.generate import GENERATOR_MANIFEST

    manifest = model_dir / GENERATOR_MANIFEST
    if not manifest.exists():
        return None
    base = json.loads(manifest.read_text()).get("base_model")
    return Path(base) if base and Path(base).is_dir() else None


class GeneratorModel(PushgenModel, CompletionModel):
    """KServe predictor for the category-controlled generator."""

    signature = GENERATOR_V2
    # a CPU generate takes seconds: four waiting is already a minute of queue
    max_pending = 4

    def __init__(
        self,
        name: str,
        model_dir: str | Path,
        config: GeneratorServeConfig | None = None,
        limits: RequestLimits | None = None,
        storage: StorageConfig | None = None,
    ):
        super().__init__(name, limits)
        self.model_uri = str(model_dir)
        self.config = config or GeneratorServeConfig()
        self.storage = storage or StorageConfig(root=Path("/"))
        self.generator: Any = None
        self.version = ""
        self.dtype = "float32"

    def load(self) -> bool:
        from pushgen.generator.generate import CandidateGenerator

        model_dir = resolve_model_location(self.model_uri, self.storage)
        check_safe_weights(model_dir)
        base = _local_base_model(model_dir)
        if base is not None:  # the base named by the manifest obeys the same no-pickle rule
            check_safe_weights(base)
        from pushgen.core.models import pick_device

        device = pick_device(self.config.device)
        self.dtype = resolve_dtype(self.config.dtype, device)
        self.generator = CandidateGenerator.from_pretrained(
            model_dir, device=device, dtype=self.dtype, merge=self.config.merge_lora
        )
        self.version = model_version(model_dir)
        self.ready = True
        return self.ready

    def parse_instance(self, instance: Any) -> GenerateRequest:
        return generate_request(instance, self.limits)

    def _generate(self, requests: list[GenerateRequest]) -> list[dict[str, Any]]:
        from pushgen.generator.generate import GenerationConfig

        cfg = GenerationConfig(
            max_new_tokens=self.config.max_new_tokens,
            temperature=self.config.temperature,
            seed=self.config.seed,
            max_chars=self.config.max_chars,
        )
        out = []
        for req in requests:
            budget = req.max_new_tokens or self.config.max_new_tokens
            sample = self.config.do_sample
            if sample is None:
                sample = req.n_per_category > 1
            cands = self.generator.generate(
                req.caption,
                req.categories,
                req.n_per_category,
                replace(cfg, max_new_tokens=budget, do_sample=sample),
            )
            out.append(
                {
                    "candidates": [
                        {
                            "category": c.category,
                            "text": c.text,
                            "guard_ok": c.guard_ok,
                            "guard_reasons": list(c.guard_reasons),
                        }
                        for c in cands
                    ],
                    "video_id": req.video_id,
                    "caption": req.caption,  # lets an InferenceGraph's ranker step see it
                    "model_version": self.version,
                }
            )
        return out

    async def infer(self, requests: list[GenerateRequest], headers=None) -> list[dict]:
        return await self.run_blocking(self._generate, requests)

    # --- OpenAI completions ---
    def completion_names(self) -> list[str]:
        return [self.name, self.version] if self.version else [self.name]

    def _token_prompts(self, request: CompletionBody) -> list[list[int]]:
        tokenizer = self.generator.tokenizer
        vocab = len(tokenizer)
        prompts = []
        for p in request.prompts():
            # text is tokenised as vLLM does for completions: with the tokenizer's special tokens
            ids = tokenizer(p)["input_ids"] if isinstance(p, str) else list(p)
            if len(ids) > MAX_PROMPT_TOKENS:
                raise InvalidInput(f"prompt: {len(ids)} tokens; the limit is {MAX_PROMPT_TOKENS}")
            if max(ids) >= vocab:
                raise InvalidInput(
                    f"prompt: token id {max(ids)} is not in the {vocab}-token vocabulary"
                )
            prompts.append(ids)
        return prompts

    def _complete(self, request: CompletionBody) -> Completion:
        from pushgen.generator.generate import GenerationConfig

        prompts = self._token_prompts(request)
        temperature = 1.0 if request.temperature is None else request.temperature
        max_tokens = request.max_tokens or 16
        cfg = GenerationConfig(
            max_new_tokens=max_tokens,
            do_sample=temperature > 0,  # temperature 0 is greedy, as in vLLM
            temperature=temperature or 1.0,
            top_p=1.0 if request.top_p is None else request.top_p,
            seed=request.seed,
        )
        texts = self.generator.complete(prompts, request.n or 1, cfg)
        used = sum(len(p) for p in prompts)
        return completion(request.model, texts, used, max_tokens, fingerprint=self.version)

    async def create_completion(self, request: CompletionBody) -> Completion:
        return await self.run_blocking(self._complete, request)

    def v2_outputs(self, result: dict) -> list[tuple[str, str, list[int], Any]]:
        cands = result["candidates"]
        k = len(cands)
        return [
            ("category", "BYTES", [k], [c["category"] for c in cands]),
            ("text", "BYTES", [k], [c["text"] for c in cands]),
            ("guard_ok", "BOOL", [k], [c["guard_ok"] for c in cands]),
        ]


def main(argv: list[str] | None = None) -> None:
    """Serve a generator directory (or s3:// URI) on 127.0.0.1."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", required=True, help="generator directory or s3:// URI")
    p.add_argument(
        "--name", "--model_name", dest="name", default="generator", help="model name in the URL"
    )
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--model-root", default="/", help="local model paths must lie inside this")
    p.add_argument("--cache-dir", default="runs/model-cache", help="where s3:// models go")
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="auto", choices=DTYPES)
    add_server_args(p)
    args = p.parse_args(argv)
    config = GeneratorServeConfig(
        max_new_tokens=args.max_new_tokens, device=args.device, dtype=args.dtype
    )
    storage = StorageConfig(root=Path(args.model_root), cache_dir=Path(args.cache_dir))
    serve(GeneratorModel(args.name, args.model_dir, config, storage=storage), server_config(args))


if __name__ == "__main__":
    main()
