#!/usr/bin/env bash
# Generation on a GPU with vLLM (the engine behind KServe's Hugging Face runtime), on an
# 8B-shaped model (Llama-3-8B's config, random bf16 weights: no hub download), measuring
#   1. the OpenAI completions p50/p95 for one push request: K=8 category prompts x 24 new tokens,
#      the prompts sharing their task+caption prefix (prefix cache on), as the transformer sends;
#   2. batch throughput in items/s (each item = the K=8 prompts), as a batch_generate shard runs.
# Usage (on a machine with one NVIDIA GPU and PyPI access):
#   bash bench/gpu_generate.sh [OUT_JSON]        # default docs/results/gpu_generate.json
# Needs: python3.11+, ~40 GB disk, a GPU with >= 24 GB. Not run in CI.
set -euo pipefail
OUT=${1:-docs/results/gpu_generate.json}
WORK=${WORK:-/tmp/pushgen-gpu}
mkdir -p "$WORK"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q "vllm==0.24.0" "openai==3.60.0"   # kserve[llm] 0.21 pins vllm 0.24.0
PY="$WORK/venv/bin/python"
"$PY" - "$WORK" "$OUT" <<'PYEOF'
import json, statistics, sys, time
from pathlib import Path
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from tokenizers import Tokenizer, models, pre_tokenizers

work, out = Path(sys.argv[1]), Path(sys.argv[2])
model_dir = work / "llama8b-shaped"
if not (model_dir / "config.json").exists():
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                      max_position_embeddings=8192, rope_theta=500000.0, torch_dtype="bfloat16")
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(model_dir, safe_serialization=True)
    del model
    vocab = {f"t{i}": i for i in range(128256)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="t1", pad_token="t1").save_pretrained(model_dir)

from vllm import LLM, SamplingParams
llm = LLM(model=str(model_dir), enable_prefix_caching=True, generation_config="vllm",
          max_model_len=2048, gpu_memory_utilization=0.85)
shared = list(range(1000, 1000 + 180))          # task prompt + caption: ~180 tokens, shared
def request(i):                                 # K=8 prompts: shared prefix + a category line
    cap = [2000 + (i * 7 + j) % 5000 for j in range(40)]
    return [{"prompt_token_ids": shared + cap + [3000 + k] * 6} for k in range(8)]
greedy = SamplingParams(max_tokens=24, min_tokens=24, temperature=0.0)
for i in range(3):
    llm.generate(request(i), greedy, use_tqdm=False)     # warm-up (CUDA graphs, cache)
lat = []
for i in range(50):
    t0 = time.perf_counter(); llm.generate(request(100 + i), greedy, use_tqdm=False)
    lat.append((time.perf_counter() - t0) * 1000)
items = 512
prompts = [p for i in range(items) for p in request(10_000 + i)]
t0 = time.perf_counter(); llm.generate(prompts, greedy, use_tqdm=False); dt = time.perf_counter() - t0
q = statistics.quantiles(lat, n=20)
figures = {"gpu": torch.cuda.get_device_name(0), "model": "Llama-3-8B-shaped, bf16, random weights",
           "k": 8, "new_tokens": 24, "request_p50_ms": round(statistics.median(lat), 1),
           "request_p95_ms": round(q[18], 1), "batch_items": items,
           "batch_items_per_s": round(items / dt, 1)}
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(figures, indent=2) + "\n")
print(json.dumps(figures, indent=2))
PYEOF
