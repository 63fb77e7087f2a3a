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
def test_replay_scores_every_arm_against_the_mean_human_push(replayed):
    root, report = replayed
    assert report["videos"] == 8 and report["held_out"] == HELD_OUT
    assert report["held_out_rule"] == "never ingested" and report["baseline"] == "human_mean"
    arms = report["arms"]
    for key in (
        "human_mean",
        "human_sent",
        "human_best",
        "human_copeland",
        "sft_random",
        "sft_copeland",
        "sft_knockout",
        "sft_oracle",
        "base_copeland",
        "sampled_random",
        "sampled_copeland",
        "uncontrolled_random",
        "uncontrolled_copeland",
    ):
        assert key in arms, sorted(arms)
    per_video = pd.read_parquet(root / "replay" / "videos.parquet")
    assert len(per_video) == 8
    # the oracle is the best guarded candidate: no selection beats it; the ranker's pick among
    # the human pushes lies between their worst and their best
    for m in ("sft_copeland", "sft_knockout", "sft_random"):
        assert (per_video[m] <= per_video["sft_oracle"] + 1e-12).all()
    assert (per_video["human_best"] >= per_video["human_sent"]).all()
    assert (per_video["human_copeland"] <= per_video["human_best"] + 1e-12).all()
    # the uplift is the geometric mean of per-video ratios to the mean human push
    chosen = arms["sft_copeland"]
    assert chosen["mean_ctr"] == pytest.approx(per_video["sft_copeland"].mean())
    ratio = np.log(per_video["sft_copeland"] / per_video["human_mean"]).mean()
    assert chosen["uplift"] == pytest.approx(np.expm1(ratio))
    assert chosen["beats_rate"] == pytest.approx(
        (per_video["sft_copeland"] > per_video["human_mean"]).mean()
    )
    lo, hi = chosen["beats_rate_ci"]
    assert 0 <= lo <= chosen["beats_rate"] <= hi <= 1
    assert "uplift" not in arms["human_mean"] and "simulated_ab" not in report
    redraw = report["sent_redraws"]
    assert redraw["uplift_range_95"][0] <= redraw["median_uplift"] <= redraw["uplift_range_95"][1]
    assert set(report["vs_baselines"]) == {
        "human_mean",
        "human_sent",
        "human_best",
        "human_copeland",
    }
    assert report["vs_baselines"]["human_mean"]["uplift"] == pytest.approx(chosen["uplift"])
    assert set(report["goals"]) == {"uplift_over_mean_human_ci_above_0", "beat_baseline_70pct"}
    cands = pd.read_parquet(root / "replay" / "candidates.parquet")
    assert set(cands["arm"]) == {"sft", "base", "sampled", "uncontrolled"}
    # control on / off at the same decoding: one sampled candidate per category against K
    # samples of one prompt
    per_cat = cands[cands.arm == "sampled"].groupby("video_id")["category"].nunique()
    assert (per_cat == len(report["categories"])).all()
    assert (cands[cands.arm == "uncontrolled"].groupby("video_id")["category"].nunique() == 1).all()
    bb = report["beat_baseline"]["sft"]
    assert bb["pushes"] == (cands.arm == "sft").sum() and 0 <= bb["rate"] <= 1
    changes = {(a["on"], a["off"]) for a in report["ablations"]}
    assert ("sampled_random", "uncontrolled_random") in changes
    assert ("sft_random", "base_random") in changes
    pairs = report["ranker_pairs"]
    assert pairs["human"]["pairs"] == per_video["human_pairs"].sum() > 0


@pytest.mark.slow
def test_breakdown_splits_the_advantage_into_the_simulators_terms(replayed):
    _, report = replayed
    b = report["breakdown"]
    assert b["videos"] > 0
    terms = {t["term"]: t for t in b["terms"]}
    parts = [t for k, t in terms.items() if k != "text_logit"]
    for col in ("chosen_minus_human_mean", "chosen_minus_sft_mean", "human_pick_minus_human_mean"):
        assert sum(t[col] for t in parts) == pytest.approx(terms["text_logit"][col], abs=1e-9)
    assert {f["feature"] for f in b["features"]} >= {"question", "invented", "length"}
    assert sum(c["videos"] for c in b["style_topic"]) == b["videos"]


@pytest.mark.slow
def test_report_writes_html_with_plots_and_readme_section(replayed, tmp_path):
    from pushgen.evidence.results import END, START, read_section, render_section

    root, _ = replayed
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Results\n\n{START}\nold\n{END}\n\n## After\n")
    out = tmp_path / "results"
    assert cli(["report", "--run", str(root), "--out", str(out), "--readme", str(readme)]) == 0
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6 and "Ablations" in html
    assert "System: offline replay" in html and "Ranker" in html
    results = json.loads((out / "results.json").read_text())
    assert read_section(readme) == render_section(results)
    assert readme.read_text().endswith("## After\n") and "old" not in readme.read_text()
    assert results["machine"] in read_section(readme)


def test_held_out_videos_are_those_no_model_trained_on(run_layout):
    from pushgen.evidence.replay_data import RunArtifacts, SimWorld, held_out_videos

    root, world = run_layout
    run, sim = RunArtifacts.find(root), SimWorld.load(world)
    held = held_out_videos(run, sim)
    # never ingested: every video with an ingested push or A/B arm is out, whatever the filters
    assert len(held) == HELD_OUT and held[-1] == "v000119"
    # the pipeline's own report step sees only ingested pushes, so no video is new to it
    assert held_out_videos(run, SimWorld(sim.world, sim.videos, sim.pushes), False) == held


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


def test_log_ratio_uplift_and_wilson_cover_known_values():
    from pushgen.evidence.stats import log_ratio_uplift, seed_spread, wilson

    rng = np.random.default_rng(0)
    human = rng.uniform(0.002, 0.3, 300)  # CTRs spread as widely as the replay's
    system = human * 1.2 * rng.lognormal(0, 0.3, 300)
    u = log_ratio_uplift(system, human, n_boot=1000, seed=1)
    lo, hi = u["uplift_ci"]
    assert lo < 0.2 < hi and lo > 0.1 and u["videos"] == 300
    same = log_ratio_uplift(human * rng.lognormal(0, 0.3, 300), human, n_boot=1000, seed=2)
    assert same["uplift_ci"][0] < 0 < same["uplift_ci"][1]
    # one huge-CTR video does not carry the geometric mean as it carries a ratio of means
    boosted = system.copy()
    boosted[0] = human[0] * 50
    assert abs(log_ratio_uplift(boosted, human, 500, 3)["uplift"] - u["uplift"]) < 0.02
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert seed_spread([0.1, 0.2, 0.3]) == pytest.approx(
        {"mean": 0.2, "sd": 0.1, "min": 0.1, "max": 0.3, "seeds": 3}
    )


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


@pytest.mark.slow
def test_results_command_reuses_only_when_told_and_says_so(replayed, tmp_path, capsys):
    from pushgen.evidence.results import END, START, read_section, render_section

    root, _ = replayed
    out = tmp_path / "runs"
    shutil.copytree(root, out / "seed-0")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{START}\nold\n{END}\n")
    docs = tmp_path / "docs"
    argv = ["results", "--out", str(out), "--seeds", "0", "--results", str(docs)]
    argv += ["--readme", str(readme), "--videos", "60", "--held-out", str(HELD_OUT), "--reuse"]
    argv += ["--replay-videos", "8"]
    assert cli(argv) == 0
    said = capsys.readouterr().out
    assert "reusing the trained run" in said and "reusing the replay" in said
    results = json.loads((docs / "results.json").read_text())
    prov = results["provenance"]
    assert prov["training"] == "reused for seeds [0]" and prov["command"].endswith("--reuse")
    assert len(prov["commit"]) == 40 and prov["machine"] == results["machine"]
    assert read_section(readme) == render_section(results)
    for name in ("videos.csv", "candidates.csv", "report.html", "replay_uplift.png"):
        assert (docs / "seed-0" / name).is_file(), name
    # the page opens with what was compared and how sure: the headline table comes first
    page = (docs / "report.html").read_text()
    first_table = page[: page.index("</table>")]
    assert "mean human push" in first_table and "95% BCa CI" in first_table
    assert page.count("data:image/png;base64,") >= 6


def test_results_command_rejects_bad_seeds_in_one_line(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    for seeds in ("a,b", "1,1"):
        assert cli(["results", "--seeds", seeds, "--readme", str(readme)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--seeds" in err
    assert cli(["results", "--readme", str(readme)]) == 2
    assert "markers" in capsys.readouterr().err


def test_stale_files_tells_a_known_commit_from_an_unknown_one():
    from pushgen.evidence.provenance import head_commit, stale_files

    head = head_commit()
    if head is None:
        pytest.skip("not a git checkout")
    assert isinstance(stale_files(head), list)
    assert stale_files("0" * 40) is None
