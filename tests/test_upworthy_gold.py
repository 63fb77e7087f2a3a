"""The hand-labelled gold set of real headlines: its shape, and the labeller measured on it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pushgen.data.categories import DEFAULT_CATEGORIES
from pushgen.evidence.upworthy_report import gold_set_quality

GOLD = Path(__file__).resolve().parents[1] / "docs" / "results" / "upworthy" / "gold_labels.csv"


def test_gold_set_is_at_least_150_distinct_labelled_headlines():
    gold = pd.read_csv(GOLD)
    assert len(gold) >= 150 and gold["headline"].is_unique
    assert set(gold["category"]) <= set(DEFAULT_CATEGORIES)
    assert gold["clickability_test_id"].str.fullmatch(r"[0-9a-f]{24}").all()
    assert (GOLD.parent / "gold_rules.md").exists()


def test_labeller_is_measured_on_the_gold_set(tiny_encoder_dir):
    quality = gold_set_quality(str(tiny_encoder_dir))
    assert quality["items"] == len(pd.read_csv(GOLD))
    assert 0.0 <= quality["accuracy"] <= 1.0
    lo, hi = quality["accuracy_ci"]
    assert lo <= quality["accuracy"] <= hi
