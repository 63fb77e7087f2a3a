"""Settings of the monitor (`MonitorConfig`), validated at construction.

Thresholds are not set here: they are calibrated from a healthy reference (monitoring/calibrate.py)
for the stated false-alarm rates. What is set here is how windows are cut, how many bootstrap
windows calibrate the bands, and the false-alarm rates the bands are built for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from pushgen.core.errors import ConfigError


@dataclass
class MonitorConfig:
    """How the log is windowed and how strict the calibrated bands are."""

    window_requests: int = 240  # requests per window (the latest window is judged)
    window: str | None = None  # or a pandas offset ("1h", "1D") cutting windows by served_at
    history_windows: int = 12  # windows shown in the charts
    min_reference_requests: int = 480  # a smaller healthy reference cannot calibrate the bands
    n_boot: int = 200  # bootstrap windows drawn from the reference per window size
    false_alarm_rate: float = 0.02  # P(any alert | healthy window), all checks together
    warn_rate: float = 0.10  # P(any warn | healthy window)
    evidently: bool = True  # add Evidently's drift tests on the picks to the evidence section
    category_drift_method: str = "jensenshannon"  # Evidently test on the picks' category mix
    category_drift_threshold: float = 0.1
    text_drift_method: str = "wasserstein"  # Evidently test on text length and word count
    text_drift_threshold: float = 0.1
    score_drift_method: str = "ks"
    score_drift_threshold: float = 0.05
    feedback_delay_h: float = 24.0  # clicks of a request are complete this long after serving
    as_of: str | None = None  # when the feedback was read (ISO time); None: now
    pool_windows: int = 12  # the exploration lift pools the explored requests of this many windows
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("false_alarm_rate", "warn_rate"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ConfigError(f"{name} must lie in (0, 1), got {value}")
        if self.warn_rate < self.false_alarm_rate:
            raise ConfigError("warn_rate must be at least false_alarm_rate")
        if self.feedback_delay_h < 0:
            raise ConfigError(f"feedback_delay_h must be >= 0, got {self.feedback_delay_h}")
        if self.as_of is not None and pd.isna(pd.to_datetime(self.as_of, errors="coerce")):
            raise ConfigError(f"as_of must be an ISO time, got {self.as_of!r}")
        for name in (
            "window_requests",
            "history_windows",
            "n_boot",
            "min_reference_requests",
            "pool_windows",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")

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
