"""Clean a push history for SFT: hard filter, per-cluster CTR quantile crop, confidence weight.

PushGen's recipe (docs/design.md), vectorised over whole columns so a million pushes take seconds:

1. contract check: malformed rows (missing ids, clicks > pv, rates outside [0, 1], ...) are rejected;
2. hard filter: `CTR>0.6% & SVR<40% & LVTR>50% & HTR<1% & PV>800` (every threshold configurable);
3. soft filter: within each cluster (the video's topic, or an embedding cluster of its caption),
   drop pushes whose CTR lies outside the cluster's [5%, 95%] quantiles, so no cluster's outliers
   dominate;
4. a `confidence` column, the per-sample SFT loss weight, `bounded` (default), `literal`, or
   `none` (every push weighs 1: the ablation without confidence weighting).

Every removed row is kept, with a `reject_reason`, and counted per cluster and per category.

    result = clean_pushes(pushes, CleanConfig(), videos=videos)
    result.cleaned, result.removed, result.report

CLI: `pushgen clean --pushes pushes.parquet --videos videos.parquet --out runs/x/cleaned.parquet`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from pushgen.core.errors import ConfigError, DataContractError
from pushgen.data.contracts import validate

Weighting = Literal["bounded", "literal", "none"]
WEIGHTINGS = ("bounded", "literal", "none")
CTR_CAP = 0.1  # the paper saturates the CTR term at 10%
PV_CAP = 10_000  # ... and the exposure term at 10k views


@dataclass
class CleanConfig:
    """How pushes are filtered and weighted (defaults: the paper's values)."""

    min_ctr: float = field(default=0.006, metadata={"help": "keep CTR > this (0.6%)"})
    max_svr: float = field(default=0.40, metadata={"help": "keep short-view rate (SVR) < this"})
    min_lvtr: float = field(
        default=0.50, metadata={"help": "keep long-view-through rate (LVTR) > this"}
    )
    max_htr: float = field(
        default=0.01, metadata={"help": "keep hate/negative-feedback rate (HTR) < this"}
    )
    min_pv: int = field(default=800, metadata={"help": "keep exposures (PV) > this"})
    cluster_by: Literal["topic", "embedding"] = field(
        default="topic", metadata={"help": "what a soft-filter cluster is"}
    )
    n_embedding_clusters: int = field(
        default=8,
        metadata={"help": "k-means clusters of caption embeddings (cluster_by=embedding)"},
    )
    quantile_low: float = field(
        default=0.05, metadata={"help": "drop pushes with CTR below this quantile of their cluster"}
    )
    quantile_high: float = field(
        default=0.95, metadata={"help": "drop pushes with CTR above this quantile of their cluster"}
    )
    min_cluster_size: int = field(
        default=20,
        metadata={"help": "smaller clusters skip the soft filter (quantiles meaningless)"},
    )
    weighting: Weighting = field(
        default="bounded",
        metadata={
            "help": "confidence formula: bounded (in [0.3, 1]); literal: the paper as written; "
            "none: every push weighs 1"
        },
    )
    encoder: str | None = field(
        default=None,
        metadata={"help": "sentence encoder for embedding clusters (None: packaged MiniLM)"},
    )
    seed: int = field(default=0, metadata={"help": "k-means seed"})

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.cluster_by not in ("topic", "embedding"):
            raise ConfigError(f"cluster_by must be 'topic' or 'embedding', got {self.cluster_by!r}")
        if not 0.0 <= self.quantile_low < self.quantile_high <= 1.0:
            raise ConfigError(
                f"need 0 <= quantile_low < quantile_high <= 1, got "
                f"{self.quantile_low} and {self.quantile_high}"
            )
        for name in ("min_ctr", "max_svr", "min_lvtr", "max_htr"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(
                    f"{name} is a rate and must lie in [0, 1], got {getattr(self, name)}"
                )
        if self.min_pv < 0 or self.min_cluster_size < 1 or self.n_embedding_clusters < 1:
            raise ConfigError("min_pv must be >= 0, min_cluster_size and n_embedding_clusters >= 1")


@dataclass
class CleanResult:
    """Kept pushes (with `confidence`, `cluster`), removed pushes (with `reject_reason`), counts."""

    cleaned: pd.DataFrame
    removed: pd.DataFrame
    report: dict = field(default_factory=dict)


def confidence_weight(ctr, pv, variant: Weighting = "bounded") -> np.ndarray:
    """Per-sample loss weight from CTR and exposures.

    literal (paper as written): `0.3 + 0.35*min(CTR,.1)/.1 + 0.35*ln²(min(PV,1e4)/1e4)`; the PV
    term *falls* as PV grows (PV=800 alone adds 2.23), so it trusts thinly exposed pushes most.
    bounded (default): `0.3 + 0.35*min(CTR,.1)/.1 + 0.35*(ln min(PV,1e4) / ln 1e4)²`, in [0.3, 1],
    growing with CTR and PV, which is the paper's stated intent. PV below 1 counts as 1 (ln 0).
    none: 1 for every push (the ablation: SFT without confidence weighting).
    """
    if variant not in WEIGHTINGS:
        raise ConfigError(f"weighting must be one of {WEIGHTINGS}, got {variant!r}")
    ctr = np.asarray(ctr, dtype=np.float64)
    pv = np.asarray(pv, dtype=np.float64)
    if np.isnan(ctr).any() or np.isnan(pv).any():
        raise DataContractError("confidence_weight: ctr and pv must not be NaN")
    if (ctr < 0).any() or (pv < 0).any():
        raise DataContractError("confidence_weight: ctr and pv must not be negative")
    if variant == "none":
        return np.ones(np.broadcast(ctr, pv).shape)
    ctr_term = 0.35 * np.minimum(ctr, CTR_CAP) / CTR_CAP
    pv_capped = np.clip(pv, 1.0, PV_CAP)
    if variant == "literal":
        pv_term = 0.35 * np.log(pv_capped / PV_CAP) ** 2
    else:
        pv_term = 0.35 * (np.log(pv_capped) / np.log(PV_CAP)) ** 2
    return 0.3 + ctr_term + pv_term


# Hard-filter rules in report order: (name, column, keep-test).
def _hard_rules(cfg: CleanConfig) -> list[tuple[str, str, callable]]:
    return [
        (f"ctr<={cfg.min_ctr:g}", "ctr", lambda x: x > cfg.min_ctr),
        (f"svr>={cfg.max_svr:g}", "svr", lambda x: x < cfg.max_svr),
        (f"lvtr<={cfg.min_lvtr:g}", "lvtr", lambda x: x > cfg.min_lvtr),
        (f"htr>={cfg.max_htr:g}", "htr", lambda x: x < cfg.max_htr),
        (f"pv<={cfg.min_pv}", "pv", lambda x: x > cfg.min_pv),
    ]


def unavailable_rules(pushes: pd.DataFrame, cfg: CleanConfig) -> dict[str, str]:
    """`{rule: why}` for the hard rules this data cannot be judged by: its column is absent or
    never measured (real data without viewing metrics, e.g. the Upworthy archive has no SVR)."""
    out = {}
    for name, col, _ in _hard_rules(cfg):
        if col not in pushes.columns:
            out[name] = f"column {col} absent from the data"
        elif pushes[col].isna().all():
            out[name] = f"column {col} never measured (all null)"
    return out


def hard_filter(pushes: pd.DataFrame, cfg: CleanConfig) -> tuple[np.ndarray, pd.Series]:
    """Boolean keep-mask, and per row the failed rules ('hard: ctr<=0.006; pv<=800'; '' if kept).

    Reasons are built from a bitmask over the few distinct failure combinations, not per row,
    so a million rows cost a handful of vectorised comparisons. A rule whose column is absent or
    all null is not applied (`unavailable_rules` says which); a null value in a measured column
    fails nothing (it cannot be judged).
    """
    rules = _hard_rules(cfg)
    skip = unavailable_rules(pushes, cfg)
    code = np.zeros(len(pushes), dtype=np.int16)
    for bit, (name, col, keep) in enumerate(rules):
        if name in skip:
            continue
        values = pushes[col].to_numpy(dtype=np.float64)
        code |= (~keep(values) & ~np.isnan(values)).astype(np.int16) << bit
    names = {
        c: "hard: " + "; ".join(name for bit, (name, _, _) in enumerate(rules) if c >> bit & 1)
        for c in np.unique(code)
        if c
    }
    names[0] = ""
    reason = pd.Series(pd.Categorical.from_codes(*_codes(code, names)), index=pushes.index)
    return code == 0, reason


def _codes(code: np.ndarray, names: dict[int, str]) -> tuple[np.ndarray, list[str]]:
    """Map bitmask codes to (category codes, category labels) for a cheap categorical column."""
    keys = sorted(names)
    lookup = np.zeros(max(keys) + 1, dtype=np.int32)
    lookup[keys] = np.arange(len(keys))
    return lookup[code], [names[k] for k in keys]


def soft_filter(ctr: pd.Series, cluster: pd.Series, cfg: CleanConfig) -> np.ndarray:
    """Keep-mask: CTR within the [quantile_low, quantile_high] quantiles of its own cluster.

    Clusters smaller than `min_cluster_size` are kept whole: a 5% quantile of 3 rows would drop a
    push for being the smallest of three, which is not evidence of noise.
    """
    grouped = ctr.groupby(cluster, observed=True, sort=False)
    lo = grouped.transform("quantile", cfg.quantile_low).to_numpy()
    hi = grouped.transform("quantile", cfg.quantile_high).to_numpy()
    size = grouped.transform("size").to_numpy()
    values = ctr.to_numpy()
    return (size < cfg.min_cluster_size) | ((values >= lo) & (values <= hi))


def assign_clusters(
    pushes: pd.DataFrame,
    cfg: CleanConfig,
    videos: pd.DataFrame | None = None,
    captions: pd.DataFrame | None = None,
) -> pd.Series:
    """The soft-filter cluster of each push: its video's topic, or a caption embedding cluster."""
    if cfg.cluster_by == "embedding":
        if captions is None:
            raise DataContractError("cluster_by=embedding needs the captions table (--captions)")
        video_cluster = embedding_clusters(captions, cfg)
        cluster = pushes["video_id"].map(video_cluster)
    elif "topic" in pushes.columns:
        cluster = pushes["topic"]
    else:
        source = next(
            (t for t in (videos, captions) if t is not None and {"video_id", "topic"} <= set(t)),
            None,
        )
        if source is None:
            raise DataContractError(
                "cluster_by=topic needs each push's topic: a `topic` column in pushes, or the "
                "videos table, or captions with a `topic` column"
            )
        topic = source.drop_duplicates("video_id").set_index("video_id")["topic"]
        cluster = pushes["video_id"].map(topic)
    # a push whose video has no topic/caption forms its own visible cluster rather than vanishing
    return cluster.astype("string").fillna("<unknown>").astype("category")


def embedding_clusters(captions: pd.DataFrame, cfg: CleanConfig) -> pd.Series:
    """`video_id -> 'emb<k>'`: k-means over sentence embeddings of each video's caption."""
    from sklearn.cluster import KMeans

    from pushgen.data.label import encode_texts

    captions = captions.drop_duplicates("video_id")
    k = min(cfg.n_embedding_clusters, len(captions))
    emb = encode_texts(captions["caption"].astype(str).tolist(), cfg.encoder)
    labels = KMeans(n_clusters=k, n_init=4, random_state=cfg.seed).fit_predict(emb)
    return pd.Series([f"emb{c}" for c in labels], index=captions["video_id"].to_numpy())


def clean_pushes(
    pushes: pd.DataFrame,
    cfg: CleanConfig | None = None,
    videos: pd.DataFrame | None = None,
    captions: pd.DataFrame | None = None,
    known_video_ids=None,
) -> CleanResult:
    """Validate, hard-filter, soft-filter and weight `pushes`; nothing is dropped unaccounted.

    Pushes of videos not in `known_video_ids` (default: the videos table's ids, when given) are
    rejected as 'unknown video_id'.
    """
    cfg = cfg or CleanConfig()
    known = known_video_ids
    if known is None and videos is not None and "video_id" in videos.columns:
        known = videos["video_id"]
    valid, invalid = validate("pushes", pushes, known_video_ids=known)
    invalid["reject_reason"] = "invalid: " + invalid["reject_reason"].astype(str)
    for col in ("ctr", "svr", "lvtr", "htr"):
        if col in valid.columns:  # validate() checked they parse; make them floats
            valid[col] = pd.to_numeric(valid[col], errors="coerce")

    # 1. hard filter (the paper's thresholds)
    keep_hard, hard_reason = hard_filter(valid, cfg)
    valid["cluster"] = assign_clusters(valid, cfg, videos, captions)
    after_hard = valid[keep_hard]

    # 2. soft filter: CTR quantile crop within each cluster, on the hard filter's survivors
    keep_soft = soft_filter(after_hard["ctr"], after_hard["cluster"], cfg)
    cleaned = after_hard[keep_soft].copy()
    soft_dropped = after_hard[~keep_soft].copy()
    soft_dropped["reject_reason"] = (
        f"soft: ctr outside cluster q{cfg.quantile_low:g}-q{cfg.quantile_high:g}"
    )
    hard_dropped = valid[~keep_hard].copy()
    hard_dropped["reject_reason"] = hard_reason[~keep_hard]

    # 3. confidence weight: the per-sample loss weight in SFT
    cleaned["confidence"] = confidence_weight(cleaned["ctr"], cleaned["pv"], cfg.weighting)

    parts = [df for df in (invalid, hard_dropped, soft_dropped) if len(df)] or [invalid]
    removed = pd.concat(parts, ignore_index=True)
    report = clean_report(cfg, len(pushes), invalid, hard_dropped, soft_dropped, valid, cleaned)
    report["not_applied"] = unavailable_rules(valid, cfg)
    if valid["cluster"].nunique() == 1 and str(valid["cluster"].iloc[0]) == "<unknown>":
        report["not_applied"]["clusters"] = (
            "no topic in the data: the CTR quantile crop runs over one cluster (all pushes)"
        )
    return CleanResult(cleaned.reset_index(drop=True), removed, report)


def clean_report(
    cfg: CleanConfig,
    rows_in: int,
    invalid: pd.DataFrame,
    hard_dropped: pd.DataFrame,
    soft_dropped: pd.DataFrame,
    valid: pd.DataFrame,
    cleaned: pd.DataFrame,
) -> dict:
    """Counts removed by each filter, overall, per hard rule, per cluster and per category."""
    skipped = unavailable_rules(valid, cfg) if len(valid) else {}
    rules = [name for name, _, _ in _hard_rules(cfg) if name not in skipped]
    # few distinct reason strings: count those, then split them into rules
    per_reason = hard_dropped["reject_reason"].value_counts()
    report = {
        "config": asdict(cfg),
        "rows_in": rows_in,
        "rejected_invalid": len(invalid),
        "removed_hard": len(hard_dropped),
        "removed_soft": len(soft_dropped),
        "rows_out": len(cleaned),
        # a row failing two rules counts under both, so these may sum to more than removed_hard
        "removed_hard_by_rule": {
            r: int(
                sum(
                    n
                    for why, n in per_reason.items()
                    if r in str(why).removeprefix("hard: ").split("; ")
                )
            )
            for r in rules
        },
        "invalid_by_reason": invalid["reject_reason"].value_counts().astype(int).to_dict(),
        "by_cluster": _breakdown(valid, hard_dropped, soft_dropped, cleaned, "cluster"),
    }
    if "category" in valid.columns:
        report["by_category"] = _breakdown(valid, hard_dropped, soft_dropped, cleaned, "category")
    return report


def _breakdown(valid, hard_dropped, soft_dropped, cleaned, key: str) -> dict[str, dict[str, int]]:
    """`{group: {valid, removed_hard, removed_soft, kept}}` for one grouping column."""
    counts = pd.DataFrame(
        {
            "valid": valid[key].astype(str).value_counts(),
            "removed_hard": hard_dropped[key].astype(str).value_counts(),
            "removed_soft": soft_dropped[key].astype(str).value_counts(),
            "kept": cleaned[key].astype(str).value_counts(),
        }
    )
    counts = counts.fillna(0).astype(int).sort_index()
    return {str(k): row for k, row in counts.to_dict(orient="index").items()}


def clean_metrics(report: dict) -> dict[str, float]:
    """The report flattened to KFP metric names (`removed_hard.ctr`, `cluster.<name>.kept`, ...)."""
    flat = {
        k: float(report[k])
        for k in ("rows_in", "rejected_invalid", "removed_hard", "removed_soft", "rows_out")
    }
    for rule, n in report["removed_hard_by_rule"].items():
        flat[f"removed_hard.{rule.split('<')[0].split('>')[0]}"] = float(n)
    for rule in report.get("not_applied", {}):  # 1: this filter could not be applied here
        flat[f"not_applied.{rule.split('<')[0].split('>')[0]}"] = 1.0
    for group in ("by_cluster", "by_category"):
        for name, counts in report.get(group, {}).items():
            for what, n in counts.items():
                flat[f"{group.removeprefix('by_')}.{name}.{what}"] = float(n)
    return flat


def config_from_dict(values: dict) -> CleanConfig:
    """`CleanConfig(**values)` with a clear error naming unknown keys."""
    known = set(CleanConfig.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown clean setting(s) {unknown}; known: {sorted(known)}")
    return CleanConfig(**values)
