"""Thresholds from healthy data, the verdict of one window against them, and whom to blame.

`calibrate(reference, n)` cuts `n_boot` windows of `n` *consecutive* requests out of a healthy
reference (sorted by `served_at`, random starts, wrapping round): each is a window the server could
really have logged, with the hour-to-hour and day-to-day variation of the reference (daily topic
rhythm, popular videos arriving in bursts), not only the sampling noise of single requests drawn
from the pooled reference. For each signal it sets a `warn` and an `alert` band so that a healthy
window crosses *any* alert band with probability `false_alarm_rate` (Bonferroni over the signals;
split over both sides for two-sided signals) and any warn band with `warn_rate`. Mean, ratio,
entropy and latency-quantile signals use a normal band (the windows' sd, widened by
sqrt(1 + n/N) because the reference itself is a sample of N requests); distances (Jensen-Shannon)
a gamma fit. No band is narrower than the signal's `floor`, which does not shrink as windows grow
(for latencies and click rates, a share of the reference value). A window with fewer units than the sample-size
rule (`monitoring.sample_size.required_n`) says `not evaluated` and how many it needs; a check
whose columns the log lacks says `not evaluated: column X missing`. The explored share is judged
against the epsilon the server logged (a binomial test), and alerts when exploration is off.

`verdict(checks)` blames by evidence, not by position: the alerting part whose strongest check is
furthest outside its band (in band widths) is blamed. A retrain is recommended only for the
generator or the ranker, only on a check that does not read clicks, and only while every part
upstream of it is judged and not alerting; `retrain_reason` says why in one line.
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
    MODEL_PARTS,
    PARTS,
    SIGNALS,
    Profile,
    explored_counts,
    per_request,
    unit_sd,
    window_values,
)

LEVELS = ("ok", "warn", "alert")
NOT_EVALUATED = "not evaluated"


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
            "windows": "consecutive requests of the reference, random starts",
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
    strength: float = 0.0  # distance from the center in alert half-widths (>= 1: alerting)
    ctr: bool = False  # reads clicks

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
    sd = float(np.std(boot, ddof=1)) * math.sqrt(inflate)
    relative = sig.unit in ("ms", "ctr", "ratio")  # these floors are a share of the center
    floor = sig.floor * abs(center) if relative else sig.floor
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


def reference_windows(reference: pd.DataFrame, n: int, n_boot: int, seed: int = 0):
    """`n_boot` windows of `n` consecutive requests (by served_at) from the reference."""
    ref = reference.sort_values("served_at", kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    size = len(ref)
    for start in rng.integers(0, size, n_boot):
        idx = (start + np.arange(min(n, size))) % size
        yield ref.iloc[idx].reset_index(drop=True)


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
    boot = {s.name: np.full(n_boot, np.nan) for s in SIGNALS}
    for b, sample in enumerate(reference_windows(reference, n, n_boot, seed)):
        for name, (value, _) in window_values(sample, profile).items():
            if name in boot:
                boot[name][b] = np.nan if value is None else value
    full = window_values(reference, profile)
    share = {name: units / len(reference) for name, (_, units) in full.items()}
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
            needed = max(needed, required_n(sd[sig.name] / scale, sig.effect, alpha))
        bands[sig.name] = _band(sig, boot[sig.name], inflate, a_alert, a_warn, needed)
    return Calibration(
        n, len(reference), n_boot, false_alarm_rate, warn_rate, bands, profile, share
    )


def _level(value: float, band: Band) -> tuple[str, float]:
    """(level, strength): strength is the distance from the center in alert half-widths."""

    def out(lo, hi):
        return (lo is not None and value < lo) or (hi is not None and value > hi)

    strength = 0.0
    for edge in (band.alert_lo, band.alert_hi):
        if edge is not None and band.center is not None and edge != band.center:
            strength = max(strength, (value - band.center) / (edge - band.center))
    if out(band.alert_lo, band.alert_hi):
        return "alert", strength
    if out(band.warn_lo, band.warn_hi):
        return "warn", strength
    return "ok", strength


def _exploration(window: pd.DataFrame, a_alert: float, a_warn: float) -> tuple[str, float, str]:
    """Explored share against the logged epsilon: (level, strength, detail)."""
    explored, can, eps = explored_counts(window)
    if eps is None:
        return NOT_EVALUATED, 0.0, "column epsilon missing"
    if eps <= 0:
        return "alert", 10.0, "exploration is off (logged epsilon 0): no unbiased feedback"
    if explored == 0:
        return "alert", 10.0, f"no explored request out of {can} at logged epsilon {eps:.3f}"
    p = float(stats.binomtest(explored, can, eps).pvalue)
    detail = f"{explored} of {can} explored at logged epsilon {eps:.3f} (binomial p = {p:.2g})"
    strength = abs(explored / can - eps) / max(
        math.sqrt(eps * (1 - eps) / can) * _z(a_alert / 2), 1e-9
    )
    if p < a_alert:
        return "alert", strength, detail
    return ("warn" if p < a_warn else "ok"), strength, detail


def judge(
    window: pd.DataFrame,
    cal: Calibration,
    missing: tuple[str, ...] | list[str] = (),
    pooled: pd.DataFrame | None = None,
    pooled_cal: Calibration | None = None,
) -> list[CheckResult]:
    """Every signal of one window against the calibrated bands. `missing`: log columns absent
    (their checks are not evaluated); `pooled` (+ its calibration): the charted windows together,
    for the exploration lift, which needs more explored requests than one window has."""
    values = window_values(window, cal.profile)
    if pooled is not None and pooled_cal is not None:
        values["explore_ctr_lift"] = window_values(pooled, pooled_cal.profile)["explore_ctr_lift"]
    m = len(SIGNALS)
    out = []
    for sig in SIGNALS:
        which = pooled_cal if sig.name == "explore_ctr_lift" and pooled_cal else cal
        value, units = values[sig.name]
        band = which.bands[sig.name]
        share = which.unit_share.get(sig.name) or 0.0
        needed_requests = math.ceil(band.needed / share) if share > 0 else None
        absent = [c for c in sig.needs if c in missing]
        strength = 0.0
        if absent:
            level = NOT_EVALUATED
            detail = f"column {', '.join(absent)} missing; {sig.what}"
        elif sig.kind == "exploration" and units >= band.needed:
            level, strength, detail = _exploration(
                window, cal.false_alarm_rate / m, cal.warn_rate / m
            )
        elif units < band.needed or (value is None and band.center is not None):
            level = NOT_EVALUATED
            need = f"about {needed_requests} requests" if needed_requests else "more data"
            why = " with mature feedback" if sig.ctr else ""
            detail = f"{units} units{why} in this window, needs {band.needed} ({need}); {sig.what}"
        elif band.center is None or value is None:
            level = NOT_EVALUATED
            detail = "the reference has too little data for this signal at this window size"
        else:
            (level, strength), detail = _level(value, band), sig.what
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
                float(strength),
                sig.ctr,
            )
        )
    return out


def _retrain(blamed: str | None, parts: dict, checks: list[CheckResult]) -> tuple[bool, str]:
    """(retrain?, why) for the blamed part."""
    if blamed is None:
        return False, "nothing alerts"
    if blamed not in MODEL_PARTS:
        return False, f"the {blamed} alerts: fix it; no model retrain fixes it"
    for up in PARTS[: PARTS.index(blamed)]:
        if parts.get(up) == "alert":
            return False, f"the {up} (upstream of the {blamed}) also alerts: fix that first"
        if parts.get(up) == NOT_EVALUATED:
            return False, f"the {up} (upstream of the {blamed}) cannot be judged: no retrain"
    firing = [c for c in checks if c.part == blamed and c.level == "alert"]
    if firing and all(c.ctr for c in firing):
        return False, "only click-based checks alert (a CTR drop alone never retrains)"
    return True, f"the {blamed} alerts on {', '.join(c.name for c in firing)}"


def verdict(checks: list[CheckResult]) -> dict:
    """Overall level, the part blamed (strongest evidence), each part's level, the retrain call."""
    parts = {}
    for part in PARTS:
        levels = [c.level for c in checks if c.part == part]
        judged = [lv for lv in levels if lv in LEVELS]
        parts[part] = max(judged, key=LEVELS.index) if judged else NOT_EVALUATED
    judged = [lv for lv in parts.values() if lv in LEVELS]
    overall = max(judged, key=LEVELS.index) if judged else NOT_EVALUATED
    alerting = [p for p in PARTS if parts[p] == "alert"]
    warning = [p for p in PARTS if parts[p] == "warn"]

    def evidence(part: str) -> float:
        return max((c.strength for c in checks if c.part == part and c.level == "alert"), default=0)

    blamed = max(alerting, key=evidence) if alerting else None  # ties: the most upstream
    retrain, why = _retrain(blamed, parts, checks)
    return {
        "verdict": overall,
        "blamed": blamed,
        "evidence": {p: round(evidence(p), 2) for p in alerting},
        "also_alerting": [p for p in alerting if p != blamed],
        "warning": warning,
        "parts": parts,
        "not_evaluated": [c.name for c in checks if c.level == NOT_EVALUATED],
        "retrain": retrain,
        "retrain_targets": [blamed] if retrain else [],
        "retrain_reason": why,
    }


def signal(name: str):
    """The `Signal` called `name`."""
    return BY_NAME[name]
