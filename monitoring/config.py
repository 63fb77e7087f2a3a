"""Thresholds of the monitoring checks (`MonitorConfig`), validated at construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pushgen.errors import ConfigError

CORRELATIONS = ("spearman", "kendall")


@dataclass
class MonitorConfig:
    """What counts as style collapse and reward drift; every check reads its threshold here."""

    # --- style collapse: categories of the selected pushes ---
    # Evidently stat test for the category mix. Jensen-Shannon is a distance, so it stays meaningful at
    # any window size (chi-square p-values flag negligible shifts once windows hold thousands of rows).
    category_drift_method: str = "jensenshannon"
    category_drift_threshold: float = 0.1  # JS distance above this = the category mix drifted
    min_category_entropy: float = 0.6  # normalised Shannon entropy (0 = one category, 1 = uniform)
    max_top_category_share: float = (
        0.5  # share of selected pushes in the single most common category
    )
    # --- style collapse: wording of the selected pushes ---
    text_sample_size: int = (
        400  # texts per side; both sides are cut to the same size (distinct-n falls with n)
    )
    max_distinct2_drop: float = (
        0.3  # relative fall of distinct-2 vs reference that counts as convergence
    )
    max_similarity_rise: float = (
        0.15  # absolute rise of mean pairwise cosine similarity vs reference
    )
    max_repeat_rate: float = 0.2  # share of selected pushes whose exact wording another one repeats
    similarity_encoder: str | None = (
        None  # sentence-transformers path/id; None = TF-IDF cosine (no model)
    )
    text_drift_method: str = (
        "wasserstein"  # Evidently test on text descriptors (length, words, repeats)
    )
    text_drift_threshold: float = 0.1  # normed Wasserstein distance above this = descriptor drifted
    # --- reward drift ---
    correlation: str = (
        "spearman"  # rank correlation of reward_score vs observed CTR: spearman | kendall
    )
    min_rank_correlation: float = (
        0.1  # correlation below this in the latest window = the ranker stopped tracking CTR
    )
    min_pv: int = (
        100  # feedback with fewer exposures gives a CTR too noisy to rank; left out (counted)
    )
    min_rows: int = (
        30  # fewer scored pushes with feedback than this: the correlation is not evaluated
    )
    window: str | None = (
        None  # pandas offset ("1D", "6h") splitting the current log by served_at; None = one window
    )
    score_drift_method: str = (
        "ks"  # Evidently test on the reward_score distribution (needs it in the reference)
    )
    score_drift_threshold: float = 0.05  # K-S p-value below this = the score distribution drifted
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
