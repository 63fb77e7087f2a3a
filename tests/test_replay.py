"""Offline replay and the run report on a tiny run: tiny generator and ranker, 12 held-out videos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pushgen.cli.main import main as cli

HELD_OUT = 12


@pytest.fixture(scope="module")
def run_layout(sim, tmp_path_factory) -> tuple[Path, Path]:
    """A run folder with every artifact the replay checks for but no trained weights: enough
    for the input checks, which run before any model loads."""
    from pushgen.data.caption import TextCaptioner
    from pushgen.data.contracts import write_table
    from pushgen.data.simulator import write_simulation

    root = tmp_path_factory.mktemp("layout")
    write_simulation(sim, root / "world")
    new = set(sim.videos["video_id"].iloc[-HELD_OUT:])
    art = root / "pipeline"
    paths = {
        "simulate-or-ingest/pushes": write_table(
            sim.pushes[~sim.pushes.video_id.isin(new)], art / "pushes.parquet"
        ),
        "simulate-or-ingest/ab_tests": write_table(
            sim.ab_tests[~sim.ab_tests.video_id.isin(new)], art / "ab_tests.parquet"
        ),
        "caption/captions": write_table(
            TextCaptioner().caption_videos(sim.videos), art / "captions.parquet"
        ),
        "label/labelled": write_table(sim.pushes.head(5), art / "labelled.parquet"),
    }
    (art / "clean_metrics.json").write_text("{}")
    paths["clean/metrics"] = art / "clean_metrics.json"
    for name in ("sft/generator", "reward/ranker"):
        (art / name).mkdir(parents=True)
        paths[name] = art / name
    (art / "last_run.json").write_text(json.dumps({k: str(v) for k, v in paths.items()}))
    return root, root / "world"


@pytest.fixture(scope="module")
def tiny_run(sim, tmp_path_factory, tiny_causal_lm_dir, tiny_encoder_dir) -> tuple[Path, Path]:
    """A run folder laid out as the pipeline writes it (last_run.json + artifacts), built with
    the library's own steps on tiny models; the world holds the last 12 videos out."""
    from pushgen.data.caption import TextCaptioner
    from pushgen.data.clean import clean_pushes
    from pushgen.data.contracts import write_table
    from pushgen.data.simulator import write_simulation
    from pushgen.generator.config import GeneratorTrainConfig
    from pushgen.generator.sft import build_sft_table, train_generator
    from pushgen.ranker.config import RankerTrainConfig
    from pushgen.ranker.recipe import AbTestsSource, RankerRecipeConfig, train_from_ab_tests

    root = tmp_path_factory.mktemp("tiny_run")
    write_simulation(sim, root / "world")
    new = set(sim.videos["video_id"].iloc[-HELD_OUT:])
    pushes = sim.pushes[~sim.pushes.video_id.isin(new)]
    ab = sim.ab_tests[~sim.ab_tests.video_id.isin(new)]
    art = root / "pipeline"
    paths = {
        "simulate-or-ingest/pushes": write_table(pushes, art / "pushes.parquet"),
        "simulate-or-ingest/ab_tests": write_table(ab, art / "ab_tests.parquet"),
    }
    captions = TextCaptioner().caption_videos(sim.videos)
    paths["caption/captions"] = write_table(captions, art / "captions.parquet")
    cleaned = clean_pushes(pushes, videos=sim.videos, captions=captions)
    (art / "clean_metrics.json").write_text(
        json.dumps(
            {
                "rows_in": len(pushes),
                "rows_out": len(cleaned.cleaned),
                "removed_hard.ctr": 3,
                "removed_soft": 1,
            }
        )
    )
    paths["clean/metrics"] = art / "clean_metrics.json"
    labelled = cleaned.cleaned.assign(category=cleaned.cleaned["true_category"])
    paths["label/labelled"] = write_table(labelled, art / "labelled.parquet")
    table, _ = build_sft_table(labelled, captions)
    cfg = GeneratorTrainConfig(
        base_model=str(tiny_causal_lm_dir),
        max_steps=2,
        batch_size=4,
        progress=False,
        device="cpu",
        eval_before_training=False,
    )
    train_generator(table, art / "generator", cfg)
    paths["sft/generator"] = art / "generator"
    rcfg = RankerRecipeConfig(
        train=RankerTrainConfig(
            backbone=str(tiny_encoder_dir), device="cpu", epochs=1, batch_size=16, max_length=24
        )
    )
    train_from_ab_tests(
        AbTestsSource(ab, "ab_tests", (), ("text", "video_id")), art / "ranker", rcfg
    )
    paths["reward/ranker"] = art / "ranker"
    (art / "last_run.json").write_text(json.dumps({k: str(v) for k, v in paths.items()}))
    return root, root / "world"


def replay_args(root: Path, world: Path) -> list[str]:
    """`pushgen replay` on a run folder and its simulated world."""
    return ["replay", "--run", str(root), "--sim", str(world)]


@pytest.fixture(scope="module")
def replayed(tiny_run) -> tuple[Path, dict]:
    root, world = tiny_run
    assert cli([*replay_args(root, world), "--videos", "8", "--bootstrap", "200"]) == 0
    return root, json.loads((root / "replay" / "replay.json").read_text())


@pytest.mark.slow
def test_replay_scores_every_arm_against_the_sent_push(replayed):
    root, report = replayed
    assert report["videos"] == 8 and report["held_out"] >= HELD_OUT
    arms = report["arms"]
    for key in (
        "human_sent",
        "human_best",
        "sft_random",
        "sft_copeland",
        "sft_knockout",
        "sft_oracle",
        "base_copeland",
        "uncontrolled_copeland",
    ):
        assert key in arms, sorted(arms)
    per_video = pd.read_parquet(root / "replay" / "videos.parquet")
    assert len(per_video) == 8
    # the oracle is the best guarded candidate: no selection beats it, and the best human push
    # is at least the sent one
    for m in ("sft_copeland", "sft_knockout", "sft_random"):
        assert (per_video[m] <= per_video["sft_oracle"] + 1e-12).all()
    assert (per_video["human_best"] >= per_video["human_sent"]).all()
    # the summary is the per-video table's mean, and intervals contain their estimate
    assert arms["sft_copeland"]["mean_ctr"] == pytest.approx(per_video["sft_copeland"].mean())
    lo, hi = arms["sft_copeland"]["uplift_ci"]
    assert lo <= arms["sft_copeland"]["uplift"] <= hi
    beats = (per_video["sft_copeland"] > per_video["human_sent"]).mean()
    assert arms["sft_copeland"]["beats_rate"] == pytest.approx(beats)
    ab = report["simulated_ab"]["sft_copeland"]
    assert ab["exposure_per_arm_total"] == per_video["exposure"].sum()
    assert set(report["goals"]) == {
        "beats_sent_human_70pct",
        "ab_uplift_14pct",
        "ab_uplift_ci_above_0",
    }
    cands = pd.read_parquet(root / "replay" / "candidates.parquet")
    assert set(cands["arm"]) == {"sft", "base", "uncontrolled"}
    # uncontrolled: one prompt (one category) per video, K samples
    assert (cands[cands.arm == "uncontrolled"].groupby("video_id")["category"].nunique() == 1).all()


@pytest.mark.slow
def test_report_writes_html_with_plots_and_readme_section(replayed, tmp_path):
    from pushgen.evidence.results import END, START, read_section, render_section

    root, _ = replayed
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Results\n\n{START}\nold\n{END}\n\n## After\n")
    out = tmp_path / "results"
    assert cli(["report", "--run", str(root), "--out", str(out), "--readme", str(readme)]) == 0
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6
    assert "System: offline replay" in html and "Ranker" in html
    results = json.loads((out / "results.json").read_text())
    assert read_section(readme) == render_section(results)
    assert readme.read_text().endswith("## After\n") and "old" not in readme.read_text()
    assert results["machine"] in read_section(readme)


def test_held_out_videos_are_those_no_model_trained_on(run_layout):
    from pushgen.evidence.replay_data import RunArtifacts, SimWorld, held_out_videos

    root, world = run_layout
    held = held_out_videos(RunArtifacts.find(root), SimWorld.load(world))
    # no split files here: every video with a training push or a training A/B arm is out
    assert len(held) == HELD_OUT and held[-1] == "v000119"


def test_more_videos_than_held_out_is_one_line_and_writes_nothing(run_layout, capsys):
    root, world = run_layout
    out = root / "replay-too-many"
    assert cli([*replay_args(root, world), "--videos", "999", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds out only" in err
    assert not out.exists()


def test_run_missing_an_artifact_is_one_line_and_writes_nothing(run_layout, tmp_path, capsys):
    root, world = run_layout
    broken = tmp_path / "run"
    shutil.copytree(root / "pipeline", broken / "pipeline")
    index = json.loads((broken / "pipeline" / "last_run.json").read_text())
    index = {k: v for k, v in index.items() if k != "reward/ranker"}
    (broken / "pipeline" / "last_run.json").write_text(json.dumps(index))
    for argv in (
        ["replay", "--run", str(broken), "--sim", str(world)],
        ["report", "--run", str(broken), "--out", str(tmp_path / "rep")],
    ):
        assert cli(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "ranker" in err
    assert not (broken / "replay").exists() and not (tmp_path / "rep").exists()


def test_bootstrap_intervals_cover_a_known_uplift():
    from pushgen.evidence.stats import compare, resample_index, simulated_ab

    rng = np.random.default_rng(0)
    human = rng.uniform(0.02, 0.05, 400)
    system = human * 1.2
    idx = resample_index(400, 1000, rng)
    c = compare(system, human, idx)
    assert c["uplift"] == pytest.approx(0.2) and c["beats_rate"] == 1.0
    ab = simulated_ab(system, human, np.full(400, 20_000), idx, seed=1)
    lo, hi = ab["uplift_ci"]
    assert lo < 0.2 < hi and lo > 0.1
    same = simulated_ab(human, human, np.full(400, 20_000), idx, seed=2)
    assert same["uplift_ci"][0] < 0 < same["uplift_ci"][1]


def test_weighting_none_is_a_real_option_of_clean_and_sft(sim_dir, tmp_path):
    from pushgen.data.clean import confidence_weight
    from pushgen.generator.sft import apply_weighting

    out = tmp_path / "cleaned.parquet"
    assert (
        cli(
            [
                "clean",
                "--pushes",
                str(sim_dir / "pushes.parquet"),
                "--videos",
                str(sim_dir / "videos.parquet"),
                "--out",
                str(out),
                "--weighting",
                "none",
            ]
        )
        == 0
    )
    cleaned = pd.read_parquet(out)
    assert len(cleaned) > 0 and (cleaned["confidence"] == 1.0).all()
    w = confidence_weight([0.02, 0.05], [900, 9000], "none")
    assert w.tolist() == [1.0, 1.0]
    table = cleaned.assign(confidence=0.5)
    assert apply_weighting(table, "none")[1] == ""  # SFT: no weight column, every sample 1
    literal, col = apply_weighting(table, "literal")
    assert col == "confidence" and (literal["confidence"] > 1).any()  # literal's PV term exceeds 1
    with pytest.raises(SystemExit) as exc:  # argparse rejects an unknown weighting, exit 2
        cli(
            [
                "train-generator",
                "--data",
                str(out),
                "--out",
                str(tmp_path / "g"),
                "--weighting",
                "x",
            ]
        )
    assert exc.value.code == 2


@pytest.mark.slow
def test_weighting_ablation_retrains_and_replays_each_variant(tiny_run, tmp_path):
    root, world = tiny_run
    out = tmp_path / "replay"
    argv = [
        *replay_args(root, world),
        "--videos",
        "3",
        "--out",
        str(out),
        "--no-base",
        "--no-uncontrolled",
        "--bootstrap",
        "200",
        "--train-weighting",
        "literal,none",
        "--weighting-steps",
        "1",
    ]
    assert cli(argv) == 0
    report = json.loads((out / "replay.json").read_text())
    for w in ("literal", "none"):
        assert f"weighting_{w}_copeland" in report["arms"]
        assert (tmp_path / "replay-ablation" / w / "adapter_config.json").is_file()
    assert "base_copeland" not in report["arms"]


@pytest.mark.slow
def test_pipeline_report_step_replays_the_videos_no_model_trained_on(tiny_run, tmp_path):
    from pushgen.evidence.report import pipeline_report

    root, world = tiny_run
    index = json.loads((root / "pipeline" / "last_run.json").read_text())
    figures = pipeline_report(
        index, str(world / "world.json"), str(world / "videos.parquet"), tmp_path, 4
    )
    assert figures["replay"]["videos"] == 4
    page = (tmp_path / "report.html").read_text()
    assert "System: offline replay" in page and page.count("data:image/png;base64,") >= 6
    # real data (an empty world) gets the report without the replay
    (tmp_path / "empty.json").write_text("{}")
    figures = pipeline_report(
        index, str(tmp_path / "empty.json"), str(world / "videos.parquet"), tmp_path / "real"
    )
    assert "replay" not in figures and (tmp_path / "real" / "report.html").is_file()
