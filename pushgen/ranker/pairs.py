"""Preference pairs from A/B tests, and the split by story that keeps evaluation honest.

Two arms of the same test saw the same audience at the same time, so the difference in their CTR
is (up to noise) the effect of the text alone: confounders such as the author or the video cancel.
`build_pairs` turns every two arms of one test whose texts differ into a pair labelled with the
arm that had the higher CTR, and attaches the evidence for that label (a two-proportion z-test
p-value and the Beta-posterior probability that a's true CTR beats b's), from which the training
weight is derived. Pairs never cross tests.

`split_by_story` groups tests that share a text (or any other linking column, e.g. a lede or a
video) into stories and puts each story wholly in train or in validation: the same headline
recurring across tests would otherwise leak from training into validation.

    pairs = build_pairs(ab_tests, PairConfig(max_p_value=0.1))
    train_ab, val_ab = split_by_story(ab_tests, StorySplitConfig(val_fraction=0.2))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pushgen.core.errors import ConfigError, DataContractError
from pushgen.data.contracts import validate

# Columns of the pairs table, in order (extra columns carried from the arms follow them).
PAIR_COLUMNS = (
    "test_id",
    "video_id",
    "push_id_a",
    "push_id_b",
    "text_a",
    "text_b",
    "pv_a",
    "clicks_a",
    "pv_b",
    "clicks_b",
    "ctr_a",
    "ctr_b",
    "label",
    "weight",
    "p_value",
    "p_a_beats_b",
)

EVIDENCE_WEIGHTS = ("uniform", "confidence", "posterior")
TIE_MODES = ("drop", "half")


@dataclass
class PairConfig:
    """How arms of one test become labelled, weighted preference pairs."""

    max_p_value: float = field(
        default=1.0, metadata={"help": "train on pairs with p <= this (1.0 keeps all)"}
    )
    tie_rel_diff: float = field(
        default=0.0,
        metadata={
            "help": "|ctr_a - ctr_b| / max(ctr) below this counts as a tie (0: exact ties only)"
        },
    )
    ties: str = field(
        default="drop",
        metadata={
            "help": "drop: ties are set aside with a reason; half: kept with label 0.5",
            "choices": TIE_MODES,
        },
    )
    weight: str = field(
        default="uniform",
        metadata={
            "help": "pair loss weight: uniform (1), confidence (1 - p_value), posterior "
            "(|2 P(a>b) - 1|)",
            "choices": EVIDENCE_WEIGHTS,
        },
    )
    prior_alpha: float = field(
        default=1.0, metadata={"help": "Beta prior on each arm's CTR: pseudo-clicks"}
    )
    prior_beta: float = field(
        default=1.0, metadata={"help": "Beta prior on each arm's CTR: pseudo-non-clicks"}
    )
    match_on: tuple[str, ...] = field(
        default=(), metadata={"help": "only pair arms equal on these columns (e.g. the same image)"}
    )
    carry: tuple[str, ...] = field(
        default=(), metadata={"help": "arm columns copied to the pair as <col>_a / <col>_b"}
    )
    carry_test: tuple[str, ...] = field(
        default=(), metadata={"help": "test-level columns copied once (taken from arm a)"}
    )

    def __post_init__(self) -> None:
        """Fail early on a value that would silently produce nonsense."""
        if not 0.0 < self.max_p_value <= 1.0:
            raise ConfigError(f"max_p_value must be in (0, 1], got {self.max_p_value}")
        if not 0.0 <= self.tie_rel_diff < 1.0:
            raise ConfigError(f"tie_rel_diff must be in [0, 1), got {self.tie_rel_diff}")
        if self.ties not in TIE_MODES:
            raise ConfigError(f"ties must be one of {TIE_MODES}, got {self.ties!r}")
        if self.weight not in EVIDENCE_WEIGHTS:
            raise ConfigError(f"weight must be one of {EVIDENCE_WEIGHTS}, got {self.weight!r}")
        if self.prior_alpha <= 0 or self.prior_beta <= 0:
            raise ConfigError("prior_alpha and prior_beta must be > 0")


@dataclass
class PairsResult:
    """Pairs plus everything that did not become one, each with a reason (nothing is lost)."""

    pairs: pd.DataFrame  # PAIR_COLUMNS (+ carried columns)
    set_aside: pd.DataFrame  # candidate pairs not kept, with `reject_reason`
    rejected_arms: pd.DataFrame  # arms failing the ab_tests contract, with `reject_reason`
    stats: dict[str, int] = field(default_factory=dict)


def two_proportion_p_value(
    clicks_a: np.ndarray, pv_a: np.ndarray, clicks_b: np.ndarray, pv_b: np.ndarray
) -> np.ndarray:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 where both CTRs are 0 or 1)."""
    clicks_a, pv_a = np.asarray(clicks_a, float), np.asarray(pv_a, float)
    clicks_b, pv_b = np.asarray(clicks_b, float), np.asarray(pv_b, float)
    pooled = (clicks_a + clicks_b) / np.maximum(pv_a + pv_b, 1.0)
    se = np.sqrt(pooled * (1 - pooled) * (1 / np.maximum(pv_a, 1.0) + 1 / np.maximum(pv_b, 1.0)))
    diff = clicks_a / np.maximum(pv_a, 1.0) - clicks_b / np.maximum(pv_b, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, diff / se, 0.0)
    return 2 * stats.norm.sf(np.abs(z))


def beta_posterior_prob_a_beats_b(
    clicks_a: np.ndarray,
    pv_a: np.ndarray,
    clicks_b: np.ndarray,
    pv_b: np.ndarray,
    prior_alpha: float = 1.0,
    prior_beta: float = 1.0,
    grid: int = 401,
) -> np.ndarray:
    """P(CTR_a > CTR_b) under independent Beta posteriors, by quadrature of f_a(x) F_b(x).

    The grid spans each pair's posterior mass (a's mean +- 10 sd of the wider posterior) rather
    than [0, 1], because CTRs of ~1% give posteriors far narrower than any uniform grid step.
    """
    a1 = np.asarray(clicks_a, float) + prior_alpha
    b1 = np.asarray(pv_a, float) - np.asarray(clicks_a, float) + prior_beta
    a2 = np.asarray(clicks_b, float) + prior_alpha
    b2 = np.asarray(pv_b, float) - np.asarray(clicks_b, float) + prior_beta
    if a1.size == 0:
        return np.zeros(0)
    dist_a, dist_b = stats.beta(a1[:, None], b1[:, None]), stats.beta(a2[:, None], b2[:, None])
    sd = np.maximum(np.sqrt(dist_a.var()), np.sqrt(dist_b.var()))
    lo = np.clip(np.minimum(dist_a.mean(), dist_b.mean()) - 10 * sd, 0.0, 1.0)
    hi = np.clip(np.maximum(dist_a.mean(), dist_b.mean()) + 10 * sd, 0.0, 1.0)
    x = lo + (hi - lo) * np.linspace(0.0, 1.0, grid)[None, :]
    prob = np.trapezoid(dist_a.pdf(x) * dist_b.cdf(x), x, axis=1)
    return np.clip(prob, 0.0, 1.0)


def _arm_pairs(ab: pd.DataFrame, match_on: tuple[str, ...]) -> pd.DataFrame:
    """Every unordered pair of arms (row positions i < j) of the same test, as positions."""
    pos = ab.assign(_pos=np.arange(len(ab)))[["test_id", "_pos", *match_on]]
    keys = ["test_id", *match_on]
    # Null match keys would never join; make them explicit values so such arms still pair up.
    pos = pos.astype({c: object for c in match_on}).fillna({c: "<none>" for c in match_on})
    merged = pos.merge(pos, on=keys, suffixes=("_a", "_b"))
    merged = merged[merged["_pos_a"] < merged["_pos_b"]]
    return merged[["_pos_a", "_pos_b"]].reset_index(drop=True)


def _empty_pairs(carry: tuple[str, ...], carry_test: tuple[str, ...]) -> pd.DataFrame:
    cols = [*PAIR_COLUMNS, *[f"{c}_{s}" for c in carry for s in "ab"], *carry_test]
    return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})


def build_pairs_report(ab_tests: pd.DataFrame, cfg: PairConfig | None = None) -> PairsResult:
    """Pairs from arms of the same test, plus the arms and pairs set aside, with reasons."""
    cfg = cfg or PairConfig()
    missing = [c for c in (*cfg.match_on, *cfg.carry, *cfg.carry_test) if c not in ab_tests.columns]
    if missing:
        raise DataContractError(f"ab_tests: PairConfig names column(s) {missing} it does not have")
    ab, rejected_arms = validate("ab_tests", ab_tests)
    ab = ab.reset_index(drop=True)
    ab["text"] = ab["text"].astype(str)
    idx = _arm_pairs(ab, cfg.match_on)
    a, b = (
        ab.iloc[idx["_pos_a"]].reset_index(drop=True),
        ab.iloc[idx["_pos_b"]].reset_index(drop=True),
    )
    pairs = pd.DataFrame(
        {
            "test_id": a["test_id"],
            "video_id": a["video_id"],
            "push_id_a": a["push_id"],
            "push_id_b": b["push_id"],
            "text_a": a["text"],
            "text_b": b["text"],
            "pv_a": a["pv"],
            "clicks_a": a["clicks"],
            "pv_b": b["pv"],
            "clicks_b": b["clicks"],
        }
    )
    for col in cfg.carry:
        pairs[f"{col}_a"], pairs[f"{col}_b"] = a[col], b[col]
    for col in cfg.carry_test:
        pairs[col] = a[col]
    if pairs.empty:
        stats_ = {"arms": len(ab), "arms_rejected": len(rejected_arms), "pairs": 0, "set_aside": 0}
        return PairsResult(_empty_pairs(cfg.carry, cfg.carry_test), pairs, rejected_arms, stats_)

    pairs["ctr_a"] = pairs["clicks_a"] / pairs["pv_a"].clip(lower=1)
    pairs["ctr_b"] = pairs["clicks_b"] / pairs["pv_b"].clip(lower=1)
    pairs["p_value"] = two_proportion_p_value(
        pairs["clicks_a"], pairs["pv_a"], pairs["clicks_b"], pairs["pv_b"]
    )
    pairs["p_a_beats_b"] = beta_posterior_prob_a_beats_b(
        pairs["clicks_a"],
        pairs["pv_a"],
        pairs["clicks_b"],
        pairs["pv_b"],
        cfg.prior_alpha,
        cfg.prior_beta,
    )
    top = np.maximum(pairs["ctr_a"], pairs["ctr_b"])
    rel_diff = np.where(top > 0, (pairs["ctr_a"] - pairs["ctr_b"]).abs() / top.where(top > 0, 1), 0)
    tie = (
        (rel_diff <= cfg.tie_rel_diff)
        if cfg.tie_rel_diff > 0
        else (pairs["ctr_a"] == pairs["ctr_b"])
    )
    pairs["label"] = np.where(tie, 0.5, (pairs["ctr_a"] > pairs["ctr_b"]).astype(float))
    pairs["weight"] = _evidence_weight(pairs, cfg.weight)

    reason = pd.Series("", index=pairs.index, dtype=object)
    reason[pairs["text_a"].str.strip() == pairs["text_b"].str.strip()] = "same text"
    reason[(reason == "") & tie & (cfg.ties == "drop")] = "tie"
    reason[(reason == "") & (pairs["p_value"] > cfg.max_p_value)] = f"p_value > {cfg.max_p_value}"
    set_aside = pairs[reason != ""].assign(reject_reason=reason[reason != ""])
    kept = pairs[reason == ""].reset_index(drop=True)
    stats_ = {
        "arms": len(ab),
        "arms_rejected": len(rejected_arms),
        "candidate_pairs": len(pairs),
        "pairs": len(kept),
        "set_aside": len(set_aside),
        **{f"set_aside[{k}]": int(v) for k, v in set_aside["reject_reason"].value_counts().items()},
    }
    return PairsResult(kept, set_aside.reset_index(drop=True), rejected_arms, stats_)


def _evidence_weight(pairs: pd.DataFrame, mode: str) -> np.ndarray:
    """Per-pair training weight from the strength of the evidence for its label."""
    if mode == "uniform":
        return np.ones(len(pairs))
    if mode == "confidence":
        return 1.0 - pairs["p_value"].to_numpy()
    return np.abs(2.0 * pairs["p_a_beats_b"].to_numpy() - 1.0)


def build_pairs(ab_tests: pd.DataFrame, cfg: PairConfig | None = None) -> pd.DataFrame:
    """Labelled, weighted pairs (PAIR_COLUMNS) from arms of the same test; see `build_pairs_report`."""
    return build_pairs_report(ab_tests, cfg).pairs


def both_orders(pairs: pd.DataFrame) -> pd.DataFrame:
    """Each pair twice, (a, b, y) and (b, a, 1 - y): the data a pairwise model must be trained on
    so that P(a beats b) = 1 - P(b beats a) is learnt rather than hoped for."""
    swap = {
        "text_a": "text_b",
        "text_b": "text_a",
        "push_id_a": "push_id_b",
        "push_id_b": "push_id_a",
        "pv_a": "pv_b",
        "pv_b": "pv_a",
        "clicks_a": "clicks_b",
        "clicks_b": "clicks_a",
        "ctr_a": "ctr_b",
        "ctr_b": "ctr_a",
    }
    flipped = pairs.rename(columns={k: v for k, v in swap.items() if k in pairs.columns})
    flipped = flipped.assign(label=1.0 - pairs["label"].to_numpy())
    if "p_a_beats_b" in pairs.columns:
        flipped["p_a_beats_b"] = 1.0 - pairs["p_a_beats_b"].to_numpy()
    out = pd.concat([pairs.assign(order=0), flipped[pairs.columns].assign(order=1)])
    return out.reset_index(drop=True)


@dataclass
class StorySplitConfig:
    """How tests are grouped into stories and stories split into train and validation."""

    val_fraction: float = field(
        default=0.2,
        metadata={"help": "share of tests held out (approximately: whole stories)"},
    )
    seed: int = field(default=0, metadata={"help": "which stories are held out"})
    link_columns: tuple[str, ...] = field(
        default=("text",),
        metadata={"help": "tests sharing a value in any of these columns are one story"},
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


def assign_stories(ab_tests: pd.DataFrame, link_columns: tuple[str, ...] = ("text",)) -> pd.Series:
    """A story id per row: connected components of the graph test -- shared value, so two tests
    sharing a headline (or a lede, or a video) belong to the same story, transitively."""
    missing = [c for c in ("test_id", *link_columns) if c not in ab_tests.columns]
    if missing:
        raise DataContractError(f"ab_tests: cannot group into stories, missing column(s) {missing}")
    tests, test_idx = np.unique(ab_tests["test_id"].astype(str), return_inverse=True)
    rows, cols, n_nodes = [], [], len(tests)
    for col in link_columns:
        values = ab_tests[col]
        ok = values.notna() & (values.astype(str).str.strip() != "")
        _, val_idx = np.unique(values[ok].astype(str).str.strip(), return_inverse=True)
        rows.append(test_idx[ok.to_numpy()])
        cols.append(val_idx + n_nodes)
        n_nodes += int(val_idx.max()) + 1 if len(val_idx) else 0
    r, c = np.concatenate(rows or [np.zeros(0, int)]), np.concatenate(cols or [np.zeros(0, int)])
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n_nodes, n_nodes))
    _, labels = connected_components(graph, directed=False)
    return pd.Series(labels[test_idx], index=ab_tests.index, name="story_id")


def split_by_story(
    ab_tests: pd.DataFrame, cfg: StorySplitConfig | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation) arms; every story lies wholly on one side."""
    cfg = cfg or StorySplitConfig()
    story = assign_stories(ab_tests, cfg.link_columns)
    tests_per_story = ab_tests.groupby(story)["test_id"].nunique()
    order = np.random.default_rng(cfg.seed).permutation(tests_per_story.index.to_numpy())
    # Fill validation with whole stories in random order until it holds its share of tests.
    cum = tests_per_story.loc[order].cumsum().to_numpy()
    target = cfg.val_fraction * tests_per_story.sum()
    n_val = max(1, int(np.searchsorted(cum, target) + 1)) if len(order) > 1 else 0
    val_stories = set(order[: min(n_val, len(order) - 1)])
    in_val = story.isin(val_stories)
    return ab_tests[~in_val].copy(), ab_tests[in_val].copy()
