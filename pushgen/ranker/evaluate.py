"""Honest evaluation of a trained ranker on held-out A/B tests.

On any data: pairwise accuracy on all held-out pairs and on significant ones, AUC, calibration
(reliability table, ECE), the raw model's antisymmetry error, the surface-feature floor fitted on
the training stories, the pointwise ablation when one was trained, and selection (the observed CTR
of the chosen arm vs a random arm vs the best arm). On Upworthy, the same figures without the weeks
flagged for non-random assignment. With the simulator's truth (a `true_ctr` column or a world):
the Bayes-optimal accuracy the noise allows, and selection measured in true CTR.

    report = evaluate_model_dir("runs/ranker", read_ab_tests("ab_tests.parquet"), EvalConfig())
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from pushgen.ranker.aggregate import aggregate
from pushgen.ranker.baselines import SurfaceFeatureBaseline
from pushgen.ranker.metrics import pairwise_accuracy, pairwise_metrics, symmetrised
from pushgen.ranker.pairs import PairConfig, build_pairs_report
from pushgen.ranker.recipe import POINTWISE_SUBDIR, SPLIT_FILE, AbTestsSource, default_train_pairs
from pushgen.ranker.scoring import score_both_orders
from pushgen.ranker.select import PairwiseRanker

SELECTION_METHODS = ("copeland", "bradley_terry", "knockout")


@dataclass
class EvalConfig:
    """What to evaluate and how."""

    significance: float = 0.05  # z-test p-value below which a pair counts as significant
    n_bins: int = 10  # reliability-table bins
    use_split: bool = True  # score only the held-out stories recorded in the model directory
    max_selection_groups: int | None = None  # cap the candidate sets scored for selection
    seed: int = 0  # random-candidate baseline and group subsampling
    device: str | None = None  # "cpu", "cuda"; None: cuda when available


def held_out(
    model_dir: Path, arms: pd.DataFrame, use_split: bool
) -> tuple[pd.DataFrame, pd.DataFrame | None, str]:
    """(evaluation arms, training arms or None, a note on which tests are scored)."""
    split_file = model_dir / SPLIT_FILE
    if use_split and split_file.exists():
        split = json.loads(split_file.read_text())
        ids = arms["test_id"].astype(str)
        val = arms[ids.isin(set(split["val_test_ids"]))]
        if not val.empty:
            train = arms[ids.isin(set(split["train_test_ids"]))]
            return (
                val,
                train,
                f"held-out stories of the training run ({val['test_id'].nunique()} tests)",
            )
    return (
        arms,
        None,
        f"all tests in the file ({arms['test_id'].nunique()} tests; no training split)",
    )


def attach_truth(arms: pd.DataFrame, world=None) -> pd.DataFrame:
    """Arms with a `true_ctr` column when the truth is known (column already there, or a world)."""
    if "true_ctr" in arms.columns or world is None:
        return arms
    from pushgen.data.simulator import true_ctr

    truth = [true_ctr(world, v, t) for v, t in zip(arms["video_id"], arms["text"], strict=True)]
    return arms.assign(true_ctr=truth)


def bayes_optimal(pairs: pd.DataFrame) -> dict:
    """The accuracy an oracle that knows the true CTRs gets against the noisy observed labels.

    `expected`: mean over pairs of P(the observed winner is the truly better arm), from the normal
    approximation of the two binomial CTR estimates; `empirical`: the oracle's accuracy on the
    labels actually drawn (the ceiling for these very pairs).
    """
    ta, tb = pairs["true_ctr_a"].to_numpy(float), pairs["true_ctr_b"].to_numpy(float)
    sd = np.sqrt(ta * (1 - ta) / pairs["pv_a"] + tb * (1 - tb) / pairs["pv_b"]).to_numpy()
    expected = stats.norm.cdf(np.abs(ta - tb) / np.maximum(sd, 1e-12))
    oracle = np.where(ta > tb, 1.0, np.where(ta < tb, 0.0, 0.5))
    return {
        "expected_accuracy": float(expected.mean()),
        "empirical_accuracy": pairwise_accuracy(oracle, pairs["label"].to_numpy()),
        "oracle_prob": oracle,
    }


def _candidate_groups(arms: pd.DataFrame, match_on: tuple[str, ...]) -> list[pd.DataFrame]:
    """Per test (and matched arm group): distinct texts with pooled pv/clicks (and true CTR)."""
    keys = ["test_id", *match_on]
    aggs = {"pv": ("pv", "sum"), "clicks": ("clicks", "sum")}
    if "true_ctr" in arms.columns:
        aggs["true_ctr"] = ("true_ctr", "mean")
    if "caption" in arms.columns:
        aggs["caption"] = ("caption", "first")
    frame = arms.astype({c: str for c in match_on})
    pooled = frame.groupby([*keys, "text"], sort=False).agg(**aggs).reset_index()
    pooled["ctr"] = pooled["clicks"] / pooled["pv"].clip(lower=1)
    return [g.reset_index(drop=True) for _, g in pooled.groupby(keys, sort=False) if len(g) >= 2]


def selection_report(
    ranker: PairwiseRanker,
    arms: pd.DataFrame,
    match_on: tuple[str, ...],
    cfg: EvalConfig,
    pointwise=None,
) -> dict:
    """Mean CTR of the chosen candidate per method vs random vs best, over the held-out tests.

    Candidates are the distinct texts of one test (arms matched on `match_on`); CTR is the true
    one when known, else the observed one (noisy: the best arm's observed CTR is biased upwards).
    """
    groups = _candidate_groups(arms, match_on)
    rng = np.random.default_rng(cfg.seed)
    if cfg.max_selection_groups and len(groups) > cfg.max_selection_groups:
        groups = [
            groups[i] for i in rng.choice(len(groups), cfg.max_selection_groups, replace=False)
        ]
    if not groups:
        return {"groups": 0}
    col = "true_ctr" if "true_ctr" in arms.columns else "ctr"
    chosen: dict[str, list[float]] = {m: [] for m in SELECTION_METHODS}
    chosen["pointwise"], rand, best, same_pick = [], [], [], []
    for g in tqdm(groups, desc="selection", disable=None, leave=False):
        texts, ctr = g["text"].tolist(), g[col].to_numpy(float)
        win = ranker.win_matrix(texts, g["caption"].iloc[0] if "caption" in g else None)
        picks = {m: aggregate(win, m).chosen for m in SELECTION_METHODS}
        for m, i in picks.items():
            chosen[m].append(ctr[i])
        same_pick.append(picks["knockout"] == picks["copeland"])
        if pointwise is not None:
            chosen["pointwise"].append(ctr[int(np.argmax(pointwise.score(texts)))])
        rand.append(ctr.mean())  # expected CTR of a uniformly random pick
        best.append(ctr.max())
    out = {
        "groups": len(groups),
        "ctr": "true" if col == "true_ctr" else "observed",
        "mean_k": float(np.mean([len(g) for g in groups])),
        "random": float(np.mean(rand)),
        "best": float(np.mean(best)),
        "knockout_agrees_with_copeland": float(np.mean(same_pick)),
    }
    gap = out["best"] - out["random"]
    for m, values in chosen.items():
        if values:
            mean = float(np.mean(values))
            out[m] = {
                "mean_ctr": mean,
                "uplift_vs_random": mean / out["random"] - 1 if out["random"] > 0 else None,
                "share_of_best_uplift": (mean - out["random"]) / gap if gap > 0 else None,
            }
    return out


def _feature_floor(
    train_arms: pd.DataFrame, pairs: pd.DataFrame, pair_cfg: PairConfig, cfg
) -> dict:
    train_pairs = build_pairs_report(
        train_arms, replace(default_train_pairs(), match_on=pair_cfg.match_on)
    ).pairs
    floor = SurfaceFeatureBaseline().fit(train_pairs)
    p = floor.predict(pairs)
    return pairwise_metrics(
        p, pairs["label"], p_value=pairs["p_value"], significance=cfg.significance
    )


def _subset_lines(pairs: pd.DataFrame, p: np.ndarray, cfg: EvalConfig) -> dict:
    """The headline figures without the weeks flagged for non-random assignment (Upworthy)."""
    keep = ~pairs["nonrandom_assignment"].astype(bool).to_numpy()
    sig = pairs["p_value"].to_numpy() < cfg.significance
    y = pairs["label"].to_numpy()
    return {
        "pairs": int(keep.sum()),
        "accuracy": pairwise_accuracy(p[keep], y[keep]),
        "significant_pairs": int((keep & sig).sum()),
        "accuracy_significant": pairwise_accuracy(p[keep & sig], y[keep & sig]),
    }


def evaluate_model_dir(
    model_dir: str | Path, source: AbTestsSource, cfg: EvalConfig | None = None, world=None
) -> dict:
    """The full report (see the module docstring) for the ranker saved in `model_dir`."""
    cfg = cfg or EvalConfig()
    model_dir = Path(model_dir)
    ranker = PairwiseRanker.from_pretrained(model_dir, device=cfg.device)
    eval_arms, train_arms, note = held_out(model_dir, source.arms, cfg.use_split)
    eval_arms = attach_truth(eval_arms, world)
    flags = tuple(c for c in ("nonrandom_assignment", "caption") if c in eval_arms.columns)
    carry = ("true_ctr",) if "true_ctr" in eval_arms.columns else ()
    pair_cfg = PairConfig(match_on=source.match_on, carry=carry, carry_test=flags)
    built = build_pairs_report(eval_arms, pair_cfg)
    pairs = built.pairs
    report: dict = {"model": str(model_dir), "format": source.format, "scored": note}
    report["pairs_built"] = built.stats

    # the ranker: both orders scored, decisions on the symmetrised probability
    p_ab, p_ba = score_both_orders(ranker, pairs)
    p = symmetrised(p_ab, p_ba)
    report["ranker"] = pairwise_metrics(
        p_ab,
        pairs["label"],
        p_ba=p_ba,
        p_value=pairs["p_value"],
        significance=cfg.significance,
        n_bins=cfg.n_bins,
    )
    if "nonrandom_assignment" in flags:
        report["ranker_random_assignment_only"] = _subset_lines(pairs, p, cfg)
    if train_arms is not None:
        report["feature_baseline"] = _feature_floor(train_arms, pairs, pair_cfg, cfg)

    pointwise = None
    if (model_dir / POINTWISE_SUBDIR).exists():
        from pushgen.ranker.pointwise import PointwiseScorer

        pointwise = PointwiseScorer.from_pretrained(model_dir / POINTWISE_SUBDIR, device=cfg.device)
        pp = pointwise.pair_probs(pairs["text_a"].tolist(), pairs["text_b"].tolist())
        report["pointwise"] = pairwise_metrics(
            pp, pairs["label"], p_value=pairs["p_value"], significance=cfg.significance
        )

    if carry:  # the truth is known: how close to the best the noise allows
        bayes = bayes_optimal(pairs)
        oracle = bayes.pop("oracle_prob")
        sig = pairs["p_value"].to_numpy() < cfg.significance
        bayes["empirical_accuracy_significant"] = pairwise_accuracy(
            oracle[sig], pairs["label"].to_numpy()[sig]
        )
        bayes["ranker_share"] = report["ranker"]["accuracy"] / bayes["empirical_accuracy"]
        if pointwise is not None:
            bayes["pointwise_share"] = report["pointwise"]["accuracy"] / bayes["empirical_accuracy"]
        report["bayes_optimal"] = bayes
    report["selection"] = selection_report(ranker, eval_arms, source.match_on, cfg, pointwise)
    return report


def headline_lines(report: dict) -> list[str]:
    """A few lines for the terminal: the figures people ask for first."""
    r = report["ranker"]
    lines = [
        f"scored: {report['scored']}",
        f"ranker: accuracy {r['accuracy']:.3f} on {r['pairs']} pairs, "
        f"{r.get('accuracy_significant', float('nan')):.3f} on {r.get('significant_pairs', 0)} "
        f"significant; AUC {r['auc']:.3f}; ECE {r['ece']:.3f}; "
        f"antisymmetry error {r.get('antisymmetry_error', float('nan')):.4f}",
    ]
    for key, name in (("feature_baseline", "surface-feature floor"), ("pointwise", "pointwise")):
        if key in report:
            m = report[key]
            lines.append(
                f"{name}: accuracy {m['accuracy']:.3f}, significant {m['accuracy_significant']:.3f}"
            )
    if "ranker_random_assignment_only" in report:
        m = report["ranker_random_assignment_only"]
        lines.append(
            f"without non-random weeks: accuracy {m['accuracy']:.3f} on {m['pairs']} pairs, "
            f"significant {m['accuracy_significant']:.3f} on {m['significant_pairs']}"
        )
    if "bayes_optimal" in report:
        b = report["bayes_optimal"]
        lines.append(
            f"Bayes-optimal accuracy {b['empirical_accuracy']:.3f} (expected "
            f"{b['expected_accuracy']:.3f}); ranker reaches {b['ranker_share']:.1%} of it"
        )
    s = report.get("selection", {})
    if s.get("groups"):
        lines.append(
            f"selection ({s['ctr']} CTR, {s['groups']} sets, mean K {s['mean_k']:.1f}): "
            f"random {s['random']:.4f}, copeland {s['copeland']['mean_ctr']:.4f}, "
            f"knockout {s['knockout']['mean_ctr']:.4f}, best {s['best']:.4f}"
        )
    return lines
