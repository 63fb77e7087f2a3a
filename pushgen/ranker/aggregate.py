"""From a win matrix W (W[i, j] = P(i beats j)) to per-candidate scores and one choice:
Copeland counts, Bradley-Terry strengths, or a knockout bracket that reads only the pairs it needs.
Pure numpy/scipy: every ranker (pairwise, listwise, frozen) aggregates through it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from pushgen.core.errors import ConfigError

METHODS = ("copeland", "bradley_terry", "knockout")

# compare(pairs) -> P(i beats j) for each (i, j) in pairs; one call per knockout round.
CompareFn = Callable[[list[tuple[int, int]]], np.ndarray]


@dataclass
class RankResult:
    """Per-candidate scores (higher is better), the win matrix, and the chosen candidate."""

    scores: list[float]
    win_matrix: list[list[float]]  # W[i][j] = P(i beats j); entries not compared are NaN (knockout)
    chosen: int
    method: str

    def to_dict(self) -> dict:
        """JSON-ready form (NaN becomes None)."""
        d = asdict(self)
        d["win_matrix"] = [[None if np.isnan(x) else x for x in row] for row in self.win_matrix]
        return d


def _check_square(win: np.ndarray) -> np.ndarray:
    win = np.asarray(win, dtype=float)
    if win.ndim != 2 or win.shape[0] != win.shape[1] or win.shape[0] == 0:
        raise ConfigError(f"a win matrix must be square and non-empty, got shape {win.shape}")
    return win


def copeland_scores(win: np.ndarray) -> np.ndarray:
    """Copeland score per candidate: wins (W > 0.5) + half a point per tie, plus the mean win
    probability / K as a tie-breaker that never outweighs one win."""
    win = _check_square(win)
    k = win.shape[0]
    off = ~np.eye(k, dtype=bool)
    wins = ((win > 0.5) & off).sum(1) + 0.5 * ((win == 0.5) & off).sum(1)
    soft = np.where(off, win, 0.0).sum(1) / max(k - 1, 1)
    return wins + soft / (k + 1)


def bradley_terry_scores(win: np.ndarray, l2: float = 1e-2) -> np.ndarray:
    """Bradley-Terry strengths fitted to soft outcomes W (maximum likelihood, mean zero).

    Maximises sum_{i != j} W_ij log sigmoid(s_i - s_j); the small L2 term keeps strengths finite
    when one candidate wins every comparison with probability 1.
    """
    win = _check_square(win)
    k = win.shape[0]
    if k == 1:
        return np.zeros(1)
    off = ~np.eye(k, dtype=bool)
    target = np.where(off, win, 0.0)

    def loss_and_grad(s: np.ndarray) -> tuple[float, np.ndarray]:
        diff = s[:, None] - s[None, :]
        loss = -(target * log_expit(diff)).sum() + l2 * (s @ s)
        resid = np.where(off, target - (target + target.T) * expit(diff), 0.0)
        grad = -resid.sum(1) + 2 * l2 * s  # resid is antisymmetric: r_ij - r_ji
        return float(loss), grad

    fit = minimize(loss_and_grad, np.zeros(k), jac=True, method="L-BFGS-B")
    return fit.x - fit.x.mean()


def knockout(n: int, compare: CompareFn) -> tuple[int, list[tuple[int, int]]]:
    """Single-elimination bracket over candidates 0..n-1: returns (winner, pairs compared).

    Each round pairs the survivors in order and asks `compare` once for the whole round (so a
    model scores it as one batch); an odd survivor out gets a bye. n-1 comparisons in total.
    """
    if n < 1:
        raise ConfigError("knockout needs at least one candidate")
    alive, compared = list(range(n)), []
    while len(alive) > 1:
        round_pairs = [(alive[i], alive[i + 1]) for i in range(0, len(alive) - 1, 2)]
        probs = np.asarray(compare(round_pairs), dtype=float)
        compared += round_pairs
        nxt = [i if p >= 0.5 else j for (i, j), p in zip(round_pairs, probs, strict=True)]
        alive = nxt + ([alive[-1]] if len(alive) % 2 else [])
    return alive[0], compared


def knockout_from_matrix(win: np.ndarray) -> tuple[int, list[tuple[int, int]]]:
    """`knockout` reading an already computed win matrix (for evaluation)."""
    win = _check_square(win)
    return knockout(win.shape[0], lambda pairs: np.array([win[i, j] for i, j in pairs]))


def aggregate(win: np.ndarray, method: str = "copeland") -> RankResult:
    """Rank candidates from a full win matrix with `copeland` or `bradley_terry` (or `knockout`)."""
    win = _check_square(win)
    if method == "copeland":
        scores = copeland_scores(win)
    elif method == "bradley_terry":
        scores = bradley_terry_scores(win)
    elif method == "knockout":
        chosen, compared = knockout_from_matrix(win)
        return knockout_result(win.shape[0], chosen, compared, win)
    else:
        raise ConfigError(f"unknown ranking method {method!r}; known: {METHODS}")
    return RankResult([float(s) for s in scores], win.tolist(), int(np.argmax(scores)), method)


def knockout_result(
    k: int, chosen: int, compared: list[tuple[int, int]], probs: np.ndarray | dict
) -> RankResult:
    """Knockout scores: the round a candidate reached (the winner gets one more)."""
    win = np.full((k, k), np.nan)
    np.fill_diagonal(win, 0.5)
    rounds_won = np.zeros(k)
    for i, j in compared:
        p = probs[i, j] if isinstance(probs, np.ndarray) else probs[(i, j)]
        win[i, j], win[j, i] = p, 1.0 - p
        rounds_won[i if p >= 0.5 else j] += 1
    return RankResult([float(s) for s in rounds_won], win.tolist(), int(chosen), "knockout")
