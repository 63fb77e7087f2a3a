"""The listwise figures in the README are generated from docs/results/listwise.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pushgen.evidence.listwise_results import MARKERS, render, sim_run
from pushgen.evidence.results import read_section
from pushgen.ranker.frozen_eval import mcnemar_vs

REPO = Path(__file__).resolve().parents[1]


def test_readme_listwise_section_matches_listwise_json():
    results = json.loads((REPO / "docs" / "results" / "listwise.json").read_text())
    assert read_section(REPO / "README.md", MARKERS) == render(results), (
        "README's listwise section disagrees with docs/results/listwise.json: "
        "run `python -m pushgen.evidence.listwise_results ... --readme README.md`"
    )


def _sim_dir(tmp_path: Path, share: float) -> Path:
    d = tmp_path / f"run{share}"
    d.mkdir()
    ranker = {
        "pairs": 100,
        "accuracy": 0.8,
        "significant_pairs": 60,
        "accuracy_significant": 0.9,
        "auc": 0.88,
        "ece": 0.05,
    }
    selection = {"random": 0.05, "best": 0.07, "copeland": {"mean_ctr": 0.065}}
    (d / "eval.json").write_text(
        json.dumps(
            {
                "scored": "held-out stories of the training run (9 tests)",
                "ranker": ranker,
                "selection": selection,
                "bayes_optimal": {"empirical_accuracy": 0.8 / share, "ranker_share": share},
            }
        )
    )
    cfg = {
        "head": "listwise",
        "epochs": 5,
        "batch_size": 16,
        "learning_rate": 2e-4,
        "listwise_loss": "pairwise",
    }
    (d / "train_metrics.json").write_text(json.dumps({"config": cfg, "train_runtime_s": 600}))
    world = {"seed": 7, "videos": {"video_id": ["v1", "v2", "v3"]}}
    (d / "world.json").write_text(json.dumps(world))
    return d


def _sim_run(tmp_path: Path, share: float) -> dict:
    d = _sim_dir(tmp_path, share)
    return sim_run(d, d / "world.json")


def test_simulated_rows_say_whether_the_target_is_met(tmp_path):
    short = render({"machine": "m", "simulated": [_sim_run(tmp_path, 0.899)]})
    assert "89.9%" in short and "target ≥ 90%: **not met**" in short
    assert "a world of 3 videos (seed 7), held-out stories of the training run (9 tests)" in short
    met = render({"machine": "m", "simulated": [_sim_run(tmp_path, 0.91)]})
    assert "target ≥ 90%: met" in met and "6.50% (5.00% / 7.00%)" in met


def test_mcnemar_counts_only_the_discordant_significant_pairs():
    pairs = pd.DataFrame({"label": [1.0] * 6 + [0.0] * 2 + [1.0], "p_value": [0.01] * 8 + [0.5]})
    floor = np.array([0.9, 0.9, 0.1, 0.1, 0.1, 0.9, 0.1, 0.9, 0.1])
    model = np.array([0.9, 0.1, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.9])
    vs = mcnemar_vs(floor, model, pairs)
    # significant pairs 0..7: model only right on 2, 3, 4 and 7; floor only on 1
    assert (vs["model_only"], vs["floor_only"]) == (4, 1)
    assert 0.3 < vs["p_value"] < 0.4  # two-sided binomial, 4 of 5
