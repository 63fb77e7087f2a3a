"""Batched multi-category generation: all categories of a caption in ONE `generate` call.

Rows are the (category, sample) pairs of one caption, left-padded into a batch. With
`share_prefix` the token prefix every row shares (the task prompt, plus the caption under the
`caption_first` order) is run through the model once and its KV cache is repeated across the
batch, so only each row's own suffix is prefilled. Every candidate goes through the guard.

    gen = CandidateGenerator.from_pretrained("runs/generator")   # a trained dir, or any HF id
    for c in gen.generate("A chef in Rome folds 5 kinds of dumplings", ["Humor", "Practical"]):
        print(c.category, c.text, c.guard_ok)
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushgen.core.errors import ConfigError, PushgenError
from pushgen.data.categories import resolve_categories
from pushgen.generator.guard import check_candidate
from pushgen.generator.prompts import (
    PromptTemplate,
    clean_generation,
    common_prefix_length,
    encode_prompt,
)

GENERATOR_MANIFEST = "pushgen_generator.json"  # written by train_generator, read by from_pretrained
MERGED_SUBDIR = "merged"  # optional base+adapter merged checkpoint inside a trained dir


@dataclass
class GenerationConfig:
    """Sampling, length budget, prompt order and guard policy for one generation call."""

    max_new_tokens: int = 32  # length budget in tokens (a push is one short line)
    min_new_tokens: int = 0  # force at least this many tokens (benchmarks: fixed-length decode)
    temperature: float = 0.8  # sampling temperature (ignored when do_sample is False)
    top_p: float = 0.95  # nucleus sampling mass (ignored when do_sample is False)
    do_sample: bool = True  # False: greedy decoding (deterministic regardless of seed)
    seed: int | None = 0  # torch seed set before sampling; None leaves the RNG alone
    prompt_order: str | None = None  # "category_first" | "caption_first"; None: the model's own
    share_prefix: bool = True  # compute the rows' common token prefix once and reuse its KV cache
    max_chars: int = 120  # guard: longer candidates are flagged
    guard: str = "flag"  # "flag": keep failing candidates marked; "drop": remove them
    repetition_penalty: float = 1.0  # >1 discourages loops in small models

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError("max_new_tokens must be at least 1")
        if self.guard not in ("flag", "drop"):
            raise ConfigError(f"guard must be 'flag' or 'drop', got {self.guard!r}")
        if self.prompt_order not in (None, "category_first", "caption_first"):
            raise ConfigError(
                f"prompt_order must be 'category_first' or 'caption_first', got {self.prompt_order!r}"
            )
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ConfigError("sampling needs temperature > 0 and 0 < top_p <= 1")


@dataclass
class Candidate:
    """One generated push and what the guard said about it."""

    category: str
    text: str
    guard_ok: bool = True
    guard_reasons: list[str] = field(default_factory=list)
    raw_text: str = ""  # the decoded generation before cleaning (for debugging)
    new_tokens: int = 0  # tokens generated for this row

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON responses and tables."""
        return dataclasses.asdict(self)


def _read_manifest(path: Path) -> dict[str, Any] | None:
    manifest = path / GENERATOR_MANIFEST
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text())


@dataclass
class CategoryPrompts:
    """A generator's prompts without its weights: tokenizer, template and category descriptions.

    What a client of an LLM server (the transformer, batch generation over the OpenAI protocol)
    needs to send the exact token ids `CandidateGenerator.generate` feeds its model.
    """

    tokenizer: Any
    template: PromptTemplate = field(default_factory=PromptTemplate)
    category_descriptions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_pretrained(cls, path_or_id: str | os.PathLike | None = None) -> CategoryPrompts:
        """From a trained generator dir (its manifest and tokenizer), or any causal LM's tokenizer."""
        from pushgen.core.models import load_tokenizer

        path = Path(path_or_id) if path_or_id is not None else None
        manifest = _read_manifest(path) if path is not None and path.is_dir() else None
        if manifest is None:
            return cls(load_tokenizer(path_or_id))
        template = PromptTemplate.from_dict(manifest["template"])
        return cls(load_tokenizer(path), template, manifest.get("categories", {}))

    def prompt_ids(self, caption: str, categories: Sequence[str]) -> list[list[int]]:
        """Token ids of each category's prompt for `caption`."""
        if not isinstance(caption, str) or not caption.strip():
            raise PushgenError("caption must be a non-empty string")
        described = resolve_categories(categories, self.category_descriptions)
        return [
            encode_prompt(self.tokenizer, self.template, caption, c, described[c])
            for c in categories
        ]


class CandidateGenerator:
    """A causal LM (optionally with a LoRA adapter) that writes one push per requested category."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        template: PromptTemplate | None = None,
        category_descriptions: dict[str, str] | None = None,
        name: str = "model",
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.template = template or PromptTemplate()
        self.category_descriptions = dict(category_descriptions or {})
        self.name = name
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    # --- loading ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | os.PathLike | None = None,
        adapter_dir: str | os.PathLike | None = None,
        device: str | None = None,
        dtype: str | None = None,
        merge: bool = True,
    ) -> CandidateGenerator:
        """Load a trained generator dir (it names its base), or any HF causal LM id or path.

        `adapter_dir` adds a LoRA adapter to a plain base; `merge` folds it into the weights so
        generation runs at base-model speed. None/'default' is the packaged SmolLM2.
        """
        from pushgen.core.models import load_causal_lm, load_tokenizer

        template, descriptions = PromptTemplate(), {}
        base: str | os.PathLike | None = path_or_id
        path = Path(path_or_id) if path_or_id is not None else None
        manifest = _read_manifest(path) if path is not None and path.is_dir() else None
        tokenizer_source: str | os.PathLike | None = None
        if manifest is not None:
            template = PromptTemplate.from_dict(manifest["template"])
            descriptions = manifest.get("categories", {})
            tokenizer_source = path
            if merge and (path / MERGED_SUBDIR / "config.json").exists():
                base, adapter_dir = path / MERGED_SUBDIR, None
            else:
                base, adapter_dir = manifest["base_model"], adapter_dir or path
        model, tokenizer = load_causal_lm(base, device=device, dtype=dtype)
        if tokenizer_source is not None:
            tokenizer = load_tokenizer(tokenizer_source)
        if adapter_dir is not None:
            model = _attach_adapter(model, Path(adapter_dir), merge)
        name = str(path_or_id if path_or_id is not None else "default")
        return cls(model, tokenizer, template, descriptions, name=name)

    # --- generation ------------------------------------------------------------------------
    def _descriptions(self, categories: Sequence[str]) -> dict[str, str]:
        return resolve_categories(categories, self.category_descriptions)

    def _template_for(self, cfg: GenerationConfig) -> PromptTemplate:
        if cfg.prompt_order is None or cfg.prompt_order == self.template.order:
            return self.template
        return dataclasses.replace(self.template, order=cfg.prompt_order)

    def prompt_ids(
        self, caption: str, categories: Sequence[str], cfg: GenerationConfig | None = None
    ) -> list[list[int]]:
        """Token ids of each category's prompt for `caption` (what `generate` feeds the model)."""
        cfg = cfg or GenerationConfig()
        prompts = CategoryPrompts(
            self.tokenizer, self._template_for(cfg), self.category_descriptions
        )
        return prompts.prompt_ids(caption, categories)

    def complete(
        self, prompts: list[list[int]], n: int = 1, config: GenerationConfig | None = None
    ) -> list[tuple[str, int]]:
        """(raw text, new tokens) for `n` continuations of each prompt, prompt by prompt, from ONE
        batched `generate` call: what `generate` decodes, and what the OpenAI completions route
        (serving/completions.py) answers for token-id prompts."""
        cfg = config or GenerationConfig()
        if n < 1:
            raise ConfigError("n_per_category must be at least 1")
        if not prompts or any(not p for p in prompts):
            raise PushgenError("give at least one non-empty prompt")
        rows = [p for p in prompts for _ in range(n)]
        prefix_len = common_prefix_length(prompts) if cfg.share_prefix else 0
        prefix_len = min(prefix_len, min(len(p) for p in prompts) - 1)  # keep >= 1 own token
        return self._generate_rows(rows, prefix_len, cfg)

    def generate(
        self,
        caption: str,
        categories: Sequence[str],
        n_per_category: int = 1,
        config: GenerationConfig | None = None,
    ) -> list[Candidate]:
        """`n_per_category` candidates for each category, from ONE batched `generate` call."""
        cfg = config or GenerationConfig()
        if not isinstance(caption, str) or not caption.strip():
            raise PushgenError("caption must be a non-empty string")
        if n_per_category < 1:
            raise ConfigError("n_per_category must be at least 1")
        categories = list(categories)
        prompts = self.prompt_ids(caption, categories, cfg)
        row_categories = [c for c in categories for _ in range(n_per_category)]
        outputs = self.complete(prompts, n_per_category, cfg)
        candidates = []
        for category, (raw, n_tokens) in zip(row_categories, outputs, strict=True):
            text = clean_generation(raw)
            verdict = check_candidate(text, caption, cfg.max_chars)
            candidates.append(Candidate(category, text, verdict.ok, verdict.reasons, raw, n_tokens))
        if cfg.guard == "drop":
            candidates = [c for c in candidates if c.guard_ok]
        return candidates

    def generate_many(
        self,
        captions: Sequence[str],
        categories: Sequence[str],
        n_per_category: int = 1,
        config: GenerationConfig | None = None,
        progress: bool = True,
    ) -> list[list[Candidate]]:
        """`generate` for each caption (one batched call per caption), with a progress bar."""
        from tqdm.auto import tqdm

        bar = tqdm(captions, desc="generating", unit="caption", disable=None if progress else True)
        return [self.generate(c, categories, n_per_category, config) for c in bar]

    def _generate_rows(
        self, rows: list[list[int]], prefix_len: int, cfg: GenerationConfig
    ) -> list[tuple[str, int]]:
        """Decode each row's continuation; rows share their first `prefix_len` tokens."""
        import torch

        device = self.model.device
        pad_id = self.tokenizer.pad_token_id
        suffixes = [r[prefix_len:] for r in rows]
        width = max(len(s) for s in suffixes)
        # Left-pad the suffixes: the pad sits between the shared prefix and each row's own tokens;
        # the attention mask hides it and position ids are derived from the mask, so every row
        # sees exactly its own prompt.
        suffix_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        suffix_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, s in enumerate(suffixes):
            suffix_ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            suffix_mask[i, width - len(s) :] = 1
        prefix = torch.tensor([rows[0][:prefix_len]] * len(rows), dtype=torch.long)
        input_ids = torch.cat([prefix, suffix_ids], dim=1).to(device)
        attention_mask = torch.cat([torch.ones_like(prefix), suffix_mask], dim=1).to(device)
        kwargs: dict[str, Any] = {}
        if prefix_len > 0:
            kwargs["past_key_values"] = self._prefix_cache(rows[0][:prefix_len], len(rows))
        if cfg.seed is not None:
            torch.manual_seed(cfg.seed)
        sampling = (
            {"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": 0}
            if cfg.do_sample
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=cfg.max_new_tokens,
                min_new_tokens=cfg.min_new_tokens or None,
                pad_token_id=pad_id,
                eos_token_id=self.tokenizer.eos_token_id,
                repetition_penalty=cfg.repetition_penalty,
                **sampling,
                **kwargs,
            )
        new = out[:, input_ids.shape[1] :].cpu()
        results = []
        for row in new:
            tokens = row.tolist()
            if self.tokenizer.eos_token_id in tokens:
                tokens = tokens[: tokens.index(self.tokenizer.eos_token_id)]
            results.append((self.tokenizer.decode(tokens, skip_special_tokens=True), len(tokens)))
        return results

    def _prefix_cache(self, prefix: list[int], batch_size: int) -> Any:
        """KV cache of the shared prefix, computed for one row and repeated for the batch."""
        import torch
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        ids = torch.tensor([prefix], dtype=torch.long, device=self.model.device)
        with torch.inference_mode():
            self.model(input_ids=ids, past_key_values=cache, use_cache=True)
        cache.batch_repeat_interleave(batch_size)
        return cache


def _attach_adapter(model: Any, adapter_dir: Path, merge: bool) -> Any:
    """Wrap `model` with the LoRA adapter in `adapter_dir`; merged into the weights if asked."""
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").exists():
        raise PushgenError(f"no LoRA adapter in {adapter_dir} (adapter_config.json missing)")
    model = PeftModel.from_pretrained(model, adapter_dir)
    return model.merge_and_unload() if merge else model
