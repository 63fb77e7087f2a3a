"""Thresholds from healthy data, and the verdict of one window against them.

`calibrate(reference, n)` draws `n_boot` windows of `n` requests from a healthy reference (the
bootstrap), computes every signal on each, and sets for each a `warn` and an `alert` band so that a
healthy window crosses *any* alert band with probability `false_alarm_rate` (Bonferroni over the
signals; one side or split over two for two-sided signals) and any warn band with `warn_rate`.
Mean and ratio signals use a normal band (the bootstrap sd, widened by sqrt(1 + n/N) because the
reference itself is a sample of N requests); distances (Jensen-Shannon) a gamma fit to the
bootstrap. No band is narrower than the signal's practical `floor`. A window with fewer units than
the sample-size rule (`monitoring.sample_size.required_n`) says `not evaluated` and how many it needs.

`judge(window, calibration)` gives each check a level (ok / warn / alert / not evaluated) and
`verdict(checks)` blames the most upstream part that alerts (inputs, then generator, then ranker).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from monitoring.sample_size import required_n
from monitoring.signals import (
    BY_NAME,
    PARTS,
    SIGNALS,
    Profile,
    per_request,
    unit_sd,
    window_values,
)

LEVELS = ("ok", "warn", "alert")


@dataclass
class Band:
    """Healthy range of one signal for windows of `n` requests."""

    center: float | None
    warn_lo: float | None
    warn_hi: float | None
    alert_lo: float | None
    alert_hi: float | None
    needed: int  # units a window needs before this signal is judged


@dataclass
class Calibration:
    """Bands per signal, and how they were made."""

    n: int  # requests per window the bands are for
    n_reference: int
    n_boot: int
    false_alarm_rate: float
    warn_rate: float
    bands: dict[str, Band]
    profile: Profile = field(repr=False)
    unit_share: dict[str, float] = field(default_factory=dict)  # units per request, per signal

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "n_reference": self.n_reference,
            "n_boot": self.n_boot,
            "false_alarm_rate": self.false_alarm_rate,
            "warn_rate": self.warn_rate,
            "bands": {k: asdict(b) for k, b in self.bands.items()},
        }


@dataclass
class CheckResult:
    """One signal on one window: its value, healthy band and level."""

    name: str
    part: str
    level: str  # ok | warn | alert | not evaluated
    value: float | None
    center: float | None
    alert_lo: float | None
    alert_hi: float | None
    warn_lo: float | None
    warn_hi: float | None
    units: int
    needed: int
    needed_requests: int | None  # requests a window needs for `needed` units (None: unknown)
    unit: str
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


def _z(alpha: float) -> float:
    return float(stats.norm.isf(alpha))


def _band(
    sig, boot: np.ndarray, inflate: float, a_alert: float, a_warn: float, needed: int
) -> Band:
    boot = boot[~np.isnan(boot)]
    if len(boot) < 10:
        return Band(None, None, None, None, None, needed)
    center = float(np.mean(boot))
    two = sig.direction == "both"
    aa, aw = (a_alert / 2, a_warn / 2) if two else (a_alert, a_warn)
    if sig.kind == "js":
        vals = np.maximum(boot * math.sqrt(inflate), 1e-9)
        m, v = vals.mean(), max(vals.var(ddof=1), 1e-12)
        shape, scale = m * m / v, v / m
        hi_a = float(stats.gamma.isf(aa, shape, scale=scale))
        hi_w = float(stats.gamma.isf(aw, shape, scale=scale))
        return Band(
            center,
            None,
            max(hi_w, center + sig.floor / 2),
            None,
            max(hi_a, center + sig.floor),
            needed,
        )
    sd = float(np.std(boot, ddof=1)) * math.sqrt(inflate if sig.kind != "distinct" else 1.0)
    floor = sig.floor if sig.unit != "ctr" and sig.unit != "ratio" else 0.0
    da, dw = max(_z(aa) * sd, floor), max(_z(aw) * sd, floor / 2)
    lo = sig.direction in ("down", "both")
    hi = sig.direction in ("up", "both")
    if sig.unit in ("ctr", "ratio"):  # rates are never negative: a band below 0 reads as 0
        dw, da = min(dw, center), min(da, center)
    return Band(
        center,
        center - dw if lo else None,
        center + dw if hi else None,
        center - da if lo else None,
        center + da if hi else None,
        needed,
    )


def calibrate(
    reference: pd.DataFrame,
    n: int,
    n_boot: int = 200,
    false_alarm_rate: float = 0.02,
    warn_rate: float = 0.10,
    seed: int = 0,
) -> Calibration:
    """Warn and alert bands for windows of `n` requests, from a healthy reference request table."""
    if len(reference) < 2:
        raise ValueError("the reference needs at least 2 requests")
    profile = Profile.of(reference)
    rng = np.random.default_rng(seed)
    boot = {s.name: np.full(n_boot, np.nan) for s in SIGNALS}
    for b in range(n_boot):
        sample = reference.iloc[rng.integers(0, len(reference), n)].reset_index(drop=True)
        for name, (value, _) in window_values(sample, profile).items():
            boot[name][b] = np.nan if value is None else value
    full = window_values(reference, profile)
    share = {name: units / len(reference) for name, (_, units) in full.items()}
    share["candidate_distinct_2"] = 1.0  # its units are the window's first requests
    sd = unit_sd(reference)
    per_unit = per_request(reference)
    m = len(SIGNALS)
    a_alert, a_warn = false_alarm_rate / m, warn_rate / m
    inflate = 1 + n / len(reference)
    bands = {}
    for sig in SIGNALS:
        needed = sig.min_n
        if sig.kind in ("mean", "ratio") and not math.isnan(sd.get(sig.name, math.nan)):
            scale = 1.0
            if sig.kind == "ratio":  # sd and effect relative to the pooled rate of the units
                num, den = per_unit[sig.name]
                keep = ~np.isnan(num) & ~np.isnan(den)
                scale = float(num[keep].sum() / den[keep].sum()) if den[keep].sum() > 0 else 1.0
            alpha = a_alert / 2 if sig.direction == "both" else a_alert
            # ratio signals: sd and effect relative to the reference value
            needed = max(needed, required_n(sd[sig.name] / scale, sig.effect, alpha))
        bands[sig.name] = _band(sig, boot[sig.name], inflate, a_alert, a_warn, needed)
    return Calibration(
        n, len(reference), n_boot, false_alarm_rate, warn_rate, bands, profile, share
    )


def _level(value: float, band: Band) -> str:
    def out(lo, hi):
        return (lo is not None and value < lo) or (hi is not None and value > hi)

    if out(band.alert_lo, band.alert_hi):
        return "alert"
    if out(band.warn_lo, band.warn_hi):
        return "warn"
    return "ok"


def judge(window: pd.DataFrame, cal: Calibration) -> list[CheckResult]:
    """Every signal of one window against the calibrated bands."""
    values = window_values(window, cal.profile)
    out = []
    for sig in SIGNALS:
        value, units = values[sig.name]
        band = cal.bands[sig.name]
        share = cal.unit_share.get(sig.name) or 0.0
        needed_requests = math.ceil(band.needed / share) if share > 0 else None
        if units < band.needed or (value is None and band.center is not None):
            level = "not evaluated"
            need = f"about {needed_requests} requests" if needed_requests else "more data"
            detail = f"{units} units in this window, needs {band.needed} ({need}); {sig.what}"
        elif band.center is None or value is None:
            level = "not evaluated"
            detail = "the reference has too little data for this signal at this window size"
        else:
            level, detail = _level(value, band), sig.what
        out.append(
            CheckResult(
                sig.name,
                sig.part,
                level,
                value,
                band.center,
                band.alert_lo,
                band.alert_hi,
                band.warn_lo,
                band.warn_hi,
                units,
                band.needed,
                needed_requests,
                sig.unit,
                detail,
            )
        )
    return out


def verdict(checks: list[CheckResult]) -> dict:
    """Overall level, the part blamed (most upstream alerting), and each part's level."""
    parts = {}
    for part in PARTS:
        levels = [c.level for c in checks if c.part == part]
        judged = [lv for lv in levels if lv in LEVELS]
        parts[part] = max(judged, key=LEVELS.index) if judged else "not evaluated"
    judged = [lv for lv in parts.values() if lv in LEVELS]
    overall = max(judged, key=LEVELS.index) if judged else "not evaluated"
    alerting = [p for p in PARTS if parts[p] == "alert"]
    warning = [p for p in PARTS if parts[p] == "warn"]
    blamed = alerting[0] if alerting else None
    return {
        "verdict": overall,
        "blamed": blamed,
        "also_alerting": alerting[1:],
        "warning": warning,
        "parts": parts,
        "not_evaluated": [c.name for c in checks if c.level == "not evaluated"],
    }


def signal(name: str):
    """The `Signal` called `name`."""
    return BY_NAME[name]
