"""The ranker's end-to-end training recipe, shared by `pushgen train-ranker` and the KFP component.

load A/B tests (project contract or Upworthy) -> split by story -> pairs -> train the pairwise
cross-encoder (and optionally the pointwise ablation) -> save the model, the split and the pairs
set aside, each with a reason.

    metrics = train_from_ab_tests(read_ab_tests("ab_tests.parquet"), "runs/ranker", RankerRecipeConfig())
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from pushgen.core.distributed import ranks, staged_output
from pushgen.core.errors import ConfigError, DataContractError
from pushgen.data.contracts import check_columns, read_table, write_rejected, write_table
from pushgen.ranker.config import RankerTrainConfig
from pushgen.ranker.pairs import (
    PairConfig,
    StorySplitConfig,
    build_pairs_report,
    split_by_story,
)
from pushgen.ranker.train import train_ranker
from pushgen.ranker.upworthy import (
    UPWORTHY_PAIR_MATCH,
    UPWORTHY_STORY_LINKS,
    is_upworthy,
    upworthy_to_ab_tests,
)

FORMATS = ("auto", "ab_tests", "upworthy")
SPLIT_FILE = "split.json"
POINTWISE_SUBDIR = "pointwise"


@dataclass
class AbTestsSource:
    """A/B arms in the `ab_tests` contract plus how this source pairs arms and groups stories."""

    arms: pd.DataFrame
    format: str  # "ab_tests" or "upworthy"
    match_on: tuple[str, ...]  # pair only arms equal on these (Upworthy: the same image)
    story_links: tuple[str, ...]  # tests sharing any of these values are one story


def attach_captions(arms: pd.DataFrame, captions: pd.DataFrame) -> pd.DataFrame:
    """Arms with a `caption` per video: from a `captions` table, or title + description of a
    `videos` table. Arms whose video has no caption get an empty one (counted, not dropped)."""
    if "caption" in captions.columns:
        text = captions["caption"].astype(str)
    elif {"title", "description"} <= set(captions.columns):
        text = captions["title"].astype(str) + ". " + captions["description"].fillna("").astype(str)
    else:
        raise DataContractError("captions: need a `caption` column, or `title` and `description`")
    if "video_id" not in captions.columns:
        raise DataContractError("captions: missing column `video_id`")
    lookup = dict(zip(captions["video_id"].astype(str), text, strict=True))
    return arms.assign(caption=arms["video_id"].astype(str).map(lookup).fillna(""))


def read_ab_tests(
    path: str | Path, fmt: str = "auto", captions: str | Path | None = None
) -> AbTestsSource:
    """Read A/B tests from `path` (the `ab_tests` table or the Upworthy archive), with captions
    joined by `video_id` when a captions (or videos) table is given."""
    source = _read_arms(path, fmt)
    if captions is not None:
        source.arms = attach_captions(source.arms, read_table(captions))
    return source


def _read_arms(path: str | Path, fmt: str) -> AbTestsSource:
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, got {fmt!r}")
    df = read_table(path)
    if fmt == "upworthy" or (fmt == "auto" and is_upworthy(df)):
        arms = upworthy_to_ab_tests(df)
        return AbTestsSource(arms, "upworthy", UPWORTHY_PAIR_MATCH, UPWORTHY_STORY_LINKS)
    check_columns("ab_tests", df)
    # Simulated/project tests about the same video share its caption: one story per video.
    return AbTestsSource(df, "ab_tests", (), ("text", "video_id"))


def default_train_pairs() -> PairConfig:
    """Training pairs: p < 0.1 (most A/B pairs are noise; the reference setup uses this cut)."""
    return PairConfig(max_p_value=0.1)


@dataclass
class RankerRecipeConfig:
    """Everything `train_from_ab_tests` needs, one config per concern."""

    pairs: PairConfig = field(default_factory=default_train_pairs)  # how training pairs are made
    split: StorySplitConfig = field(default_factory=StorySplitConfig)  # which stories are held out
    train: RankerTrainConfig = field(default_factory=RankerTrainConfig)  # the cross-encoder fit
    pointwise: bool = field(
        default=False,
        metadata={"help": "also train the pointwise ablation (a CTR regressor per arm)"},
    )
    exclude_nonrandom: bool = field(
        default=False,
        metadata={
            "help": "leave tests flagged for non-random assignment (Upworthy 2013-26..2014-02) "
            "out of training"
        },
    )
    # when no training pair passes pairs.max_p_value (tiny data), train on all pairs weighted by
    # their evidence (1 - p) instead of failing; metrics say so (`pairs_fallback`)
    fallback_all_pairs: bool = True


def _pair_config(cfg: PairConfig, source: AbTestsSource) -> PairConfig:
    """`cfg` with the source's arm matching, carrying the non-random-assignment flag if present."""
    flags = tuple(c for c in ("nonrandom_assignment", "caption") if c in source.arms.columns)
    return replace(
        cfg, match_on=cfg.match_on or source.match_on, carry_test=cfg.carry_test or flags
    )


def train_from_ab_tests(
    source: AbTestsSource, out_dir: str | Path, cfg: RankerRecipeConfig | None = None
) -> dict:
    """Split by story, build pairs, train (and save) the ranker; returns the metrics dict.

    Under torchrun (pairwise heads) every rank builds the same pairs and trains its share of each
    batch; rank 0 alone writes `out_dir`, staged and published whole when training succeeded.
    """
    cfg = cfg or RankerRecipeConfig()
    if ranks().world_size > 1 and (cfg.train.head == "listwise" or cfg.pointwise):
        raise ConfigError(
            "under torchrun only the pairwise heads train (segment_diff, cls); "
            "the listwise head and the pointwise baseline run in one process"
        )
    with staged_output(out_dir) as out:
        return _train_from_ab_tests(source, out, cfg)


def _train_from_ab_tests(source: AbTestsSource, out: Path | None, cfg: RankerRecipeConfig) -> dict:
    """`train_from_ab_tests`'s body; `out` is rank 0's staging dir (None on the other ranks)."""
    split_cfg = replace(cfg.split, link_columns=source.story_links)
    train_arms, val_arms = split_by_story(source.arms, split_cfg)
    if cfg.exclude_nonrandom and "nonrandom_assignment" in train_arms.columns:
        train_arms = train_arms[~train_arms["nonrandom_assignment"].astype(bool)]
    pair_cfg = _pair_config(cfg.pairs, source)
    train_res = build_pairs_report(train_arms, pair_cfg)
    fallback = None
    if train_res.pairs.empty and cfg.fallback_all_pairs and pair_cfg.max_p_value < 1.0:
        # Too little data for any significant pair: weak evidence beats no model, but weighted
        # so that near-coin-flip pairs count for little.
        fallback = (
            f"no training pair with p <= {pair_cfg.max_p_value}: all pairs, confidence weights"
        )
        train_res = build_pairs_report(
            train_arms, replace(pair_cfg, max_p_value=1.0, weight="confidence")
        )
    # Validation scores every held-out pair (ties aside), as `eval-ranker` does; the figures on
    # significant pairs are reported next to them.
    val_res = build_pairs_report(val_arms, replace(pair_cfg, max_p_value=1.0))

    # What did not become a training pair is kept with its reason, never dropped silently.
    aside = pd.concat(
        [train_res.set_aside.assign(side="train"), val_res.set_aside.assign(side="val")]
    )
    if out is not None:
        rejected_arms = pd.concat([train_res.rejected_arms, val_res.rejected_arms])
        write_rejected(rejected_arms, out / "data", "pairs")
    if out is not None and not aside.empty:
        write_table(aside, out / "data" / "pairs_set_aside.parquet")
    split = {
        "format": source.format,
        "story_links": list(source.story_links),
        "match_on": list(pair_cfg.match_on),
        "val_test_ids": sorted(val_arms["test_id"].astype(str).unique().tolist()),
        "train_test_ids": sorted(train_arms["test_id"].astype(str).unique().tolist()),
    }
    if out is not None:
        (out / SPLIT_FILE).write_text(json.dumps(split))

    train_cfg = replace(cfg.train, use_caption=cfg.train.use_caption or "caption" in source.arms)
    if train_cfg.head == "listwise":  # one sequence per test, with all its arms
        from pushgen.ranker.listwise_train import ab_test_groups, train_listwise

        used = pair_cfg if not fallback else replace(pair_cfg, max_p_value=1.0, weight="confidence")
        groups = ab_test_groups(train_arms, used)
        metrics = train_listwise(groups, val_res.pairs, out, train_cfg)
    else:
        metrics = train_ranker(train_res.pairs, val_res.pairs, out, train_cfg)
    metrics["pairs"] = {"train": train_res.stats, "val": val_res.stats}
    if fallback:
        metrics["pairs_fallback"] = fallback
    if cfg.pointwise:
        from pushgen.ranker.pointwise import train_pointwise

        used = set(train_res.pairs["push_id_a"]) | set(train_res.pairs["push_id_b"])
        arms = train_arms[train_arms["push_id"].isin(used)]
        metrics["pointwise"] = train_pointwise(arms, val_arms, out / POINTWISE_SUBDIR, cfg.train)
    if out is not None:
        (out / "train_metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    return metrics


def set_aside_table(out_dir: str | Path) -> pd.DataFrame:
    """Every arm and pair a training run set aside (`<out_dir>/data/*.parquet`), in one table with
    its `reject_reason` (empty, with the column, when nothing was)."""
    parts = [pd.read_parquet(p) for p in sorted((Path(out_dir) / "data").glob("*.parquet"))]
    return pd.concat(parts) if parts else pd.DataFrame({"reject_reason": pd.Series(dtype=str)})


def headline_figures(result: dict) -> dict[str, float]:
    """The figures a pipeline run logs for the ranker (from `train_from_ab_tests`'s result);
    one that could not be computed is None (KFP's Metrics leave it out)."""
    val = result.get("val", {})
    pairs = result["pairs"]
    figures = {
        "train_pairs": result["train_pairs"],
        "train_loss": result["train_loss"],
        "train_examples_per_s": result["train_examples_per_s"],
        "val_pairs": val.get("pairs", 0),
        "val_accuracy": val.get("accuracy"),
        "val_accuracy_significant": val.get("accuracy_significant"),
        "val_auc": val.get("auc"),
        "val_ece": val.get("ece"),
        "val_antisymmetry_error": val.get("antisymmetry_error"),
        "arms_rejected": pairs["train"]["arms_rejected"] + pairs["val"]["arms_rejected"],
        # 1 when no training pair passed max_p_value and all pairs were used with evidence weights
        "pairs_fallback_all": float(bool(result.get("pairs_fallback"))),
    }
    return {k: None if v is None else float(v) for k, v in figures.items()}
