"""Which serving runtimes can serve a trained generator, from its files alone (no weights loaded).

Recorded in a release's manifest under `runtimes` (components/register.py) and read back by
`pushgen deploy --generator-runtime huggingface` (serving/deploy/llm_runtime.py):

- `pushgen`: our own generator server (serving/generator.py) serves any generator directory;
- `kserve-huggingfaceserver`: KServe's Hugging Face runtime with the vLLM backend serves
  - the SFT adapter as a LoRA module when it is a PEFT LoRA in safetensors that vLLM 0.24 loads
    (vllm/lora/peft_helper.py `validate_legal`: no `modules_to_save`, no DoRA, `bias` "none"),
    on a base model named by a hub id the pod can download;
  - merged weights when the generator directory has them (`merged/config.json`);
  and it needs the tokenizer beside the adapter (the transformer builds prompts from it; the chat
  template travels in it).

    describe_dir("runs/generator")  # {"pushgen": {...}, "kserve-huggingfaceserver": {...}}
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

HF_RUNTIME = "kserve-huggingfaceserver"
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
MAX_LORA_RANK = 512  # vllm/config/lora.py MaxLoRARanks (vllm 0.24.0), the largest


def describe(exists: Callable[[str], bool], read_json: Callable[[str], dict]) -> dict[str, Any]:
    """The runtimes record for a generator whose files `exists(name)` / `read_json(name)` read."""
    from pushgen.generator.generate import GENERATOR_MANIFEST, MERGED_SUBDIR

    manifest = read_json(GENERATOR_MANIFEST) if exists(GENERATOR_MANIFEST) else {}
    base = str(manifest.get("base_model") or "")
    hub_base = base if HUB_ID.fullmatch(base) and not base.startswith(".") else None
    adapter: dict[str, Any] | None = None
    problems: list[str] = []
    if exists("adapter_config.json"):
        cfg = read_json("adapter_config.json")
        adapter = {
            "format": "peft-" + str(cfg.get("peft_type", "?")).lower(),
            "rank": int(cfg.get("r") or 0),
            "target_modules": cfg.get("target_modules"),
            "safetensors": exists("adapter_model.safetensors"),
        }
        if str(cfg.get("peft_type", "")).upper() != "LORA":
            problems.append(f"adapter type {cfg.get('peft_type')!r} is not LoRA")
        if cfg.get("modules_to_save"):
            problems.append("vLLM only supports modules_to_save being None")
        if cfg.get("use_dora"):
            problems.append("vLLM does not support DoRA")
        if cfg.get("bias", "none") != "none":
            problems.append("vLLM does not support adapter bias")
        if adapter["rank"] > MAX_LORA_RANK:
            problems.append(f"LoRA rank {adapter['rank']} is over vLLM's {MAX_LORA_RANK}")
        if not adapter["safetensors"]:
            problems.append("the adapter is not in safetensors")
        if hub_base is None:
            problems.append("the adapter's base is not a hub model id the pod can download")
    else:
        problems.append("no LoRA adapter (adapter_config.json)")
    tokenizer = exists("tokenizer.json") or exists("tokenizer_config.json")
    template = exists("chat_template.jinja") or (
        exists("tokenizer_config.json")
        and bool(read_json("tokenizer_config.json").get("chat_template"))
    )
    merged = exists(f"{MERGED_SUBDIR}/config.json")
    modes = (["lora"] if not problems else []) + (["merged"] if merged else [])
    if not tokenizer:
        modes = []
    hf = {
        "ok": bool(modes),
        "modes": modes,
        "adapter": adapter,
        "base_model": hub_base,
        "merged": merged,
        "tokenizer": tokenizer,
        "chat_template": template,
        "lora_problems": problems,
    }
    return {"pushgen": {"ok": True}, HF_RUNTIME: hf}


def describe_dir(path: str | Path) -> dict[str, Any]:
    """`describe` for a local generator directory."""
    root = Path(path)
    return describe(
        lambda name: (root / name).exists(),
        lambda name: json.loads((root / name).read_text()),
    )
