"""Temperature scaling of a trained pairwise ranker on held-out pairs (Guo et al. 2017).

A cross-encoder trained with BCE for one epoch is usually over- or under-confident; its expected
calibration error then says more about the training length than about the ranking. Temperature
scaling divides the logit of P(a beats b) by one fitted `T > 0`, which is monotone: every pair keeps
its side of 0.5, so the ranker's choices (Copeland wins) do not change, only its probabilities.

`T` is fitted (maximum likelihood of the decided labels under the symmetrised prediction, which is
what the metrics and the server use; T in [0.2, 10]) on a *calibration half* of the held-out
tests, chosen by a hash of `test_id` (on all of them when a half would hold fewer than
`MIN_SPLIT_PAIRS` decided pairs), and written to `ranker_config.json` (`temperature`, read by
`PairwiseRanker.score_pairs`) and `calibration.json` (the fitted T, the calibration test ids, the
ECE before and after on the other half). The gate leaves the calibration tests out of its held-out
pairs, so calibrated ECE is compared with calibrated ECE on pairs neither model was fitted on.

    info = calibrate_ranker("runs/ranker", val_pairs)
    info["temperature"], info["ece_before"], info["ece_after"]
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from pushgen.ranker.inputs import RankerSettings
from pushgen.ranker.metrics import expected_calibration_error, pairwise_accuracy, symmetrised

CALIBRATION_FILE = "calibration.json"
MIN_PAIRS = 8  # fewer decided calibration pairs: T stays 1 (nothing to fit on), said in the file
MIN_SPLIT_PAIRS = 30  # a calibration half with fewer decided pairs: T is fitted on all held-out
# pairs instead (no test is then left out by the gate: both rankers are measured on the pairs
# their temperatures were fitted on, like with like; a one-parameter fit cannot change accuracy)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def scaled(p: np.ndarray, temperature: float) -> np.ndarray:
    """sigmoid(logit(p) / T): the probability a ranker with temperature T gives."""
    return 1.0 / (1.0 + np.exp(-_logit(p) / temperature))


def fit_temperature(p_ab: np.ndarray, p_ba: np.ndarray, y: np.ndarray) -> float:
    """T minimising the log loss of the symmetrised prediction on the decided pairs (y 0 or 1)."""
    y = np.asarray(y, float)
    keep = y != 0.5
    if keep.sum() < MIN_PAIRS:
        return 1.0
    a, b, t = np.asarray(p_ab)[keep], np.asarray(p_ba)[keep], y[keep]

    def loss(log_t: float) -> float:
        p = np.clip(symmetrised(scaled(a, math.exp(log_t)), scaled(b, math.exp(log_t))), 1e-9, 1)
        p = np.minimum(p, 1 - 1e-9)
        return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))

    best = minimize_scalar(loss, bounds=(math.log(0.2), math.log(10.0)), method="bounded")
    return float(math.exp(best.x))


def calibration_tests(test_ids, share: float = 0.5) -> set[str]:
    """The held-out tests used to fit T: a stable hash of the id, about `share` of them."""
    ids = sorted({str(t) for t in test_ids})
    chosen = {
        t for t in ids if int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share
    }
    if len(ids) >= 2 and (not chosen or chosen == set(ids)):  # both halves non-empty
        chosen = set(ids[: len(ids) // 2])
    return chosen


def read_calibration(model_dir: str | Path) -> dict | None:
    """`calibration.json` of a ranker dir, or None (an uncalibrated, older ranker)."""
    path = Path(model_dir) / CALIBRATION_FILE
    return json.loads(path.read_text()) if path.exists() else None


def calibrate_ranker(
    model_dir: str | Path, pairs_val: pd.DataFrame, device: str | None = None
) -> dict:
    """Fit T on the calibration half of `pairs_val`, save it with the model; returns the record."""
    from pushgen.ranker.scoring import score_both_orders
    from pushgen.ranker.select import PairwiseRanker

    model_dir = Path(model_dir)
    settings = RankerSettings.load(model_dir)
    settings.temperature = 1.0  # the raw model's probabilities are what T is fitted on
    settings.save(model_dir)
    ranker = PairwiseRanker.from_pretrained(model_dir, device=device)
    keys = (
        pairs_val["test_id"].astype(str)
        if "test_id" in pairs_val.columns
        else pd.Series([str(i) for i in range(len(pairs_val))], index=pairs_val.index)
    )
    cal_ids = calibration_tests(keys)
    in_cal = keys.isin(cal_ids).to_numpy()
    p_ab, p_ba = score_both_orders(ranker, pairs_val)
    y = pairs_val["label"].to_numpy(float)
    note = None
    if int((in_cal & (y != 0.5)).sum()) < MIN_SPLIT_PAIRS:  # too few to split: fit on all
        note = (
            f"fewer than {MIN_SPLIT_PAIRS} decided pairs in a calibration half: T fitted on all "
            "held-out pairs, none left out by the gate"
        )
        cal_ids, in_cal = set(), np.ones(len(y), bool)
    temperature = fit_temperature(p_ab[in_cal], p_ba[in_cal], y[in_cal])
    check = ~in_cal if (~in_cal).any() else in_cal
    raw = symmetrised(p_ab[check], p_ba[check])
    cal = symmetrised(scaled(p_ab[check], temperature), scaled(p_ba[check], temperature))
    record = {
        "method": "temperature",
        "temperature": temperature,
        "calibration_pairs": int((in_cal & (y != 0.5)).sum()),
        "calibration_test_ids": sorted(cal_ids),
        "check_pairs": int((check & (y != 0.5)).sum()),
        "ece_before": expected_calibration_error(raw, y[check]),
        "ece_after": expected_calibration_error(cal, y[check]),
        "accuracy_before": pairwise_accuracy(raw, y[check]),
        "accuracy_after": pairwise_accuracy(cal, y[check]),
        "note": note
        if int((in_cal & (y != 0.5)).sum()) >= MIN_PAIRS
        else f"fewer than {MIN_PAIRS} decided calibration pairs: T left at 1",
    }
    settings.temperature = temperature
    settings.save(model_dir)
    (model_dir / CALIBRATION_FILE).write_text(json.dumps(record, indent=2))
    return record
