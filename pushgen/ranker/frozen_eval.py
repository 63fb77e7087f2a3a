"""Held-out evaluation of the frozen-encoder listwise ranker against its floor, in one run.

Same data and story split as `train-ranker` (recipe: val_fraction 0.2, seed 0, Upworthy stories
linked by headline or lede, arms matched on the image, training pairs p < 0.1). For each encoder
(and their concatenation): the frozen linear probe on e_a - e_b (the floor), and the set
transformer trained on whole tests with the pairwise loss and with Plackett-Luce. The set
transformer trains on the training stories minus a 15% dev split, where its temperature is
fitted (calibration); the probe trains on all training stories. Figures on held-out pairs: all
pairs, significant pairs (p < 0.05), AUC, ECE, and without the non-random weeks.

    python -m pushgen.ranker.frozen_eval --ab-tests data/upworthy_ab.parquet \\
        --backbone default --backbone all-mpnet-base-v2 --json runs/frozen_eval.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pushgen.core.errors import ConfigError
from pushgen.ranker.evaluate import EvalConfig, _subset_lines
from pushgen.ranker.frozen import (
    ANCHORS,
    EmbeddingCache,
    FrozenListwiseConfig,
    ensemble_scores,
    fit_temperature,
    linear_probe,
    set_scorer_scores,
    train_set_scorer,
)
from pushgen.ranker.listwise_train import ab_test_groups
from pushgen.ranker.metrics import pairwise_metrics
from pushgen.ranker.pairs import StorySplitConfig, build_pairs_report, split_by_story
from pushgen.ranker.recipe import AbTestsSource, _pair_config, default_train_pairs, read_ab_tests
from pushgen.ranker.scoring import pair_probs_by_test


def _figures(p: np.ndarray, pairs: pd.DataFrame) -> dict:
    m = pairwise_metrics(p, pairs["label"], p_value=pairs["p_value"])
    out = {
        k: m[k]
        for k in (
            "pairs",
            "accuracy",
            "auc",
            "ece",
            "significant_pairs",
            "accuracy_significant",
            "auc_significant",
        )
    }
    if "nonrandom_assignment" in pairs.columns:
        sub = _subset_lines(pairs, p, EvalConfig())
        out["accuracy_significant_random_weeks_only"] = sub["accuracy_significant"]
    return out


def _splits(
    source: AbTestsSource, seed: int = 0, fit_max_p: float = 0.1, fit_weight: str = "uniform"
) -> dict:
    """Arms and pairs of the recipe's split, plus a dev split carved from the training stories."""
    split = StorySplitConfig(val_fraction=0.2, seed=seed, link_columns=source.story_links)
    train_arms, val_arms = split_by_story(source.arms, split)
    fit_arms, dev_arms = split_by_story(train_arms, replace(split, val_fraction=0.15, seed=1))
    pair_cfg = _pair_config(default_train_pairs(), source)
    all_pairs = replace(pair_cfg, max_p_value=1.0)
    weak = replace(pair_cfg, max_p_value=fit_max_p, weight=fit_weight)
    return {
        "pair_cfg": pair_cfg,
        "fit_pairs": build_pairs_report(fit_arms, pair_cfg).pairs,
        "fit_pairs_weak": build_pairs_report(fit_arms, weak).pairs,
        # the set transformer may also learn from weak pairs, weighted by their evidence
        "fit_groups": ab_test_groups(fit_arms, weak),
        "dev_pairs": build_pairs_report(dev_arms, all_pairs).pairs,
        "val_pairs": build_pairs_report(val_arms, all_pairs).pairs,
        "texts": sorted(
            (
                set(source.arms["text"].astype(str))
                | set(source.arms.get("caption", pd.Series(dtype=str)).dropna().astype(str))
            )
            - {""}
        ),
    }


def _pair_diffs(table: dict[str, np.ndarray], pairs: pd.DataFrame) -> np.ndarray:
    return np.stack(
        [table[a] - table[b] for a, b in zip(pairs["text_a"], pairs["text_b"], strict=True)]
    )


def mcnemar_vs(p_floor: np.ndarray, p_model: np.ndarray, pairs: pd.DataFrame) -> dict:
    """Paired comparison on the significant decided pairs: how many only the model got right
    (`model_only`), only the floor got right (`floor_only`), and the exact McNemar p-value
    (two-sided binomial test on the discordant pairs)."""
    from scipy.stats import binomtest

    y = pairs["label"].to_numpy(float)
    sig = (pairs["p_value"].to_numpy() < 0.05) & (y != 0.5)
    right_floor = (p_floor[sig] > 0.5) == (y[sig] == 1)
    right_model = (p_model[sig] > 0.5) == (y[sig] == 1)
    model_only = int(np.sum(right_model & ~right_floor))
    floor_only = int(np.sum(right_floor & ~right_model))
    n = model_only + floor_only
    p_value = binomtest(model_only, n, 0.5).pvalue if n else 1.0
    return {"model_only": model_only, "floor_only": floor_only, "p_value": float(p_value)}


def _probes(
    s: dict, table: dict, val: pd.DataFrame, dev: pd.DataFrame
) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The floor: linear probes on e_a - e_b fitted on the fit split, C chosen and temperature
    fitted on the dev split; one on p < 0.1 pairs (the reference setup), one on the same weak,
    evidence-weighted pairs the set transformer learns from. Their figures, their weights, and
    their held-out probabilities."""
    out, coefs, preds = {}, {}, {}
    x_dev, x_val = _pair_diffs(table, dev), _pair_diffs(table, val)
    y_dev = dev["label"].to_numpy(float)
    sig_dev = (dev["p_value"].to_numpy() < 0.05) & (y_dev != 0.5)
    for name, pairs, weighted in (
        ("linear_probe", s["fit_pairs"], False),
        ("linear_probe_weak_pairs", s["fit_pairs_weak"], True),
    ):
        best = None
        for c in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0):
            probe = linear_probe(pairs, table, c, use_weights=weighted)
            acc = float(
                np.mean((probe.decision_function(x_dev[sig_dev]) > 0) == (y_dev[sig_dev] == 1))
            )
            if best is None or acc > best[0]:
                best = (acc, c, probe)
        acc, c, probe = best
        temperature = fit_temperature(probe.decision_function(x_dev), y_dev)
        p = 1.0 / (1.0 + np.exp(-probe.decision_function(x_val) / temperature))
        out[name] = {
            **_figures(p, val),
            "C": c,
            "dev_accuracy_significant": acc,
            "temperature": temperature,
        }
        coefs[name] = probe.coef_[0].astype(np.float32)
        preds[name] = p
    return out, coefs, preds


SELECT_METRICS = ("accuracy_significant", "log_loss")


def _dev_metric(score, dev: pd.DataFrame, metric: str = "accuracy_significant") -> float:
    """A set scorer's (`score(sets)`) figure on the dev split, higher is better: accuracy on
    the significant decided pairs, or minus the log loss on all decided pairs after a fitted
    temperature (smoother: every pair counts). Every test is scored with all its texts, as on
    the held-out split."""
    y = dev["label"].to_numpy(float)
    p = np.clip(pair_probs_by_test(score, dev), 1e-7, 1 - 1e-7)
    if metric == "log_loss":
        logit = np.log(p / (1 - p)) / fit_temperature(np.log(p / (1 - p)), y)
        keep = y != 0.5
        q = 1.0 / (1.0 + np.exp(-logit[keep]))
        return float(np.mean(y[keep] * np.log(q) + (1 - y[keep]) * np.log(1 - q)))
    sig = (dev["p_value"].to_numpy() < 0.05) & (y != 0.5)
    return float(np.mean((p[sig] > 0.5) == (y[sig] == 1)))


def evaluate_frozen(
    source: AbTestsSource,
    backbones: list[str],
    emb_dir: str | Path,
    layers: int = 3,
    cfg: FrozenListwiseConfig | None = None,
    losses: tuple[str, ...] = ("pairwise", "plackett_luce"),
    fit_max_p: float = 0.1,
    fit_weight: str = "uniform",
    use_caption: bool = False,
    select_epoch: bool = False,
    select_metric: str = "accuracy_significant",
    anchor_probe: str = "dev",
    members: int = 1,
) -> dict:
    """The report: per feature set (each encoder, and all of them concatenated) the probe floor
    and the set transformer per loss, on held-out stories. `anchor_probe` (with `cfg.anchor`
    "probe"): which probe the set transformer starts from, "dev" for the one with the better dev
    accuracy, or a probe's name. `members`: the set transformer is the mean score of this many
    models trained with different seeds. `select_epoch`: keep the set
    transformer's epoch (0 = before training) with the best dev significant-pair accuracy."""
    cfg = cfg or FrozenListwiseConfig()
    if members < 1:
        raise ConfigError(f"members must be at least 1, got {members}")
    if use_caption and "caption" not in source.arms.columns:
        # Upworthy has no caption; the lede (the story's opening line) is the context it has
        if "lede" not in source.arms.columns:
            raise ConfigError("use_caption: the arms have neither a caption nor a lede")
        source = replace(source, arms=source.arms.assign(caption=source.arms["lede"].fillna("")))
    s = _splits(source, fit_max_p=fit_max_p, fit_weight=fit_weight)
    tables = {}
    for bb in backbones:
        cache = EmbeddingCache(emb_dir, None if bb == "default" else bb, layers)
        tables[bb] = dict(zip(s["texts"], cache.embed(s["texts"]), strict=True))
    if len(backbones) > 1:
        tables["+".join(backbones)] = {
            t: np.concatenate([tables[bb][t] for bb in backbones]) for t in s["texts"]
        }
    report: dict = {
        "split": "recipe split: val_fraction 0.2, seed 0; dev 15% of training stories, seed 1",
        "fit_pairs_p_lt_0.1": len(s["fit_pairs"]),
        "fit_pairs_weak": len(s["fit_pairs_weak"]),
        "fit_tests": len(s["fit_groups"]),
        "val_pairs": len(s["val_pairs"]),
        "layers": layers,
        "caption": "lede" if use_caption else None,
        "fit_pairs": {"max_p_value": fit_max_p, "weight": fit_weight},
        "select_epoch": select_metric if select_epoch else None,
        "config": asdict(cfg),
        "results": {},
    }
    val, dev = s["val_pairs"], s["dev_pairs"]
    for name, table in tables.items():
        res: dict = {}
        probes, coefs, probe_preds = _probes(s, table, val, dev)
        res.update(probes)
        # the anchor: the probe that did better on the dev split (the reference one on a tie)
        anchor = anchor_probe
        if anchor == "dev":
            anchor = max(probes, key=lambda k: probes[k]["dev_accuracy_significant"])
        elif anchor not in probes:
            raise ConfigError(f"anchor_probe must be 'dev' or one of {sorted(probes)}")
        for loss in losses:
            start = time.perf_counter()
            run_cfg = replace(cfg, dim=len(next(iter(table.values()))), loss=loss)

            def dev_score(m, table=table):
                def score_with(sets):
                    return set_scorer_scores(m, sets, table, captions=use_caption)

                return _dev_metric(score_with, dev, select_metric)

            # member m trains with seed + 1000 m (member 0 is the single model of this seed)
            models = [
                train_set_scorer(
                    s["fit_groups"],
                    table,
                    replace(run_cfg, seed=cfg.seed + 1000 * m),
                    captions=use_caption,
                    probe_coef=coefs[anchor] if cfg.anchor == "probe" else None,
                    dev_score=dev_score if select_epoch else None,
                )
                for m in range(members)
            ]

            def score(sets, models=models, table=table):
                return ensemble_scores(models, sets, table, captions=use_caption)

            raw_dev = pair_probs_by_test(score, dev)
            dev_logit = np.log(raw_dev / (1 - raw_dev))
            temperature = fit_temperature(dev_logit, dev["label"].to_numpy(float))
            p_val = pair_probs_by_test(score, val, temperature)
            res[f"set_transformer_{loss}"] = {
                **_figures(p_val, val),
                "dev_accuracy_significant": _figures(raw_dev, dev)["accuracy_significant"],
                "temperature": temperature,
                "train_s": time.perf_counter() - start,
                **({"anchor_probe": anchor} if cfg.anchor == "probe" else {}),
                "members": members,
                "vs_linear_probe": mcnemar_vs(probe_preds["linear_probe"], p_val, val),
                **(
                    {"selection": [m.selection for m in models if hasattr(m, "selection")]}
                    if select_epoch
                    else {}
                ),
            }
        report["results"][name] = res
    return report


def table_lines(report: dict) -> list[str]:
    """A markdown table of the report's figures."""
    lines = [
        "| features | model | significant pairs | all pairs | AUC (sig.) | ECE | sig., random weeks |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, res in report["results"].items():
        for model, m in res.items():
            lines.append(
                f"| {name} | {model} | {m['accuracy_significant']:.1%} | {m['accuracy']:.1%} | "
                f"{m['auc_significant']:.3f} | {m['ece']:.3f} | "
                f"{m.get('accuracy_significant_random_weeks_only', float('nan')):.1%} |"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ab-tests", required=True, help="ab_tests table, or the Upworthy archive")
    p.add_argument("--backbone", action="append", help="encoder(s): default, all-mpnet-base-v2")
    p.add_argument("--layers", type=int, default=3, help="mean of the last N layers (1..4)")
    p.add_argument("--emb-dir", default="runs/emb", help="embedding cache")
    p.add_argument("--epochs", type=int, default=FrozenListwiseConfig.epochs)
    p.add_argument("--seed", type=int, default=0, help="set transformer initialisation and order")
    p.add_argument(
        "--fit-max-p", type=float, default=1.0, help="set transformer: learn from pairs p <= this"
    )
    p.add_argument(
        "--fit-weight", default="posterior", choices=("uniform", "confidence", "posterior")
    )
    p.add_argument("--caption", action="store_true", help="the lede as the caption vector")
    p.add_argument(
        "--anchor",
        default=FrozenListwiseConfig.anchor,
        choices=ANCHORS,
        help="probe: start the set transformer at the dev-chosen linear probe (frozen) and learn "
        "a correction over the set",
    )
    p.add_argument(
        "--anchor-probe",
        default="dev",
        choices=("dev", "linear_probe", "linear_probe_weak_pairs"),
        help="the probe the anchored model starts from (dev: the better one on the dev split)",
    )
    p.add_argument(
        "--select-epoch",
        nargs="?",
        const="accuracy_significant",
        choices=SELECT_METRICS,
        help="keep the epoch (0: before training) with the best dev figure",
    )
    p.add_argument("--members", type=int, default=1, help="set transformers averaged (seeds)")
    p.add_argument("--lr", type=float, default=FrozenListwiseConfig.lr, help="set transformer")
    p.add_argument("--width", type=int, default=FrozenListwiseConfig.width)
    p.add_argument("--weight-decay", type=float, default=FrozenListwiseConfig.weight_decay)
    p.add_argument(
        "--loss", action="append", choices=("pairwise", "plackett_luce"), help="default: both"
    )
    p.add_argument("--json", required=True, dest="json_out")
    args = p.parse_args(argv)
    source = read_ab_tests(args.ab_tests)
    cfg = FrozenListwiseConfig(
        epochs=args.epochs,
        seed=args.seed,
        anchor=args.anchor,
        lr=args.lr,
        width=args.width,
        weight_decay=args.weight_decay,
    )
    report = evaluate_frozen(
        source,
        args.backbone or ["default"],
        args.emb_dir,
        args.layers,
        cfg,
        losses=tuple(args.loss or ("pairwise", "plackett_luce")),
        fit_max_p=args.fit_max_p,
        fit_weight=args.fit_weight,
        use_caption=args.caption,
        select_epoch=bool(args.select_epoch),
        select_metric=args.select_epoch or "accuracy_significant",
        anchor_probe=args.anchor_probe,
        members=args.members,
    )
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(report, indent=2))
    print("\n".join(table_lines(report)))


if __name__ == "__main__":
    main()
