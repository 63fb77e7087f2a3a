"""Serving-log streams shaped exactly like the real server's, healthy or with an injected fault.

Each request follows the transformer's path over the simulator's world: a caption (from the video's
own entities; empty or another video's under a caption outage), one candidate per category from
the simulator's style templates (some sensational: a hype prefix the guard lets through, or an
invented name the real guard `check_candidate` rejects), a noisy *text-only* pairwise ranker whose
win matrix becomes Copeland scores (`pushgen.ranker.select.copeland_scores`), the epsilon-greedy
choice and the log rows of `serving.explore` (so the schema is the server's by construction),
rare degraded (ranker down) and all-rejected requests, and feedback Binomial(pv, true CTR).

    log, feedback = simulate_log(world, StreamConfig(n_requests=240, fault="random_ranker"))

Faults: `full_collapse` (every requested category answered, and logged, but every text written in
one style, as a collapsed generator does), `partial_collapse` (20% of requests), `ranker_invented` (+1.5 logit for
sensational candidates), `random_ranker`, `topic_shift` (3 of 10 topics take 60% of traffic),
`caption_outage` (20% of requests: empty or stale caption).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from pushgen.core.errors import ConfigError
from pushgen.data.simulator import INVENTED_NAMES, TEMPLATES, World, true_ctr, true_style
from pushgen.generator.guard import check_candidate
from pushgen.ranker.aggregate import copeland_scores
from serving.explore import ALL_REJECTED, choose, log_rows

FAULTS = (
    "healthy",
    "full_collapse",
    "partial_collapse",
    "ranker_invented",
    "random_ranker",
    "topic_shift",
    "caption_outage",
)
HYPE = "SHOCKING: "


@dataclass(frozen=True)
class StreamConfig:
    """One window of log-shaped traffic and the fault injected into it."""

    n_requests: int = 240
    fault: str = "healthy"
    epsilon: float = 0.05  # exploration share, as the server's default
    ranker_noise: float = 0.8  # sd of the noise on each pairwise logit (text-only comparisons)
    hype_rate: float = 0.15  # candidates written with a hype prefix (passes the guard)
    invent_rate: float = 0.06  # candidates naming an invented celebrity (the guard rejects them)
    degraded_rate: float = 0.01  # requests where the ranker is down (first guarded one served)
    collapse_share: float = 0.2  # partial_collapse: share of requests collapsed
    collapse_category: str = "Suspense"
    sensational_bias: float = 1.5  # ranker_invented: logit the ranker adds to sensational pushes
    shifted_topics: int = 3  # topic_shift: topics that take `shifted_share` of the traffic
    shifted_share: float = 0.6
    outage_share: float = 0.2  # caption_outage: share of requests with an empty or stale caption
    pv_range: tuple[int, int] = (500, 5000)
    model_version: str = "gen-1+rank-1"
    start: str = "2026-11-01T00:00:00+00:00"
    interval_s: float = 30.0
    seed: int = 0

    def check(self) -> None:
        """Reject impossible settings with a clear message."""
        if self.fault not in FAULTS:
            raise ConfigError(f"fault must be one of {FAULTS}, got {self.fault!r}")
        if self.n_requests < 1:
            raise ConfigError("n_requests must be >= 1")
        for name in ("epsilon", "hype_rate", "invent_rate", "degraded_rate", "collapse_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must lie in [0, 1]")


def caption_of(video: dict) -> str:
    """The caption a captioner would write: it names the video's entities and its number."""
    return (
        f"{video['name']} and a {video['thing']} in {video['place']}: how to {video['verb']} it "
        f"in {int(video['number'])} minutes"
    )


class _Cache:
    """Per-world memo of video rows, captions, guard verdicts and text logits (for speed)."""

    def __init__(self, world: World):
        self.world = world
        self.videos = world.videos.to_dict("records")
        self.index = {v["video_id"]: i for i, v in enumerate(self.videos)}
        self.captions = [caption_of(v) for v in self.videos]
        self.guard: dict[tuple[str, str], tuple[bool, list[str]]] = {}
        self.logit: dict[tuple[str, str], float] = {}

    def check(self, text: str, caption: str) -> tuple[bool, list[str]]:
        key = (text, caption)
        if key not in self.guard:
            verdict = check_candidate(text, caption)
            self.guard[key] = (verdict.ok, verdict.reasons)
        return self.guard[key]

    def text_logit(self, video: dict, text: str) -> float:
        """The part of the true logit a push writer controls (what a text-only ranker can learn)."""
        key = (video["video_id"], text)
        if key not in self.logit:
            ctr = true_ctr(self.world, video["video_id"], text)
            eff = self.world.effects
            base = eff.base + eff.popularity * video["pop_z"] + eff.quality * video["quality"]
            self.logit[key] = math.log(ctr / (1 - ctr)) - base
        return self.logit[key]

    def ctr(self, video: dict, text: str) -> float:
        eff = self.world.effects
        base = eff.base + eff.popularity * video["pop_z"] + eff.quality * video["quality"]
        return 1.0 / (1.0 + math.exp(-(base + self.text_logit(video, text))))


_CACHES: dict[int, _Cache] = {}


def _cache(world: World) -> _Cache:
    if id(world) not in _CACHES:
        _CACHES.clear()
        _CACHES[id(world)] = _Cache(world)
    return _CACHES[id(world)]


def _write(source: dict, template: str) -> str:
    return template.format(
        name=source["name"],
        place=source["place"],
        num=int(source["number"]),
        thing=source["thing"],
        verb=source["verb"],
    )


def _video_weights(world: World, cfg: StreamConfig, rng: np.random.Generator) -> np.ndarray:
    topics = world.videos["topic"].to_numpy()
    weights = np.ones(len(topics))
    if cfg.fault == "topic_shift":
        shifted = world.topics[: cfg.shifted_topics]
        inside = np.isin(topics, shifted)
        weights[inside] = cfg.shifted_share / inside.sum()
        weights[~inside] = (1 - cfg.shifted_share) / (~inside).sum()
    return weights / weights.sum()


def _candidates(
    cache: _Cache, source: dict, collapsed: bool, cfg: StreamConfig, rng: np.random.Generator
) -> list[tuple[str, str, bool]]:
    """(category, text, sensational) per category, written from `source`'s entities."""
    cats = cache.world.categories
    out = []
    for category in cats:
        # a collapsed generator still answers every requested category (and the server logs the
        # requested one), but writes every text in one style
        options = TEMPLATES[cfg.collapse_category if collapsed else category]
        text = _write(source, options[int(rng.integers(len(options)))])
        u = rng.random()
        if u < cfg.invent_rate:
            out.append((category, f"{text} with {rng.choice(INVENTED_NAMES)}", True))
        elif u < cfg.invent_rate + cfg.hype_rate:
            out.append((category, HYPE + text, True))
        else:
            out.append((category, text, False))
    return out


def _rank(
    logits: np.ndarray, sensational: np.ndarray, cfg: StreamConfig, rng: np.random.Generator
) -> np.ndarray:
    """Copeland scores from a noisy pairwise comparison of text logits (the fault bends them)."""
    k = len(logits)
    if cfg.fault == "random_ranker":
        strength = rng.normal(0, 1, k)
    else:
        strength = logits + (
            cfg.sensational_bias * sensational if cfg.fault == "ranker_invented" else 0
        )
    noise = np.triu(rng.normal(0, cfg.ranker_noise, (k, k)), 1)
    noise = noise - noise.T
    win = 1.0 / (1.0 + np.exp(-(strength[:, None] - strength[None, :] + noise)))
    np.fill_diagonal(win, 0.5)
    return copeland_scores(win)


def simulate_log(
    world: World, cfg: StreamConfig | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(serving log rows, feedback rows) of one window; every request has a feedback row."""
    cfg = cfg or StreamConfig()
    cfg.check()
    cache = _cache(world)
    rng = np.random.default_rng(cfg.seed)
    n_videos = len(cache.videos)
    picks = rng.choice(n_videos, cfg.n_requests, p=_video_weights(world, cfg, rng))
    start = datetime.fromisoformat(cfg.start)
    rows: list[dict] = []
    feedback: list[dict] = []
    previous = (cache.captions[int(picks[-1])], cache.videos[int(picks[-1])])
    for i, vi in enumerate(picks):
        video = cache.videos[int(vi)]
        caption, source = cache.captions[int(vi)], video
        if cfg.fault == "caption_outage" and rng.random() < cfg.outage_share:
            if rng.random() < 0.5:  # captioner down: empty caption, the generator hallucinates
                caption, source = "", cache.videos[int(rng.integers(n_videos))]
            else:  # stale cache: the previous request's caption (and what it described)
                caption, source = previous
        previous = (caption, source)
        collapsed = cfg.fault == "full_collapse" or (
            cfg.fault == "partial_collapse" and rng.random() < cfg.collapse_share
        )
        cands = []
        for category, text, sensational in _candidates(cache, source, collapsed, cfg, rng):
            ok, reasons = cache.check(text, caption)
            cands.append(
                {
                    "category": category,
                    "text": text,
                    "score": None,
                    "guard_ok": ok,
                    "guard_reasons": reasons,
                    "sensational": sensational,
                    "style": true_style(text) or "none",
                    "win_prob": None,
                }
            )
        ok_idx = [j for j, c in enumerate(cands) if c["guard_ok"]]
        degraded = bool(ok_idx) and rng.random() < cfg.degraded_rate
        if ok_idx and not degraded:
            logits = np.array([cache.text_logit(video, cands[j]["text"]) for j in ok_idx])
            sens = np.array([cands[j]["sensational"] for j in ok_idx], dtype=float)
            for j, s in zip(ok_idx, _rank(logits, sens, cfg, rng), strict=True):
                cands[j]["score"] = float(s)
        choice = choose(
            [c["score"] for c in cands], [c["guard_ok"] for c in cands], cfg.epsilon, rng, degraded
        )
        request_id = f"r{cfg.seed}-{i:06d}"
        served_at = (start + timedelta(seconds=i * cfg.interval_s)).isoformat()
        rows += log_rows(
            request_id,
            video["video_id"],
            cands,
            choice,
            epsilon=cfg.epsilon,
            model_version=cfg.model_version,
            served_at=served_at,
            caption=caption,
            topic=video["topic"],
            extra={
                "latency_feast_ms": round(float(rng.lognormal(math.log(4), 0.3)), 2),
                "latency_generate_ms": round(float(rng.lognormal(math.log(900), 0.25)), 2),
                "latency_rank_ms": round(float(rng.lognormal(math.log(40), 0.3)), 2),
                "generator_version": cfg.model_version.split("+")[0],
                "ranker_version": cfg.model_version.split("+")[-1],
            },
        )
        if choice.status == ALL_REJECTED:  # nothing was sent: zero exposures, still reported
            feedback.append({"request_id": request_id, "pv": 0, "clicks": 0})
            continue
        pv = int(rng.integers(cfg.pv_range[0], cfg.pv_range[1] + 1))
        ctr = cache.ctr(video, cands[choice.index]["text"])
        feedback.append({"request_id": request_id, "pv": pv, "clicks": int(rng.binomial(pv, ctr))})
    return pd.DataFrame(rows), pd.DataFrame(feedback)


def stream(
    world: World, cfg: StreamConfig, n_windows: int
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """`n_windows` consecutive windows (seeds cfg.seed, cfg.seed + 1, ...), later ones later."""
    out = []
    for w in range(n_windows):
        start = datetime.fromisoformat(cfg.start) + timedelta(
            seconds=w * cfg.n_requests * cfg.interval_s
        )
        out.append(simulate_log(world, replace(cfg, seed=cfg.seed + w, start=start.isoformat())))
    return out
