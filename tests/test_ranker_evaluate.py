"""Evaluation: metrics on hand-made predictions, the Bayes-optimal ceiling, the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pushgen.cli.main import main
from pushgen.ranker.baselines import SurfaceFeatureBaseline, surface_features
from pushgen.ranker.evaluate import bayes_optimal
from pushgen.ranker.metrics import (
    antisymmetry_error,
    expected_calibration_error,
    pairwise_accuracy,
    pairwise_auc,
    pairwise_metrics,
    reliability_table,
)


def test_accuracy_and_auc_on_hand_made_predictions():
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.2])
    y = np.array([1, 0, 0, 1, 0.5])  # the last is a kept tie: counts for neither side
    assert pairwise_accuracy(p, y) == pytest.approx(3 / 4)
    # positives {0.9, 0.6}, negatives {0.8, 0.3}: 3 of 4 (pos, neg) orderings right
    assert pairwise_auc(p, y) == pytest.approx(3 / 4)
    assert np.isnan(pairwise_auc(p[:1], y[:1]))


def test_reliability_table_and_ece_on_hand_made_predictions():
    p = np.array([0.15, 0.15, 0.15, 0.15, 0.85, 0.85, 0.85, 0.85])
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    table = reliability_table(p, y, n_bins=10)
    assert table["count"].sum() == 8
    row = table[table["count"] == 4].iloc[0]
    assert row["bin_low"] == pytest.approx(0.1) and row["observed_rate"] == pytest.approx(0.25)
    # |0.25 - 0.15| and |1.0 - 0.85|, each on half the pairs
    assert expected_calibration_error(p, y) == pytest.approx((0.10 + 0.15) / 2)
    assert expected_calibration_error(np.array([0.0, 1.0]), np.array([0, 1])) == pytest.approx(0.0)


def test_antisymmetry_and_significant_subset():
    p_ab, p_ba = np.array([0.7, 0.4, 0.9]), np.array([0.3, 0.5, 0.2])
    assert antisymmetry_error(p_ab, p_ba) == pytest.approx((0 + 0.1 + 0.1) / 3)
    out = pairwise_metrics(
        p_ab, np.array([1, 1, 0]), p_ba=p_ba, p_value=np.array([0.01, 0.5, 0.03])
    )
    # symmetrised: 0.7, 0.45, 0.85 -> right, wrong, wrong; significant pairs are the 1st and 3rd
    assert out["accuracy"] == pytest.approx(1 / 3)
    assert out["significant_pairs"] == 2 and out["accuracy_significant"] == pytest.approx(0.5)


def test_bayes_optimal_accuracy_from_the_truth():
    pairs = pd.DataFrame(
        {
            "true_ctr_a": [0.05, 0.02, 0.03],
            "true_ctr_b": [0.02, 0.05, 0.03 + 1e-9],
            "pv_a": [10_000] * 3,
            "pv_b": [10_000] * 3,
            "label": [1.0, 1.0, 0.0],  # the 2nd label went against the truth (noise)
        }
    )
    b = bayes_optimal(pairs)
    assert b["empirical_accuracy"] == pytest.approx(2 / 3)
    # two clear pairs (~1.0 each) and one coin flip (0.5)
    assert b["expected_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3, abs=1e-3)


def test_surface_feature_floor_learns_a_question_effect():
    texts_q = [f"Why does story {i} matter?" for i in range(40)]
    texts_p = [f"Story {i} matters a lot" for i in range(40)]
    pairs = pd.DataFrame({"text_a": texts_q, "text_b": texts_p, "label": 1.0, "weight": 1.0})
    pairs.loc[::2, ["text_a", "text_b"]] = pairs.loc[::2, ["text_b", "text_a"]].values
    pairs.loc[::2, "label"] = 0.0
    floor = SurfaceFeatureBaseline().fit(pairs)
    assert pairwise_accuracy(floor.predict(pairs), pairs["label"]) == 1.0
    assert surface_features(["You won 3 prizes!"]).tolist() == [[17, 4, 0, 1, 1, 1]]


@pytest.fixture(scope="module")
def trained_on_sim(sim_dir, tiny_encoder_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("rk_sim")
    argv = [
        "train-ranker",
        "--ab-tests",
        str(sim_dir / "ab_tests.parquet"),
        "--out",
        str(out),
        "--backbone",
        str(tiny_encoder_dir),
        "--epochs",
        "1",
        "--lr",
        "1e-3",
        "--max-p-value",
        "1",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--pointwise",
    ]
    assert main(argv) == 0
    return out


def test_train_and_eval_cli_on_simulated_data(trained_on_sim, sim_dir, tmp_path, capsys):
    split = json.loads((trained_on_sim / "split.json").read_text())
    assert split["val_test_ids"] and not set(split["val_test_ids"]) & set(split["train_test_ids"])
    report_path = tmp_path / "eval.json"
    argv = [
        "eval-ranker",
        "--model",
        str(trained_on_sim),
        "--ab-tests",
        str(sim_dir / "ab_tests.parquet"),
        "--world",
        str(sim_dir / "world.json"),
        "--json",
        str(report_path),
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    report = json.loads(report_path.read_text())
    assert report["scored"].startswith("held-out stories")
    for key in ("ranker", "feature_baseline", "pointwise", "bayes_optimal", "selection"):
        assert key in report, key
    r = report["ranker"]
    assert 0 <= r["accuracy"] <= 1 and 0 <= r["ece"] <= 1 and r["antisymmetry_error"] >= 0
    assert len(r["reliability"]) == 10
    b = report["bayes_optimal"]
    assert 0.5 <= b["empirical_accuracy"] <= 1 and b["ranker_share"] == pytest.approx(
        r["accuracy"] / b["empirical_accuracy"]
    )
    s = report["selection"]
    assert s["ctr"] == "true" and s["groups"] > 0
    assert s["random"] <= s["best"]
    for method in ("copeland", "bradley_terry", "knockout", "pointwise"):
        assert s["random"] * 0.5 < s[method]["mean_ctr"] <= s["best"] + 1e-12
    assert "Bayes-optimal" in capsys.readouterr().out


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys, trained_on_sim):
    assert (
        main(
            [
                "train-ranker",
                "--ab-tests",
                str(tmp_path / "nope.parquet"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"test_id": ["t"], "text": ["x"]}).to_parquet(bad)
    assert main(["train-ranker", "--ab-tests", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "missing column" in capsys.readouterr().err
    assert (
        main(["eval-ranker", "--model", str(tmp_path), "--ab-tests", str(bad), "--json", "x.json"])
        == 2
    )
    assert main(["train-ranker", "--ab-tests", str(bad), "--out", "o", "--max-p-value", "2"]) == 2
    assert "--max-p-value" in capsys.readouterr().err
