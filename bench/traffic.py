"""Serving traffic written independently of the monitor's own simulator, to judge the monitor.

Nothing here comes from `monitoring/logsim.py` or `pushgen.data.simulator`'s world: its own
videos, vocabulary, click model, ranker and faults. It writes what the real transformer writes
(`serving/transformer.py`, `serving/explore.py`): one row per candidate with the serving-log
contract's columns plus the guard verdict, exploration fields, the detected style of the text
(the server's cue-phrase detector, `pushgen.data.simulator.true_style`, exactly as the server calls
it), per-stage latency and the model versions. Feedback is one row per request (pv, clicks).

Traffic has what real traffic has and the monitor's simulator does not: a daily rhythm (request
rate and topic mix move with the hour), mild day-to-day topic drift, skewed (Zipf) video
popularity, per-video click rates, imperfect style control, and latency that rises with load.

    traffic = Traffic(seed=0)
    ref_log, ref_fb = traffic.week(requests_per_day=2000)                    # healthy reference
    log, fb = traffic.window(240, fault="ranker_lowest", day=9, seed=3)      # one judged window

Faults (`FAULTS`) are written the way the server would log them: `collapse` (every requested
category answered, and logged as requested, but every text in one style), `ranker_lowest` (the
pick is the lowest-scored candidate on half the requests), `late_clicks` (the feedback of the
window's later half has not arrived), `no_exploration` (epsilon 0), `duplicates` (20% of requests
logged twice), `contract_only` (only the contract's 8 columns, 15% guard rejections) and
`latency_x10` (generator and ranker 10 times slower).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pushgen.data.simulator import true_style  # the server's own style detector

FAULTS = (
    "healthy",
    "collapse",
    "ranker_lowest",
    "late_clicks",
    "no_exploration",
    "duplicates",
    "contract_only",
    "latency_x10",
)
CONTRACT = (
    "request_id",
    "video_id",
    "category",
    "text",
    "reward_score",
    "selected",
    "model_version",
    "served_at",
)
STYLES: dict[str, list[str]] = {
    "Suspense": [
        "You won't believe what {who} found in {where}",
        "The secret of the {thing} that nobody expected",
        "Wait for it: {who} and the {thing} mystery",
    ],
    "Emotion": [
        "A heartwarming moment for {who} in {where}",
        "This {thing} story brought {who} to tears",
        "Pure love: {who} and an old {thing}",
    ],
    "Practical": [
        "How to {verb} a {thing} like {who}",
        "Three tips from {who} on the {thing}",
        "The easy way to {verb} a {thing}, step by step",
    ],
    "Humor": [
        "The funniest {thing} fail in {where}",
        "{who} made the whole town laugh with a {thing}",
        "Hilarious: {who} against a {thing}",
    ],
    "Curiosity": [
        "Why does {who} keep a {thing} in {where}?",
        "Ever wondered what a {thing} hides?",
        "The real reason {who} went to {where}",
    ],
    "Urgency": [
        "Don't miss {who} in {where}",
        "Breaking: a {thing} in {where}",
        "Last chance to see the {thing} of {who}",
    ],
    "Social proof": [
        "Millions watched {who} and the {thing}",
        "Everyone is talking about the {thing} in {where}",
        "Trending: {who} with a {thing}",
    ],
    "Direct address": [
        "Hey, this {thing} is made for you",
        "{who} picked this {thing} for you",
        "You deserve the {thing} from {where}",
    ],
}
CATEGORIES = tuple(STYLES)
WHO = ["Ana Ruiz", "Tom Berg", "Lea Park", "Omar Diallo", "Ivy Chen", "Raul Vega", "Nina Holt"]
WHERE = ["Oslo", "Lima", "Accra", "Perth", "Quebec", "Tunis", "Riga", "Hobart"]
THING = ["kite", "boat", "cake", "bike", "violin", "garden", "robot", "lamp", "bridge"]
VERB = ["fold", "paint", "build", "fix", "bake", "tune"]
TOPICS = ("food", "travel", "pets", "sport", "music", "science", "crafts", "news", "family", "cars")
FAKE_NAMES = ("Brad Pitt", "Taylor Swift", "Lionel Messi")
EPOCH = pd.Timestamp("2026-10-01T00:00:00Z")


@dataclass
class Traffic:
    """A world of videos and the traffic it gets, with its own seed."""

    seed: int = 0
    n_videos: int = 400
    epsilon: float = 0.05
    degraded_rate: float = 0.01
    invent_rate: float = 0.05  # candidates naming a celebrity the caption does not (guard rejects)
    off_style_rate: float = 0.1  # a healthy generator misses the requested style this often
    ranker_noise: float = 0.6

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        n = self.n_videos
        self.topic = rng.integers(0, len(TOPICS), n)
        self.popularity = 1.0 / np.arange(1, n + 1) ** 1.1  # Zipf: a few videos get most traffic
        rng.shuffle(self.popularity)
        self.quality = rng.normal(0, 0.4, n)
        self.entities = [
            {
                "who": WHO[rng.integers(len(WHO))],
                "where": WHERE[rng.integers(len(WHERE))],
                "thing": THING[rng.integers(len(THING))],
                "verb": VERB[rng.integers(len(VERB))],
            }
            for _ in range(n)
        ]
        self.captions = [
            f"{e['who']} shows a {e['thing']} in {e['where']}"
            + (" and explains how to " + e["verb"] + " it" if rng.random() < 0.5 else "")
            for e in self.entities
        ]
        # each style's click effect differs by topic: what the ranker should learn
        self.style_effect = rng.normal(0, 0.25, (len(TOPICS), len(CATEGORIES)))
        self.topic_phase = rng.uniform(0, 2 * math.pi, len(TOPICS))

    # ------------------------------------------------------------------ arrival and topic mix

    def _times(self, start: pd.Timestamp, n: int, per_day: int, rng) -> list[pd.Timestamp]:
        """n arrival times from `start` at `per_day` requests a day, busier in the evening."""
        out, t = [], start
        while len(out) < n:
            hour = t.hour + t.minute / 60
            rate = per_day / 86400 * (1 + 0.6 * math.sin(2 * math.pi * (hour - 12) / 24))
            t = t + pd.Timedelta(seconds=float(rng.exponential(1 / rate)))
            out.append(t)
        return out

    def _topic_weights(self, t: pd.Timestamp, day_drift: np.ndarray) -> np.ndarray:
        hour = t.hour + t.minute / 60
        w = np.exp(0.35 * np.sin(2 * math.pi * hour / 24 + self.topic_phase) + day_drift)
        return w / w.sum()

    # ------------------------------------------------------------------ one request

    def _candidates(self, v: int, fault: str, rng) -> list[dict]:
        ent = self.entities[v]
        collapsed_style = CATEGORIES[0]
        rows = []
        for k, category in enumerate(CATEGORIES):
            style = category
            if fault == "collapse":
                style = collapsed_style
            elif rng.random() < self.off_style_rate:
                style = CATEGORIES[rng.integers(len(CATEGORIES))]
            template = STYLES[style][rng.integers(len(STYLES[style]))]
            text = template.format(**ent)
            invent = rng.random() < (0.15 if fault == "contract_only" else self.invent_rate)
            if invent:
                text = f"{text} with {FAKE_NAMES[rng.integers(len(FAKE_NAMES))]}"
            rows.append(
                {
                    "category": category,
                    "text": text,
                    "guard_ok": not invent,
                    "guard_reasons": "invented name" if invent else "",
                    "style": true_style(text) or "none",
                    "true_style": style,
                    "candidate_index": k,
                }
            )
        return rows

    def _logit(self, v: int, cand: dict) -> float:
        s = CATEGORIES.index(cand["true_style"])
        return float(
            -3.6
            + 0.5 * math.log(self.popularity[v] * self.n_videos)
            + self.quality[v]
            + self.style_effect[self.topic[v], s]
            + (0.1 if cand["text"].endswith("?") else 0.0)
        )

    def _request(
        self, rid: str, v: int, t: pd.Timestamp, fault: str, rng, load: float
    ) -> tuple[list[dict], dict]:
        cands = self._candidates(v, fault, rng)
        ok = [i for i, c in enumerate(cands) if c["guard_ok"]]
        eps = 0.0 if fault == "no_exploration" else self.epsilon
        degraded = bool(ok) and rng.random() < self.degraded_rate
        for c in cands:
            c["reward_score"], c["win_prob"] = None, None
        chosen, explored, props, status = None, False, [None] * len(cands), "all_rejected"
        if ok and degraded:
            chosen, status = ok[0], "degraded"
            props = [1.0 if i == ok[0] else (0.0 if i in ok else None) for i in range(len(cands))]
        elif ok:
            strength = np.array([self._logit(v, cands[i]) for i in ok])
            noise = np.triu(rng.normal(0, self.ranker_noise, (len(ok), len(ok))), 1)
            win = 1 / (1 + np.exp(-(strength[:, None] - strength[None, :] + noise - noise.T)))
            np.fill_diagonal(win, 0.5)
            copeland = (win > 0.5).sum(1) + win.mean(1)
            for j, i in enumerate(ok):
                cands[i]["reward_score"] = float(copeland[j])
                if len(ok) > 1:
                    cands[i]["win_prob"] = float((win[j].sum() - 0.5) / (len(ok) - 1))
            top = ok[int(np.argmax(copeland))]
            share = eps / len(ok)
            props = [
                (1 - eps + share if i == top else share) if i in ok else None
                for i in range(len(cands))
            ]
            status = "served"
            if rng.random() < eps:
                chosen, explored = ok[int(rng.integers(len(ok)))], True
            elif fault == "ranker_lowest" and rng.random() < 0.5:
                chosen = ok[int(np.argmin(copeland))]  # the bug: the lowest-scored one is served
            else:
                chosen = top
        slow = 10.0 if fault == "latency_x10" else 1.0
        lat = {
            "latency_feast_ms": float(rng.lognormal(math.log(5), 0.3)),
            "latency_generate_ms": float(rng.lognormal(math.log(850 * load), 0.3)) * slow,
            "latency_rank_ms": float(rng.lognormal(math.log(35 * load), 0.3)) * slow,
        }
        lat["latency_total_ms"] = sum(lat.values()) + 2.0
        caption = self.captions[v]
        rows = []
        for i, c in enumerate(cands):
            rows.append(
                {
                    "request_id": rid,
                    "video_id": f"vid{v:05d}",
                    "category": c["category"],
                    "text": c["text"],
                    "reward_score": c["reward_score"],
                    "selected": i == chosen,
                    "model_version": "gen-7+rank-4",
                    "served_at": t.isoformat(),
                    "guard_ok": c["guard_ok"],
                    "guard_reasons": c["guard_reasons"],
                    "degraded": status == "degraded",
                    "candidate_index": i,
                    "n_candidates": len(cands),
                    "chosen_index": chosen,
                    "propensity": props[i],
                    "explored": explored,
                    "epsilon": eps,
                    "status": status,
                    "topic": TOPICS[self.topic[v]],
                    "caption_chars": len(caption),
                    "caption_sha": hashlib.sha1(caption.encode()).hexdigest()[:12],
                    "style": c["style"],
                    "win_prob": c["win_prob"],
                    **{k: round(x, 2) for k, x in lat.items()},
                    "generator_version": "gen-7",
                    "ranker_version": "rank-4",
                }
            )
        fb = {"request_id": rid, "pv": 0, "clicks": 0}
        if chosen is not None:
            pv = int(rng.lognormal(math.log(1500), 0.5)) + 50
            p = 1 / (1 + math.exp(-self._logit(v, cands[chosen])))
            fb = {"request_id": rid, "pv": pv, "clicks": int(rng.binomial(pv, p))}
        return rows, fb

    # ------------------------------------------------------------------ streams

    def stream(
        self,
        n: int,
        start: pd.Timestamp,
        per_day: int,
        fault: str = "healthy",
        seed: int = 0,
        prefix: str = "",
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """`n` consecutive requests from `start` (each day with its own mild topic drift)."""
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
        rng = np.random.default_rng([self.seed, seed, FAULTS.index(fault)])
        times = self._times(start, n, per_day, rng)
        drift: dict[int, np.ndarray] = {}
        rows, feedback = [], []
        for i, t in enumerate(times):
            day = (t - EPOCH).days
            if day not in drift:
                drift[day] = np.random.default_rng([self.seed, day]).normal(0, 0.15, len(TOPICS))
            w = self._topic_weights(t, drift[day])
            topic = rng.choice(len(TOPICS), p=w)
            pool = np.flatnonzero(self.topic == topic)
            pop = self.popularity[pool] / self.popularity[pool].sum()
            v = int(rng.choice(pool, p=pop))
            hour = t.hour + t.minute / 60
            load = 1 + 0.2 * math.sin(2 * math.pi * (hour - 12) / 24)
            # digit-only ids, as some upstream id schemes write them
            r, fb = self._request(f"{prefix}{seed:03d}{i:07d}", v, t, fault, rng, load)
            rows += r
            feedback.append(fb)
        log, fb = pd.DataFrame(rows), pd.DataFrame(feedback)
        if fault == "late_clicks":  # the later half of the window has no feedback yet
            fb = fb.iloc[: len(fb) // 2]
        if fault == "duplicates":
            ids = log["request_id"].drop_duplicates().sample(frac=0.2, random_state=seed)
            log = pd.concat([log, log[log["request_id"].isin(ids)]], ignore_index=True)
            log = log.sort_values(["served_at", "candidate_index"], kind="stable")
        if fault == "contract_only":
            log = log[list(CONTRACT)]
        return log.reset_index(drop=True), fb

    def week(
        self, requests_per_day: int = 2000, days: int = 7
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """A healthy reference: `days` days of traffic from the epoch."""
        return self.stream(requests_per_day * days, EPOCH, requests_per_day, seed=999, prefix="9")

    def window(
        self, n: int, fault: str = "healthy", day: float = 10.0, seed: int = 0, per_day: int = 2000
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """One window of `n` requests starting `day` days after the epoch (any hour)."""
        return self.stream(n, EPOCH + pd.Timedelta(days=day), per_day, fault, seed, prefix="1")
