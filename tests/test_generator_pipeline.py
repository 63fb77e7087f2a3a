"""The generator's CLI, KFP component (real local runner) and evaluation, on a tiny Llama."""
# (no `from __future__ import annotations`: kfp reads the pipeline signature's real types)

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.training import run_in_process
from pushgen.cli.main import main
from pushgen.generator.evaluate import beat_rate, distinct_n, mean_pairwise_cosine


def test_metric_functions() -> None:
    assert distinct_n(["a b c", "a b d"]) == pytest.approx(3 / 4)
    assert distinct_n(["one"]) == 0.0
    e = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert mean_pairwise_cosine(e) == pytest.approx(1 / 3)
    assert np.isnan(mean_pairwise_cosine(e[:1]))
    assert beat_rate(0.05, [0.01, 0.04, 0.06, 0.05]) == 0.5


@pytest.fixture(scope="module")
def sft_tables(sim, tmp_path_factory):
    """Labelled pushes and captions files, the way the pipeline's upstream steps write them."""
    from pushgen.generator.sim_data import captions_for

    out = tmp_path_factory.mktemp("sft_tables")
    captions = captions_for(sim.videos)
    pushes = sim.pushes.head(60).assign(
        category=sim.pushes["true_category"].head(60), confidence=0.7
    )
    captions.iloc[1:].to_parquet(out / "captions.parquet")  # one video lacks a caption
    pushes.to_parquet(out / "labelled.parquet")
    return out, captions, pushes


def test_sft_component_runs_in_the_local_runner(sft_tables, tiny_causal_lm_dir, tmp_path):
    from kfp import compiler, dsl

    from components.sft import sft

    tables, captions, pushes = sft_tables

    @dsl.pipeline(name="sft-only")
    def sft_only(labelled_uri: str, captions_uri: str, base: str):
        lab = dsl.importer(artifact_uri=labelled_uri, artifact_class=dsl.Dataset, reimport=False)
        cap = dsl.importer(artifact_uri=captions_uri, artifact_class=dsl.Dataset, reimport=False)
        sft(
            labelled=lab.output,
            captions=cap.output,
            base_model=base,
            max_steps=4,
            batch_size=4,
            max_length=600,
            categories=["Humor", "Practical", "Suspense", "Emotion"],
        )

    compiler.Compiler().compile(sft_only, str(tmp_path / "sft.yaml"))
    params = {
        "labelled_uri": str(tables / "labelled.parquet"),
        "captions_uri": str(tables / "captions.parquet"),
        "base": str(tiny_causal_lm_dir),
    }
    run_in_process(sft_only, params, tmp_path / "root")
    (adapter,) = list((tmp_path / "root").rglob("adapter_model.safetensors"))
    manifest = json.loads((adapter.parent / "pushgen_generator.json").read_text())
    assert list(manifest["categories"]) == ["Humor", "Practical", "Suspense", "Emotion"]
    (rejected_file,) = [
        p for p in (tmp_path / "root").rglob("rejected") if p.is_file() and "sft" in str(p)
    ]
    rejected = pd.read_parquet(rejected_file)
    first_video = captions["video_id"].iloc[0]
    n_other = int((~pushes["category"].isin(["Humor", "Practical", "Suspense", "Emotion"])).sum())
    n_uncaptioned = int((pushes["video_id"] == first_video).sum())
    assert len(rejected) == n_other + n_uncaptioned > 0
    assert set(rejected["reject_reason"]) <= {"unknown category", "no caption for video"}


@pytest.mark.slow  # SFT itself stays fast in test_generator_sft and the component test
def test_cli_train_then_eval(sim_dir, tiny_causal_lm_dir, tmp_path, capsys) -> None:
    out = tmp_path / "gen"
    code = main(
        [
            "train-generator",
            "--sim",
            str(sim_dir),
            "--out",
            str(out),
            "--base-model",
            str(tiny_causal_lm_dir),
            "--max-steps",
            "3",
            "--batch-size",
            "4",
            "--max-length",
            "600",
            "--max-rows",
            "60",
            "--samples",
            "1",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "train loss" in printed and "Direct address" in printed  # sample candidates shown
    split = json.loads((out / "split.json").read_text())
    assert split["val_videos"] and not set(split["val_videos"]) & set(split["train_videos"])

    code = main(
        [
            "eval-generator",
            "--model",
            str(out),
            "--sim",
            str(sim_dir),
            "--n-videos",
            "3",
            "--max-new-tokens",
            "6",
            "--json",
            str(tmp_path / "eval.json"),
            "--candidates",
            str(tmp_path / "cands.parquet"),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    cands = pd.read_parquet(tmp_path / "cands.parquet")
    assert set(report["models"]) == {"base", "sft"}
    assert len(cands) == 2 * 3 * len(report["categories"])
    assert not set(cands["video_id"]) & set(split["train_videos"])  # held-out videos only
    for name, res in report["models"].items():
        assert 0 <= res["controllability"] <= 1 and 0 <= res["beat_baseline_rate"] <= 1
        mine = cands[cands["model"] == name]
        assert res["guard_rejected"] == int((~mine["guard_ok"]).sum())
        assert res["controllability"] == pytest.approx((mine["label"] == mine["category"]).mean())
    assert abs(sum(report["history_style_distribution"].values()) - 1) < 1e-6


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys) -> None:
    pd.DataFrame({"video_id": ["v1"], "text": ["hi"]}).to_parquet(tmp_path / "bad.parquet")
    code = main(
        [
            "train-generator",
            "--data",
            str(tmp_path / "bad.parquet"),
            "--out",
            str(tmp_path / "o"),
            "--base-model",
            "/nonexistent/model",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "error" in err
    code = main(["eval-generator", "--model", str(tmp_path), "--sim", str(tmp_path)])
    assert code == 2 and "not a train-generator output" in capsys.readouterr().err
