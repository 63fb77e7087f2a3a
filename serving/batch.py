"""Batch generation: pushes for a table of items, sharded, each shard generated, guarded and ranked
the way the transformer serves one push, one result table per shard, then one merge.

- `load_items(path)`: the items table (`video_id`, `caption`); no `caption` column is an error,
  a row with an empty caption or a repeated video id is set aside with its reason (counted);
- `shard_of(items, shard, shards)`: a stable split (contiguous ranges of the sorted video ids);
- `run_shard(...)`: one shard, skipped if its table is already in the output store (a rerun resumes
  where it stopped); written under a temporary key and then moved, so a failed shard leaves
  nothing half-written; `PUSHGEN_BATCH_FAIL_SHARD=i` breaks shard i on purpose (tests);
- `merge_shards(...)`: every shard's table into `pushes.parquet`, checked item for item (none lost,
  none doubled), and `summary.json`: counts, guard rejections, category mix, per-shard time.

Per item: the category prompts the transformer builds (`CategoryPrompts`), one batched
generation of the K candidates (the engine), `clean_generation`, the guard, the ranker on the
guarded ones, and the top-scored one chosen (`serving.explore.choose`, no exploration): what
`pushgen push` answers with exploration off, for the same seed. The engine is a setting:
`transformers` (our generator, CPU or GPU) or `vllm` where vLLM is installed (offline
`vllm.LLM`, the adapter as a LoRA request, prefix caching on).

    run_shard("items.parquet", "runs/demo/models", "runs/batch", shard=0, shards=2)
    merge_shards("runs/batch", shards=2)
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pushgen.core.errors import ConfigError, PushgenError

ENGINES = ("transformers", "vllm")
FAIL_ENV = "PUSHGEN_BATCH_FAIL_SHARD"  # fault injection: this shard raises (tests)


@dataclass(frozen=True)
class BatchConfig:
    """How each item's candidates are generated (the transformer's defaults)."""

    engine: str = "transformers"
    max_new_tokens: int = 24
    temperature: float = 0.8  # sampling only when n_per_category > 1; greedy for 1
    top_p: float = 0.95
    seed: int | None = 0
    n_per_category: int = 1
    max_chars: int = 120
    dtype: str = "auto"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"engine {self.engine!r}: one of {ENGINES}")


def check_shards(shards: int) -> int:
    """`shards`, if at least 1."""
    if shards < 1:
        raise ConfigError(f"shards must be at least 1, got {shards}")
    return shards


def load_items(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(items, set aside): `video_id` + `caption` rows, sorted by video id; bad rows with a reason."""
    path = Path(path)
    if not path.exists():
        raise PushgenError(f"items table {path} does not exist")
    table = pd.read_parquet(path) if path.suffix != ".csv" else pd.read_csv(path)
    missing = [c for c in ("video_id", "caption") if c not in table.columns]
    if missing:
        raise PushgenError(
            f"items table {path} has no {missing} column(s); it needs video_id, caption"
        )
    table = table[["video_id", "caption"]].copy()
    table["video_id"] = table["video_id"].astype(str)
    caption = table["caption"].astype("string").str.strip()
    reason = pd.Series("", index=table.index, dtype=object)
    reason[caption.isna() | (caption == "")] = "empty caption"
    reason[(reason == "") & table["video_id"].duplicated()] = "repeated video_id"
    table["caption"] = caption
    rejected = table[reason != ""].assign(reason=reason[reason != ""])
    items = table[reason == ""].sort_values("video_id", kind="stable").reset_index(drop=True)
    return items, rejected.reset_index(drop=True)


def shard_of(items: pd.DataFrame, shard: int, shards: int) -> pd.DataFrame:
    """Rows of shard `shard` of `shards`: contiguous ranges of the sorted items."""
    check_shards(shards)
    if not 0 <= shard < shards:
        raise ConfigError(f"shard {shard} is outside 0..{shards - 1}")
    n = len(items)
    lo, hi = n * shard // shards, n * (shard + 1) // shards
    return items.iloc[lo:hi]


def shard_key(shard: int, shards: int) -> str:
    return f"shards/shard-{shard:05d}-of-{shards:05d}.parquet"


class Pusher:
    """Generator + guard + ranker in this process, loaded as the servers load them."""

    def __init__(self, models: str | Path, cfg: BatchConfig):
        from pushgen.generator.generate import CategoryPrompts
        from serving.generator import GeneratorModel, GeneratorServeConfig
        from serving.ranker import RankerModel, RankerServeConfig
        from serving.storage import StorageConfig, resolve_model_location

        root = Path(models)
        if not (root / "generator").is_dir() or not (root / "ranker").is_dir():
            raise PushgenError(f"{models} has no generator/ and ranker/ (a release's models)")
        storage = StorageConfig(root=root.resolve())
        self.cfg = cfg
        self.generator_dir = resolve_model_location(str(root / "generator"), storage)
        self.prompts = CategoryPrompts.from_pretrained(self.generator_dir)
        ranker_cfg = RankerServeConfig(dtype=cfg.dtype)
        self.ranker = RankerModel("ranker", root / "ranker", ranker_cfg, storage=storage)
        self.ranker.load()
        self.engine: Any
        if cfg.engine == "vllm":
            self.engine = VLLMEngine(self.generator_dir)
        else:
            gen_cfg = GeneratorServeConfig(dtype=cfg.dtype)
            gen = GeneratorModel("generator", root / "generator", gen_cfg, storage=storage)
            gen.load()
            self.engine = gen.generator  # CandidateGenerator.complete

    def candidates(self, caption: str, categories: list[str]) -> list[dict[str, Any]]:
        """The K candidates for `caption`, cleaned, guarded and scored; one of them `selected`."""
        from pushgen.generator.generate import GenerationConfig
        from pushgen.generator.guard import check_candidate
        from pushgen.generator.prompts import clean_generation
        from serving.explore import choose
        from serving.protocol import rank_request
        from serving.ranker import score_requests

        cfg, n = self.cfg, self.cfg.n_per_category
        prompt_ids = self.prompts.prompt_ids(caption, categories)
        gen_cfg = GenerationConfig(
            max_new_tokens=cfg.max_new_tokens,
            do_sample=n > 1,
            temperature=cfg.temperature if n > 1 else 1.0,
            top_p=cfg.top_p,
            seed=cfg.seed,
        )
        raw = self.engine.complete(prompt_ids, n, gen_cfg)
        rows = [c for c in categories for _ in range(n)]
        cands = []
        for category, (text, _) in zip(rows, raw, strict=True):
            text = clean_generation(text)
            verdict = check_candidate(text, caption, cfg.max_chars)
            cands.append(
                {
                    "category": category,
                    "text": text,
                    "guard_ok": verdict.ok,
                    "guard_reasons": list(verdict.reasons),
                    "score": None,
                    "selected": False,
                }
            )
        ok = [c for c in cands if c["guard_ok"]]
        if ok:
            req = rank_request({"texts": [c["text"] for c in ok], "caption": caption})
            (ranked,) = score_requests(self.ranker.ranker, [req], self.ranker.config.method)
            for c, s in zip(ok, ranked["scores"], strict=True):
                c["score"] = float(s)
        choice = choose([c["score"] for c in cands], [c["guard_ok"] for c in cands], 0.0)
        if choice.index is not None:
            cands[choice.index]["selected"] = True
        return cands


class VLLMEngine:
    """The same `complete` on vLLM's offline engine: base model + the release's adapter as a LoRA
    request, prefix caching on (the K prompts share the task and caption). Needs vllm and a GPU."""

    def __init__(self, generator_dir: Path):
        try:
            from vllm import LLM
        except ImportError:
            raise ConfigError(
                "engine 'vllm' needs vllm installed (pip install vllm); use 'transformers'"
            ) from None
        from pushgen.generator.generate import GENERATOR_MANIFEST

        manifest_path = generator_dir / GENERATOR_MANIFEST
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        merged = generator_dir / "merged"
        self.lora = None
        if (merged / "config.json").exists():
            model = str(merged)
        elif (generator_dir / "adapter_config.json").exists():
            from vllm.lora.request import LoRARequest

            model = manifest.get("base_model") or str(generator_dir)
            self.lora = LoRARequest(generator_dir.name, 1, str(generator_dir))
        else:
            model = str(generator_dir)
        self.llm = LLM(
            model=model,
            tokenizer=str(generator_dir),
            enable_lora=self.lora is not None,
            enable_prefix_caching=True,
            generation_config="vllm",
        )

    def complete(self, prompts: list[list[int]], n: int, cfg: Any) -> list[tuple[str, int]]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=n,
            temperature=cfg.temperature if cfg.do_sample else 0.0,
            top_p=cfg.top_p if cfg.do_sample else 1.0,
            seed=cfg.seed,
            max_tokens=cfg.max_new_tokens,
        )
        outs = self.llm.generate(
            [{"prompt_token_ids": p} for p in prompts], params, lora_request=self.lora
        )
        return [(c.text, len(c.token_ids)) for o in outs for c in o.outputs]


def run_shard(
    items_path: str | Path,
    models: str | Path,
    out_uri: str,
    shard: int,
    shards: int,
    cfg: BatchConfig | None = None,
    categories: list[str] | None = None,
) -> dict[str, Any]:
    """Generate one shard into `<out>/shards/`; {"shard", "items", "seconds", "skipped"}."""
    from pushgen.core.store import ArtifactStore
    from pushgen.data.categories import resolve_categories

    cfg = cfg or BatchConfig()
    store = ArtifactStore.from_uri(out_uri)
    key = shard_key(shard, shards)
    if store.exists(key):
        return {"shard": shard, "items": None, "seconds": 0.0, "skipped": True}
    if os.environ.get(FAIL_ENV) == str(shard):
        raise PushgenError(f"shard {shard} broken on purpose ({FAIL_ENV}={shard})")
    items, _ = load_items(items_path)
    part = shard_of(items, shard, shards)
    cats = list(resolve_categories(categories))
    loading = time.perf_counter()
    pusher = Pusher(models, cfg)
    started = time.perf_counter()
    rows = []
    for video_id, caption in zip(part["video_id"], part["caption"], strict=True):
        for i, c in enumerate(pusher.candidates(caption, cats)):
            rows.append({"video_id": video_id, "candidate": i, **c})
    seconds = time.perf_counter() - started
    table = pd.DataFrame(
        rows,
        columns=[
            "video_id",
            "candidate",
            "category",
            "text",
            "guard_ok",
            "guard_reasons",
            "score",
            "selected",
        ],
    )
    table["shard"] = shard
    meta = {
        "shard": shard,
        "items": int(len(part)),
        "seconds": round(seconds, 3),  # generation, guard and ranking
        "load_seconds": round(started - loading, 3),
    }
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "shard.parquet"
        table.to_parquet(local, index=False)
        store.put_json({**meta, "config": asdict(cfg)}, key.replace(".parquet", ".json"))
        store.put_file(local, key)  # last: its presence marks the shard done
    return {**meta, "skipped": False}


def merge_shards(items_path: str | Path, out_uri: str, shards: int) -> dict[str, Any]:
    """Every shard's table into `pushes.parquet` (+ `candidates.parquet`) and `summary.json`."""
    from pushgen.core.store import ArtifactStore

    store = ArtifactStore.from_uri(out_uri)
    items, rejected = load_items(items_path)
    tables, timing = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for shard in range(check_shards(shards)):
            key = shard_key(shard, shards)
            if not store.exists(key):
                raise PushgenError(f"shard {shard} of {shards} has no result ({key}); rerun it")
            tables.append(pd.read_parquet(store.get_file(key, Path(tmp) / f"{shard}.parquet")))
            timing.append(store.get_json(key.replace(".parquet", ".json")))
        cands = pd.concat(tables, ignore_index=True)
        seen = set(cands["video_id"])
        lost = sorted(set(items["video_id"]) - seen)
        extra = sorted(seen - set(items["video_id"]))
        doubled = sorted(set(cands.loc[cands.duplicated(["video_id", "candidate"]), "video_id"]))
        if lost or extra or doubled:
            raise PushgenError(
                f"merge: {len(lost)} items lost, {len(extra)} unknown, {len(doubled)} doubled "
                f"(first: {(lost + extra + doubled)[:3]})"
            )
        chosen = cands[cands["selected"]].set_index("video_id")
        pushes = items.set_index("video_id").join(chosen[["category", "text", "score"]])
        pushes = pushes.reset_index()
        pushes["reason"] = (
            pushes["text"].isna().map({True: "no candidate passed the guard", False: None})
        )
        summary = {
            "items": int(len(items)),
            "set_aside": int(len(rejected)),
            "set_aside_reasons": rejected["reason"].value_counts().to_dict()
            if len(rejected)
            else {},
            "candidates": int(len(cands)),
            "guard_rejections": int((~cands["guard_ok"]).sum()),
            "pushes": int(pushes["text"].notna().sum()),
            "no_push": int(pushes["text"].isna().sum()),
            "category_mix": pushes["category"].value_counts().to_dict(),
            "shards": [
                {k: t[k] for k in ("shard", "items", "seconds", "load_seconds")} for t in timing
            ],
        }
        for name, table in (("pushes", pushes), ("candidates", cands), ("set_aside", rejected)):
            local = Path(tmp) / f"{name}.parquet"
            table.to_parquet(local, index=False)
            store.put_file(local, f"{name}.parquet")
        store.put_json(summary, "summary.json")
    return summary
