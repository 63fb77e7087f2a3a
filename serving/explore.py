"""Exploration traffic and the per-request log record, shared by the server and the simulator.

A share `epsilon` of requests (default 5%) serves a guarded candidate drawn uniformly instead of
the ranker's top one, so feedback holds an unbiased sample of "what a random candidate earns" and
the ranker's online accuracy can be measured. Every candidate of every request is logged with its
index, score, guard verdict, the chosen index and the probability the policy had of serving it
(`propensity`), so inverse-propensity estimates need nothing else.

    choice = choose(scores, guard_ok, epsilon=0.05, rng=rng)
    rows = log_rows(request_id, video_id, candidates, choice, ...)

The draw is seeded from the request id when no generator is given, so a replayed request makes the
same choice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

SERVED, DEGRADED, ALL_REJECTED = "served", "degraded", "all_rejected"
DEFAULT_EPSILON = 0.05


@dataclass(frozen=True)
class Choice:
    """Which candidate is served, and with what probability the policy would serve each one."""

    index: int | None  # index into the request's candidates (None: nothing could be served)
    explored: bool  # drawn uniformly among guarded candidates instead of the ranker's top
    propensities: tuple[float | None, ...]  # per candidate; None for guard-rejected ones
    status: str  # SERVED | DEGRADED | ALL_REJECTED

    @property
    def propensity(self) -> float | None:
        """Probability of the served candidate under the policy (None when nothing was served)."""
        return None if self.index is None else self.propensities[self.index]


def request_rng(request_id: str) -> np.random.Generator:
    """A generator seeded from the request id: the same request always explores the same way."""
    return np.random.default_rng(int(hashlib.sha256(request_id.encode()).hexdigest()[:16], 16))


def choose(
    scores: list[float | None],
    guard_ok: list[bool],
    epsilon: float = DEFAULT_EPSILON,
    rng: np.random.Generator | None = None,
    degraded: bool = False,
) -> Choice:
    """Epsilon-greedy over the guarded candidates; `degraded` (no scores) serves the first one."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    ok = [i for i, g in enumerate(guard_ok) if g]
    none = tuple(None for _ in guard_ok)
    if not ok:
        return Choice(None, False, none, ALL_REJECTED)
    if degraded:
        props = tuple(1.0 if i == ok[0] else (0.0 if g else None) for i, g in enumerate(guard_ok))
        return Choice(ok[0], False, props, DEGRADED)
    top = max(ok, key=lambda i: float(scores[i]))  # first of equal scores, like np.argmax
    share = epsilon / len(ok)
    props = tuple(
        (1 - epsilon + share if i == top else share) if g else None for i, g in enumerate(guard_ok)
    )
    rng = rng or np.random.default_rng()
    if rng.random() < epsilon:
        return Choice(int(ok[int(rng.integers(len(ok)))]), True, props, SERVED)
    return Choice(top, False, props, SERVED)


def caption_fields(caption: str | None) -> dict[str, Any]:
    """What the log keeps of the caption: its length and a short hash (stale captions repeat)."""
    text = caption or ""
    return {
        "caption_chars": len(text),
        "caption_sha": hashlib.sha1(text.encode()).hexdigest()[:12] if text else "",
    }


def log_rows(
    request_id: str,
    video_id: str,
    candidates: list[dict[str, Any]],
    choice: Choice,
    *,
    epsilon: float,
    model_version: str,
    served_at: str,
    caption: str | None,
    topic: str | None = None,
    extra: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One serving-log row per candidate (`category`, `text`, `score`, `guard_ok`, `guard_reasons`,
    and `style`, `win_prob` when the candidate carries them).

    Rows of a request share `request_id`, `chosen_index`, `explored`, `status` and `extra`
    (per-request fields: latency per stage, model versions); a request where the guard rejected
    everything still writes its rows (all `selected: false`), so it is counted.
    """
    cap = caption_fields(caption)
    rows = []
    for i, c in enumerate(candidates):
        reasons = c.get("guard_reasons") or []
        rows.append(
            {
                "request_id": request_id,
                "video_id": video_id,
                "category": c["category"],
                "text": c["text"],
                "reward_score": None if c.get("score") is None else float(c["score"]),
                "selected": i == choice.index,
                "model_version": model_version,
                "served_at": served_at,
                "guard_ok": bool(c["guard_ok"]),
                "guard_reasons": reasons if isinstance(reasons, str) else "; ".join(reasons),
                "degraded": choice.status == DEGRADED,
                "candidate_index": i,
                "n_candidates": len(candidates),
                "chosen_index": choice.index,
                "propensity": choice.propensities[i],
                "explored": choice.explored,
                "epsilon": epsilon,
                "status": choice.status,
                "topic": topic,
                **cap,
                **{k: c[k] for k in ("style", "win_prob") if k in c},
                **(extra or {}),
            }
        )
    return rows
