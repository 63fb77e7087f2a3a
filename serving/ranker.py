"""The `ranker` predictor: scores all K(K-1) candidate pairs in one batch, returns scores, win matrix, choice.

A listwise ranker (`--head listwise`) scores each request's K candidates in one pass instead;
its win matrix is sigmoid(s_i - s_j) of those scores, and the API is the same. So does a frozen
encoder with a probe or set scorer (`serving.frozen_ranker`, what a real-data release may serve).

v1: `{"instances": [{"texts": [...], "caption": "..."}]}` ->
    `{"predictions": [{"scores", "win_matrix", "chosen", "method", "model_version"}]}`
v2: input `texts` (BYTES [K]), optional `caption` (BYTES [1]);
    outputs `scores` (FP32 [K]), `win_matrix` (FP32 [K, K]), `chosen` (INT64 [1]).

With dynamic batching on, concurrent requests that arrive within `batch_wait_ms` of each other
share one forward pass (their pairs concatenated), which `bench/bench_serving.py` measures.

    python -m serving.ranker --model-dir runs/models/ranker --port 8082
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kserve.errors import InvalidInput

from pushgen.core.models import DTYPES, resolve_dtype
from serving.base import Parsed, PushgenModel
from serving.envelope import RANKER_V2
from serving.frozen_ranker import FrozenRanker, is_frozen_ranker
from serving.protocol import RankRequest, RequestLimits, rank_request
from serving.server import Overloaded, add_server_args, serve, server_config
from serving.storage import StorageConfig, check_safe_weights, model_version, resolve_model_location


@dataclass(frozen=True)
class RankerServeConfig:
    """How the ranker is served."""

    method: str = "copeland"  # how pairwise wins become a ranking (copeland | bradley_terry)
    dynamic_batching: bool = True  # merge concurrent requests into one forward pass
    batch_wait_ms: float = 2.0  # how long the first request of a batch waits for company
    max_batch_pairs: int = 1024  # stop collecting once a batch holds this many pairs
    device: str | None = None  # None: cuda when available, else cpu
    # "auto": bf16 where the hardware has bf16 matrix units (CUDA, or CPU AMX/AVX512-BF16), else
    # fp32; bench.bench_rank measures the speed and checks bf16 picks what fp32 picks
    dtype: str = "auto"


def within_budget(ranker: Any, req: RankRequest) -> RankRequest:
    """`req` with every text and the caption cut to the ranker's token budget, before pairing."""
    from pushgen.ranker.budget import cut_to_token_budget

    budget = ranker.settings.max_length  # a pair never reads more than this from either side
    texts = list(req.texts) + ([req.caption] if req.caption else [])
    cut = cut_to_token_budget(texts, ranker.tokenizer, budget)
    # built without validation, as before: a cut text may decode to "" and is still scored
    return RankRequest.model_construct(
        texts=tuple(cut[: len(req.texts)]), caption=cut[-1] if req.caption else None
    )


def score_requests(ranker: Any, requests: list[RankRequest], method: str) -> list[dict[str, Any]]:
    """Rank several requests with one `win_matrices` call (blocking): every pair of every request
    in one batch, or for a listwise ranker every request's candidate set in one pass. The
    pairwise path cuts texts to the token budget first (a listwise ranker budgets its own)."""
    from pushgen.ranker.aggregate import aggregate

    if not hasattr(ranker, "score_sets"):
        requests = [within_budget(ranker, req) for req in requests]
    wins = ranker.win_matrices([(req.texts, req.caption) for req in requests])
    results = [aggregate(win, method) for win in wins]
    return [
        {"scores": r.scores, "win_matrix": r.win_matrix, "chosen": r.chosen, "method": r.method}
        for r in results
    ]


class RankBatcher:
    """Collects concurrent rank requests for a few ms and scores them in one forward pass."""

    def __init__(self, model: RankerModel, config: RankerServeConfig):
        self.model, self.config = model, config
        self._queue: asyncio.Queue[tuple[RankRequest, asyncio.Future]] | None = None
        self._worker: asyncio.Task | None = None
        self.batch_sizes: list[int] = []  # requests per forward pass, for the benchmark
        self.pending = 0  # requests queued or being scored

    async def submit(self, req: RankRequest) -> dict[str, Any]:
        """Queue `req` for the next batch; past `max_pending` waiting requests, 503 at once."""
        if self.pending >= self.model.max_pending:
            raise Overloaded(
                f"{self.model.name} is busy: {self.pending} requests already waiting; retry later"
            )
        self.pending += 1
        try:
            return await self._submit(req)
        finally:
            self.pending -= 1

    async def _submit(self, req: RankRequest) -> dict[str, Any]:
        if self._queue is None:  # created lazily: the queue must belong to the serving loop
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._run())
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((req, fut))
        return await fut

    async def _collect(self) -> list[tuple[RankRequest, asyncio.Future]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        pairs = len(batch[0][0].texts) ** 2
        deadline = asyncio.get_running_loop().time() + self.config.batch_wait_ms / 1000
        while pairs < self.config.max_batch_pairs:
            timeout = deadline - asyncio.get_running_loop().time()
            if timeout <= 0 and self._queue.empty():
                break
            try:
                item = await asyncio.wait_for(self._queue.get(), max(timeout, 0))
            except TimeoutError:
                break
            batch.append(item)
            pairs += len(item[0].texts) ** 2
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            live = [(r, f) for r, f in batch if not f.cancelled()]
            if not live:
                continue
            self.batch_sizes.append(len(live))
            try:
                results = await self.model.run_blocking(
                    score_requests, self.model.ranker, [r for r, _ in live], self.config.method
                )
            except Exception as exc:  # a failed batch fails its requests, never the worker
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), res in zip(live, results, strict=True):
                if not fut.done():
                    fut.set_result(res)


class RankerModel(PushgenModel):
    """KServe predictor for the pairwise ranker."""

    signature = RANKER_V2

    def __init__(
        self,
        name: str,
        model_dir: str | Path,
        config: RankerServeConfig | None = None,
        limits: RequestLimits | None = None,
        storage: StorageConfig | None = None,
    ):
        super().__init__(name, limits)
        self.model_uri = str(model_dir)
        self.config = config or RankerServeConfig()
        self.storage = storage or StorageConfig(root=Path("/"))
        self.ranker: Any = None
        self.version = ""
        self.dtype = "float32"
        self.batcher = RankBatcher(self, self.config)

    def load(self) -> bool:
        from pushgen.ranker.select import PairwiseRanker

        model_dir = resolve_model_location(self.model_uri, self.storage)
        check_safe_weights(model_dir)
        # a frozen encoder + probe or set scorer (what a real-data release may serve)
        if is_frozen_ranker(model_dir):
            self.ranker = FrozenRanker.from_pretrained(model_dir, device=self.config.device)
        else:
            self.ranker = PairwiseRanker.from_pretrained(model_dir, device=self.config.device)
        self.dtype = resolve_dtype(self.config.dtype, str(self.ranker.device))
        if self.dtype == "bfloat16":
            import torch

            self.ranker.model.to(torch.bfloat16)
        self.version = model_version(model_dir)
        self.ready = True
        return self.ready

    def parse_instance(self, instance: Any) -> RankRequest:
        return rank_request(instance, self.limits)

    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Parsed:  # type: ignore[override]
        parsed = super().preprocess(payload, headers)
        pairs = sum(len(r.texts) * (len(r.texts) - 1) for r in parsed.requests)
        if pairs > self.limits.max_pairs:
            raise InvalidInput(
                f"{pairs} candidate pairs in one request; the limit is {self.limits.max_pairs} "
                "(one instance of K=16); split it into several requests"
            )
        return parsed

    async def infer(self, requests: list[RankRequest], headers=None) -> list[dict]:
        if self.config.dynamic_batching:
            results = await asyncio.gather(*(self.batcher.submit(r) for r in requests))
        else:
            results = await self.run_blocking(
                score_requests, self.ranker, requests, self.config.method
            )
        return [{**r, "model_version": self.version, "dtype": self.dtype} for r in results]

    def v2_outputs(self, result: dict) -> list[tuple[str, str, list[int], Any]]:
        k = len(result["scores"])
        flat = [x for row in result["win_matrix"] for x in row]
        return [
            ("scores", "FP32", [k], result["scores"]),
            ("win_matrix", "FP32", [k, k], flat),
            ("chosen", "INT64", [1], [result["chosen"]]),
        ]


def main(argv: list[str] | None = None) -> None:
    """Serve a ranker directory (or s3:// URI) on 127.0.0.1."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", required=True, help="ranker directory or s3:// URI")
    p.add_argument(
        "--name", "--model_name", dest="name", default="ranker", help="model name in the URL"
    )
    p.add_argument("--port", type=int, default=8082)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--model-root", default="/", help="local model paths must lie inside this")
    p.add_argument("--cache-dir", default="runs/model-cache", help="where s3:// models go")
    p.add_argument("--method", default="copeland", choices=["copeland", "bradley_terry"])
    p.add_argument("--no-batching", action="store_true", help="turn dynamic batching off")
    p.add_argument("--batch-wait-ms", type=float, default=2.0)
    p.add_argument(
        "--dtype",
        default="auto",
        choices=DTYPES,
        help="auto: bf16 where the hardware has bf16 units",
    )
    add_server_args(p)
    args = p.parse_args(argv)
    config = RankerServeConfig(
        method=args.method,
        dynamic_batching=not args.no_batching,
        batch_wait_ms=args.batch_wait_ms,
        dtype=args.dtype,
    )
    storage = StorageConfig(root=Path(args.model_root), cache_dir=Path(args.cache_dir))
    model = RankerModel(args.name, args.model_dir, config, storage=storage)
    serve(model, server_config(args))


if __name__ == "__main__":
    main()
