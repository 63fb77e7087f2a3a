"""The `pushgen` transformer: video id -> Feast caption -> generator -> guard -> ranker -> one push.

For `{video_id}` it reads the caption (and video features) from Feast's online store; a caption
may also be given directly. It asks the generator for one candidate per category over the OpenAI
completions protocol (one request, the K category prompts as token ids built from the release's
tokenizer and template, the model named by the release: our CPU generator and KServe's vLLM
runtime answer it alike, serving/completions.py), drops the
candidates the guard rejects (invented names or numbers, over length), asks the ranker to rank the
rest, serves the top one (or, for a share `explore_epsilon` of requests, a uniformly drawn guarded
one: serving/explore.py), logs every candidate, its score, the chosen index and its propensity to
the serving log, and answers:

    {"request_id", "video_id", "text", "category", "score", "alternatives": [...],
     "degraded": false, "explored": false, "propensity", "model_version", "timings_ms": {...}}

Faults: an unknown video is a 404; a generator that is down is a 503; a ranker that is down is a
503 too, unless `degrade_without_ranker` is set, in which case the first guarded candidate is
served with `degraded: true` (and logged so). No candidate passing the guard is a 200 with
`text: null` and the reasons: nothing unsafe is ever served. Upstream calls have short timeouts
inside an overall request deadline, a circuit breaker per upstream fails fast while one is down
(before any generation is spent), readiness reports a dead upstream, and 503 messages name the
upstream, never its URL or body (see `serving.upstream`). `x-request-id` is validated (400) and
never served twice (409).

    python -m serving.transformer --generator-url http://127.0.0.1:8081 \
        --generator-dir runs/demo/models/generator \
        --ranker-url http://127.0.0.1:8082 --feature-repo runs/demo/feature_repo --port 8080
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from kserve.errors import InvalidInput

from pushgen.data.categories import DEFAULT_CATEGORIES
from pushgen.data.simulator import true_style
from serving.base import PushgenModel
from serving.envelope import PUSH_V2
from serving.explore import DEFAULT_EPSILON, choose, log_rows, request_rng
from serving.gate import IN_INFERENCE
from serving.protocol import PushRequest, RequestLimits, push_request
from serving.server import (
    NotFoundError,
    ServerConfig,
    UpstreamUnavailable,
    add_server_args,
    serve,
    server_config,
)
from serving.serving_log import ServingLog, ServingLogConfig
from serving.upstream import CircuitBreaker, RequestIds, Upstream


@dataclass(frozen=True)
class TransformerConfig:
    """Where the predictors and the feature store are, and how faults are handled."""

    generator_url: str = "http://127.0.0.1:8081"  # base URL of the generator ModelServer
    ranker_url: str = "http://127.0.0.1:8082"  # base URL of the ranker ModelServer
    generator_name: str = "generator"  # model names in their URLs
    ranker_name: str = "ranker"
    # the generator release (dir or s3:// URI): its tokenizer and prompt template build the prompts
    generator_dir: str | None = None
    generator_model: str | None = None  # OpenAI `model`: None = the release's model_version
    max_new_tokens: int = 24  # generation budget per candidate (GeneratorServeConfig's)
    temperature: float = 0.8  # sampling when n_per_category > 1 (greedy for 1, as the generator)
    top_p: float = 0.95
    seed: int | None = 0  # the same caption gets the same candidates
    model_root: Path = Path("/")  # local generator dirs must lie inside this
    cache_dir: Path = Path("runs/model-cache")  # where an s3:// generator's tokenizer goes
    feature_repo: Path | None = None  # Feast repo; None: only direct captions are accepted
    deadline_s: float = 45.0  # a whole request, every step included; past it: 503
    generator_timeout_s: float = 40.0  # one generator call (a queued CPU generation: seconds)
    ranker_timeout_s: float = 5.0  # one ranker call (one forward pass, tens of ms)
    connect_timeout_s: float = 1.0  # TCP connect to an upstream on the cluster network
    breaker_failures: int = 3  # consecutive upstream failures that open its circuit
    breaker_cooldown_s: float = 5.0  # fail fast this long, then let one trial call through
    degrade_without_ranker: bool = False  # ranker down: serve the first guarded candidate, flagged
    max_chars: int = 120  # guard length budget
    explore_epsilon: float = DEFAULT_EPSILON  # share of requests serving a random guarded candidate
    log: ServingLogConfig = field(default_factory=ServingLogConfig)


class FeatureLookup:
    """Caption and video features from Feast's online store (blocking; run off the loop)."""

    def __init__(self, repo: Path):
        self.repo = repo
        self._store: Any = None

    def open(self) -> None:
        """Open the store now, so a bad repo fails at start-up rather than on the first request."""
        from pushgen.features.feast_store import check_serving_features, open_store

        if self._store is None:  # opened once: the registry is cached for cache_ttl_seconds
            store = open_store(self.repo)
            check_serving_features(store)  # an empty registry fails start-up, not every request
            self._store = store

    def video(self, video_id: str) -> dict[str, Any]:
        from pushgen.features.feast_store import VideoNotFoundError, get_online_video_features

        self.open()
        try:
            return get_online_video_features(self._store, [video_id])[video_id]
        except VideoNotFoundError as exc:
            raise NotFoundError(
                f"video_id {video_id!r} is not in the feature store: {exc}"
            ) from None


class PushgenTransformer(PushgenModel):
    """The end-to-end push model: a KServe transformer chaining generator and ranker."""

    signature = PUSH_V2
    max_inflight = 4  # requests the gate admits at once; more get 503 `busy` (serving/gate.py)

    def __init__(
        self,
        name: str,
        config: TransformerConfig | None = None,
        limits: RequestLimits | None = None,
    ):
        super().__init__(name, limits)
        self.config = config or TransformerConfig()
        self.features = (
            FeatureLookup(self.config.feature_repo) if self.config.feature_repo else None
        )
        self.log: ServingLog | None = None
        self.prompts: Any = None  # pushgen.generator.generate.CategoryPrompts, set by load()
        self.generator_model = self.config.generator_model or ""
        self.request_ids = RequestIds()
        cfg = self.config
        key = ServerConfig().resolved_api_key()  # the same Secret guards the upstreams

        def upstream(which: str, url: str, model: str, timeout_s: float) -> Upstream:
            breaker = CircuitBreaker(cfg.breaker_failures, cfg.breaker_cooldown_s)
            return Upstream(which, url, model, timeout_s, cfg.connect_timeout_s, breaker, key)

        self.generator = upstream(
            "generator", cfg.generator_url, cfg.generator_name, cfg.generator_timeout_s
        )
        self.ranker = upstream("ranker", cfg.ranker_url, cfg.ranker_name, cfg.ranker_timeout_s)

    def load(self) -> bool:
        if self.features is not None:
            self.features.open()
        self._load_prompts()
        self.log = ServingLog(self.config.log)
        self.ready = True
        return self.ready

    def _load_prompts(self) -> None:
        """The release's tokenizer and template (no weights), and the model name to ask for."""
        from pushgen.core.errors import ConfigError
        from pushgen.generator.generate import CategoryPrompts
        from serving.storage import StorageConfig, model_version, resolve_model_location

        if not self.config.generator_dir:
            raise ConfigError(
                "the transformer needs --generator-dir (the generator release) to build prompts"
            )
        storage = StorageConfig(root=self.config.model_root, cache_dir=self.config.cache_dir)
        local = resolve_model_location(self.config.generator_dir, storage)
        self.prompts = CategoryPrompts.from_pretrained(local)
        self.generator_model = self.config.generator_model or model_version(local)

    async def _generate(
        self, caption: str, categories: list[str], n: int, started: float
    ) -> tuple[list[dict[str, Any]], str]:
        """One OpenAI completions request for the K category prompts: (candidates, version)."""
        from pushgen.generator.prompts import clean_generation

        assert self.prompts is not None
        prompt_ids = self.prompts.prompt_ids(caption, categories)
        cfg = self.config
        answer = await self.generator.complete(
            {
                "model": self.generator_model,
                "prompt": prompt_ids,
                "n": n,
                "max_tokens": cfg.max_new_tokens,
                # greedy for one candidate per category, sampling for more (GeneratorServeConfig)
                "temperature": 0.0 if n == 1 else cfg.temperature,
                "top_p": cfg.top_p,
                "seed": cfg.seed,
            },
            self._remaining(started),
        )
        rows = [c for c in categories for _ in range(n)]
        choices = sorted(answer["choices"], key=lambda c: c["index"])
        if len(choices) != len(rows):
            raise UpstreamUnavailable(
                f"the generator answered {len(choices)} completions for {len(rows)} prompts"
            )
        cands = [
            {"category": c, "text": clean_generation(ch["text"])}
            for c, ch in zip(rows, choices, strict=True)
        ]
        return cands, answer.get("system_fingerprint") or answer["model"]

    def parse_instance(self, instance: Any) -> PushRequest:
        return push_request(instance, self.limits)

    async def healthy(self) -> bool:
        """Ready only while the upstreams it needs answer ready (the ranker not, when degrading).

        kserve asks this before every predict too; there the upstreams' own answers (and their
        circuit breakers) decide, so only readiness probes pay for the upstream checks.
        """
        if IN_INFERENCE.get():
            return self.ready
        if not self.ready or not await self.generator.ready():
            return False
        return self.config.degrade_without_ranker or await self.ranker.ready()

    def _remaining(self, started: float) -> float:
        return self.config.deadline_s - (time.monotonic() - started)

    async def _caption(self, req: PushRequest) -> tuple[str, str, str | None]:
        """(video_id, caption, topic from Feast or None)."""
        if req.caption is not None:
            video_id = (
                req.video_id or "caption:" + hashlib.sha1(req.caption.encode()).hexdigest()[:12]
            )
            return video_id, req.caption, None
        assert req.video_id is not None
        if self.features is None:
            raise InvalidInput(
                "this server has no feature store; send 'caption' instead of 'video_id'"
            )
        row = await self.run_blocking(self.features.video, req.video_id)
        caption = str(row["caption"])[: self.limits.max_caption_chars]
        return req.video_id, caption, row.get("topic")

    async def _push(self, req: PushRequest, request_id: str, started: float) -> dict[str, Any]:
        from pushgen.generator.guard import check_candidate

        # fail fast, before any generation is spent, while an upstream we need is known down
        self.generator.check_open()
        if not self.config.degrade_without_ranker:
            self.ranker.check_open()
        timings: dict[str, float] = {}
        t0 = t_request = time.perf_counter()
        video_id, caption, topic = await self._caption(req)
        timings["feast"] = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        # by default the styles the served generator was trained on (all of them for an untrained one)
        categories = list(
            req.categories or self.prompts.category_descriptions or DEFAULT_CATEGORIES
        )
        generated, gen_version = await self._generate(
            caption, categories, req.n_per_category, started
        )
        timings["generate"] = (time.perf_counter() - t0) * 1000

        cands = []
        for c in generated:
            verdict = check_candidate(c["text"], caption, self.config.max_chars)
            cands.append(
                {
                    "category": c["category"],
                    "text": c["text"],
                    "score": None,
                    "guard_ok": verdict.ok,
                    "guard_reasons": verdict.reasons,
                    "selected": False,
                    # the style the text is written in (cue phrases; "none": no cue), logged so
                    # the monitor sees a collapse the requested category hides
                    "style": true_style(c["text"]) or "none",
                    "win_prob": None,
                }
            )
        ok = [c for c in cands if c["guard_ok"]]
        degraded, reason, rank_version = False, None, None
        t0 = time.perf_counter()
        if ok:
            try:
                ranked = await self.ranker.predict(
                    {"texts": [c["text"] for c in ok], "caption": caption},
                    self._remaining(started),
                )
                for c, s in zip(ok, ranked["scores"], strict=True):
                    c["score"] = float(s)
                wins = ranked.get("win_matrix")
                if wins is not None and len(ok) > 1:  # mean P(beats each other candidate)
                    w = np.asarray(wins, float)
                    for i, c in enumerate(ok):
                        c["win_prob"] = float((w[i].sum() - w[i, i]) / (len(ok) - 1))
                rank_version = ranked.get("model_version")
            except UpstreamUnavailable as exc:
                if not self.config.degrade_without_ranker:
                    raise
                degraded, reason = True, str(exc)
        else:
            reason = "no candidate passed the guard"
        timings["rank"] = (time.perf_counter() - t0) * 1000
        # exploration (serving/explore.py): a share epsilon serves a uniformly drawn guarded one
        choice = choose(
            [c["score"] for c in cands],
            [c["guard_ok"] for c in cands],
            self.config.explore_epsilon,
            request_rng(request_id),
            degraded,
        )
        chosen = cands[choice.index] if choice.index is not None else None
        if chosen is not None:
            chosen["selected"] = True
        version = f"{gen_version}+{rank_version or 'none'}"
        timings["total"] = (time.perf_counter() - t_request) * 1000
        assert self.log is not None
        self.log.write(
            log_rows(
                request_id,
                video_id,
                cands,
                choice,
                epsilon=self.config.explore_epsilon,
                model_version=version,
                served_at=datetime.now(UTC).isoformat(),
                caption=caption,
                topic=topic,
                extra={
                    **{f"latency_{k}_ms": round(v, 2) for k, v in timings.items()},
                    "generator_version": gen_version,
                    "ranker_version": rank_version,
                },
            )
        )
        return {
            "request_id": request_id,
            "video_id": video_id,
            "caption": caption,
            "text": chosen["text"] if chosen else None,
            "category": chosen["category"] if chosen else None,
            "score": chosen["score"] if chosen else None,
            # what a reader understands: mean P(the push beats each other guarded candidate)
            "win_prob": chosen["win_prob"] if chosen else None,
            "alternatives": cands,
            "degraded": degraded,
            "explored": choice.explored,
            "propensity": choice.propensity,
            "reason": reason,
            "model_version": version,
            "timings_ms": {k: round(v, 2) for k, v in timings.items()},
        }

    async def infer(self, requests: list[PushRequest], headers=None) -> list[dict]:
        ids = self.request_ids.claim((headers or {}).get("x-request-id"), len(requests))
        started = time.monotonic()
        results: list[dict] = []
        try:
            async with asyncio.timeout(self.config.deadline_s):
                for r, request_id in zip(requests, ids, strict=True):
                    results.append(await self._push(r, request_id, started))
        except TimeoutError:
            self.request_ids.release(ids[len(results) :])
            raise UpstreamUnavailable(
                f"the request passed its {self.config.deadline_s:g}s deadline; retry later"
            ) from None
        except BaseException:
            self.request_ids.release(ids[len(results) :])  # nothing served under these ids
            raise
        return results

    def v2_outputs(self, result: dict) -> list[tuple[str, str, list[int], Any]]:
        alts = result["alternatives"]
        chosen = [result["text"]] if result["text"] is not None else []
        nan = float("nan")
        return [
            ("text", "BYTES", [len(chosen)], chosen),
            ("category", "BYTES", [len(chosen)], [result["category"]] if chosen else []),
            (
                "score",
                "FP32",
                [len(chosen)],
                [result["score"] if result["score"] is not None else nan] if chosen else [],
            ),
            ("alternative_texts", "BYTES", [len(alts)], [a["text"] for a in alts]),
            ("alternative_categories", "BYTES", [len(alts)], [a["category"] for a in alts]),
            (
                "alternative_scores",
                "FP32",
                [len(alts)],
                [a["score"] if a["score"] is not None else nan for a in alts],
            ),
        ]

    def stop(self) -> None:
        if self.log is not None:
            self.log.close()
        super().stop()


def main(argv: list[str] | None = None) -> None:
    """Serve the pushgen transformer on 127.0.0.1."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--name", "--model_name", dest="name", default="pushgen", help="model name in the URL"
    )
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--generator-url", default="http://127.0.0.1:8081")
    p.add_argument(
        "--generator-dir",
        required=True,
        help="the generator release (dir or s3:// URI): tokenizer and prompt template",
    )
    p.add_argument(
        "--generator-model",
        default=None,
        help="OpenAI model name to ask for (the adapter's name); default: the release's version",
    )
    p.add_argument("--max-new-tokens", type=int, default=24, help="per candidate")
    p.add_argument("--model-root", default="/", help="local generator dirs must lie inside this")
    p.add_argument("--cache-dir", default="runs/model-cache", help="where s3:// releases go")
    p.add_argument("--ranker-url", default="http://127.0.0.1:8082")
    p.add_argument("--feature-repo", default=None, help="Feast repo with the video features")
    p.add_argument("--log-dir", default="runs/serving-log", help="serving log directory")
    p.add_argument("--log-max-rows", type=int, default=10_000, help="rows per log file")
    p.add_argument(
        "--log-ship-to",
        default=None,
        help="artifact store URI (s3://bucket/prefix or a directory): closed log "
        "windows go to <URI>/windows/ as parquet",
    )
    p.add_argument(
        "--log-window-s",
        type=float,
        default=3600.0,
        help="close (and ship) a log file after this many seconds",
    )
    p.add_argument(
        "--degrade-without-ranker",
        action="store_true",
        help="ranker down: serve the first guarded candidate, flagged, instead of 503",
    )
    p.add_argument(
        "--explore-epsilon",
        type=float,
        default=DEFAULT_EPSILON,
        help="share of requests serving a uniformly drawn guarded candidate",
    )
    p.add_argument("--deadline-s", type=float, default=45.0, help="whole request")
    p.add_argument("--generator-timeout-s", type=float, default=40.0, help="one generator call")
    p.add_argument("--ranker-timeout-s", type=float, default=5.0, help="one ranker call")
    # about what the generator can queue: refuse early (the manifests' containerConcurrency too)
    add_server_args(p, max_inflight=PushgenTransformer.max_inflight)
    args = p.parse_args(argv)
    config = TransformerConfig(
        generator_url=args.generator_url,
        generator_dir=args.generator_dir,
        generator_model=args.generator_model,
        max_new_tokens=args.max_new_tokens,
        model_root=Path(args.model_root),
        cache_dir=Path(args.cache_dir),
        ranker_url=args.ranker_url,
        feature_repo=Path(args.feature_repo) if args.feature_repo else None,
        deadline_s=args.deadline_s,
        generator_timeout_s=args.generator_timeout_s,
        ranker_timeout_s=args.ranker_timeout_s,
        degrade_without_ranker=args.degrade_without_ranker,
        explore_epsilon=args.explore_epsilon,
        log=ServingLogConfig(
            Path(args.log_dir), args.log_max_rows, args.log_ship_to, args.log_window_s
        ),
    )
    serve(PushgenTransformer(args.name, config), server_config(args))


if __name__ == "__main__":
    main()
