"""Thresholds of the monitoring checks (`MonitorConfig`), validated at construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pushgen.errors import ConfigError

CORRELATIONS = ("spearman", "kendall")


@dataclass
class MonitorConfig:
    """What counts as style collapse and reward drift; every check reads its threshold here."""

    # --- style collapse: categories of the selected pushes ---
    # Evidently test for the category mix. Jensen-Shannon is a distance, so it means the same at any
    # window size (chi-square p-values flag negligible shifts once windows hold thousands of rows).
    category_drift_method: str = "jensenshannon"
    category_drift_threshold: float = 0.1  # JS distance above this = the category mix drifted
    min_category_entropy: float = 0.6  # normalised entropy (0 = one category, 1 = uniform)
    max_top_category_share: float = 0.5  # share of selected pushes in the top category
    # --- style collapse: wording of the selected pushes ---
    text_sample_size: int = 400  # texts per side; both cut to one size (distinct-n falls with n)
    max_distinct2_drop: float = 0.3  # relative fall of distinct-2 vs reference = convergence
    max_similarity_rise: float = 0.1  # absolute rise of mean pairwise cosine vs reference
    max_repeat_rate: float = 0.2  # share of selected pushes whose exact wording repeats
    similarity_encoder: str | None = None  # sentence-transformers path/id; None = TF-IDF
    text_drift_method: str = "wasserstein"  # Evidently test on text length and word count
    text_drift_threshold: float = 0.1  # normed Wasserstein distance above this = drifted
    # --- reward drift ---
    correlation: str = "spearman"  # rank correlation of reward_score vs CTR: spearman | kendall
    min_rank_correlation: float = 0.1  # below this in the latest window = ranker lost CTR
    min_pv: int = 100  # feedback with fewer exposures: CTR too noisy to rank, left out
    min_rows: int = 30  # fewer scored pushes with CTR in a window: not evaluated
    window: str | None = None  # pandas offset ("1D", "6h") splitting by served_at; None = one
    score_drift_method: str = "ks"  # Evidently test on reward_score (needs it in the reference)
    score_drift_threshold: float = 0.05  # K-S p-value below this = score distribution drifted
    # --- misc ---
    seed: int = 0  # text subsampling

    def __post_init__(self) -> None:
        if self.correlation not in CORRELATIONS:
            raise ConfigError(
                f"correlation must be one of {CORRELATIONS}, got {self.correlation!r}"
            )
        for name in (
            "min_category_entropy",
            "max_top_category_share",
            "max_repeat_rate",
            "max_distinct2_drop",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {value}")
        if not -1.0 <= self.min_rank_correlation <= 1.0:
            raise ConfigError(
                f"min_rank_correlation must lie in [-1, 1], got {self.min_rank_correlation}"
            )
        for name in ("text_sample_size", "min_rows"):
            if getattr(self, name) < 2:
                raise ConfigError(f"{name} must be at least 2, got {getattr(self, name)}")
        if self.min_pv < 1:
            raise ConfigError(f"min_pv must be at least 1, got {self.min_pv}")

    def to_dict(self) -> dict:
        """Plain dict (for summary.json and KFP metrics)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> MonitorConfig:
        """Build from a dict, naming unknown keys instead of a bare TypeError."""
        values = dict(values or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown monitor setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)
