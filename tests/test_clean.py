"""Cleaning: the paper's hard filter at its boundaries, per-cluster quantile crop, both confidence
formulas at chosen points, malformed rows set aside, the CLI and the KFP component."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from pipelines.training import run_in_process
from pushgen.core.errors import ConfigError, DataContractError
from pushgen.data.clean import (
    CleanConfig,
    clean_metrics,
    clean_pushes,
    confidence_weight,
    config_from_dict,
)


def make_pushes(n: int = 1, topic: str = "cooking", **overrides) -> pd.DataFrame:
    """`n` pushes that pass every hard rule comfortably; columns overridable per call."""
    base = {
        "push_id": [f"p{i}" for i in range(n)],
        "video_id": [f"v{i % 3}" for i in range(n)],
        "text": ["3 tips from Maria to fold dumplings"] * n,
        "sent_at": pd.Timestamp("2026-01-02"),
        "pv": 5000,
        "clicks": 100,
        "ctr": 0.02,
        "svr": 0.2,
        "lvtr": 0.7,
        "htr": 0.002,
        "topic": topic,
    }
    base.update(overrides)
    return pd.DataFrame(base)


# --- hard filter -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "at_bound", "inside", "rule"),
    [
        ("ctr", 0.006, 0.0061, "ctr<=0.006"),
        ("svr", 0.40, 0.3999, "svr>=0.4"),
        ("lvtr", 0.50, 0.5001, "lvtr<=0.5"),
        ("htr", 0.01, 0.0099, "htr>=0.01"),
        ("pv", 800, 801, "pv<=800"),
    ],
)
def test_hard_filter_thresholds_are_strict(column, at_bound, inside, rule):
    rows = pd.concat(
        [make_pushes(1, **{column: at_bound}), make_pushes(1, **{column: inside})],
        ignore_index=True,
    )
    rows["push_id"] = ["at_bound", "inside"]
    rows["clicks"] = (rows["pv"] * rows["ctr"]).astype(int)  # consistent with ctr, pv
    result = clean_pushes(rows, CleanConfig())
    assert list(result.cleaned["push_id"]) == ["inside"]
    assert list(result.removed["push_id"]) == ["at_bound"]
    assert result.removed["reject_reason"].iloc[0] == f"hard: {rule}"
    assert result.report["removed_hard_by_rule"][rule] == 1


def test_hard_filter_names_every_failed_rule_and_thresholds_are_configurable():
    rows = make_pushes(1, ctr=0.001, pv=500, clicks=0)
    removed = clean_pushes(rows, CleanConfig()).removed
    assert removed["reject_reason"].iloc[0] == "hard: ctr<=0.006; pv<=800"
    relaxed = clean_pushes(rows, CleanConfig(min_ctr=0.0005, min_pv=100))
    assert len(relaxed.cleaned) == 1


# --- soft filter -----------------------------------------------------------------------------


def test_quantile_crop_is_per_cluster():
    # two clusters on very different CTR scales: a global crop would empty the low one's top end
    low = make_pushes(101, topic="news", ctr=np.linspace(0.01, 0.05, 101))
    high = make_pushes(101, topic="comedy", ctr=np.linspace(0.2, 0.6, 101))
    small = make_pushes(5, topic="diy", ctr=[0.01, 0.02, 0.03, 0.5, 0.9])
    rows = pd.concat([low, high, small], ignore_index=True)
    rows["push_id"] = [f"p{i}" for i in range(len(rows))]
    result = clean_pushes(rows, CleanConfig())
    soft = result.removed[result.removed["reject_reason"].str.startswith("soft")]
    # linear quantiles of 101 evenly spaced values fall exactly on ranks 5 and 95
    assert sorted(soft["push_id"]) == sorted(
        [f"p{i}" for i in list(range(5)) + list(range(96, 101))]
        + [f"p{101 + i}" for i in list(range(5)) + list(range(96, 101))]
    )
    # the 5-row cluster is below min_cluster_size: quantiles of 5 rows are not evidence
    assert (result.cleaned["cluster"] == "diy").sum() == 5
    by_cluster = result.report["by_cluster"]
    assert by_cluster["news"] == {"valid": 101, "removed_hard": 0, "removed_soft": 10, "kept": 91}
    assert by_cluster["diy"]["kept"] == 5


def test_soft_filter_quantiles_are_configurable_and_checked():
    rows = make_pushes(101, ctr=np.linspace(0.01, 0.05, 101))
    wide = clean_pushes(rows, CleanConfig(quantile_low=0.0, quantile_high=1.0))
    assert len(wide.cleaned) == 101
    with pytest.raises(ConfigError, match="quantile_low < quantile_high"):
        CleanConfig(quantile_low=0.9, quantile_high=0.1)


def test_cluster_topic_comes_from_videos_or_captions(sim):
    pushes = sim.pushes
    via_videos = clean_pushes(pushes, CleanConfig(), videos=sim.videos)
    captions = sim.videos[["video_id", "topic"]].assign(caption="c", captioner="t", created_at=0)
    via_captions = clean_pushes(pushes, CleanConfig(), captions=captions)
    assert via_videos.report["by_cluster"] == via_captions.report["by_cluster"]
    assert set(via_videos.report["by_cluster"]) == set(sim.videos["topic"])
    with pytest.raises(DataContractError, match="topic"):
        clean_pushes(pushes, CleanConfig())


def test_embedding_clusters_group_captions(tiny_encoder_dir):
    captions = pd.DataFrame(
        {"video_id": [f"v{i}" for i in range(6)], "caption": ["a dog", "a cat", "a car"] * 2}
    )
    rows = make_pushes(60).drop(columns="topic")
    rows["video_id"] = [f"v{i % 6}" for i in range(60)]
    cfg = CleanConfig(cluster_by="embedding", n_embedding_clusters=3, encoder=str(tiny_encoder_dir))
    result = clean_pushes(rows, cfg, captions=captions)
    clusters = result.cleaned.groupby("video_id")["cluster"].first()
    assert set(clusters) <= {"emb0", "emb1", "emb2"} and clusters.nunique() == 3
    # identical captions land in the same cluster
    assert clusters["v0"] == clusters["v3"] and clusters["v1"] == clusters["v4"]


# --- confidence --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ctr", "pv", "bounded", "literal"),
    [
        (0.05, 10_000, 0.3 + 0.175 + 0.35, 0.3 + 0.175),
        (
            0.10,
            800,
            0.3 + 0.35 + 0.35 * (math.log(800) / math.log(1e4)) ** 2,
            0.3 + 0.35 + 0.35 * math.log(0.08) ** 2,
        ),
        (0.50, 50_000, 1.0, 0.65),  # both terms saturate at CTR 10% and PV 10k
        (0.0, 100, 0.3 + 0.35 * 0.25, 0.3 + 0.35 * math.log(0.01) ** 2),
        (0.02, 0, 0.3 + 0.07, 0.3 + 0.07 + 0.35 * math.log(1e-4) ** 2),  # PV 0 counts as 1
    ],
)
def test_confidence_formula_at_chosen_points(ctr, pv, bounded, literal):
    assert confidence_weight([ctr], [pv], "bounded")[0] == pytest.approx(bounded)
    assert confidence_weight([ctr], [pv], "literal")[0] == pytest.approx(literal)


def test_confidence_directions():
    pv = np.array([801, 2000, 5000, 10_000])
    bounded = confidence_weight(np.full(4, 0.03), pv, "bounded")
    literal = confidence_weight(np.full(4, 0.03), pv, "literal")
    assert np.all(np.diff(bounded) > 0) and np.all((bounded >= 0.3) & (bounded <= 1.0))
    assert np.all(np.diff(literal) < 0)  # the paper as written trusts thin exposure more
    assert literal[0] > 2.0  # PV=801 alone adds ~2.2
    with pytest.raises(DataContractError, match="NaN"):
        confidence_weight([np.nan], [1000])
    with pytest.raises(ConfigError, match="weighting"):
        confidence_weight([0.1], [1000], "log")


def test_weighting_variant_reaches_the_cleaned_table():
    rows = make_pushes(3, pv=[900, 3000, 9000], clicks=[20, 60, 180], ctr=[0.022, 0.02, 0.02])
    cfg = CleanConfig(min_cluster_size=10)
    bounded = clean_pushes(rows, cfg).cleaned["confidence"]
    literal = clean_pushes(rows, CleanConfig(min_cluster_size=10, weighting="literal")).cleaned
    assert bounded.is_monotonic_increasing and literal["confidence"].is_monotonic_decreasing


# --- bad input -----------------------------------------------------------------------------------


def test_malformed_rows_are_set_aside_with_reasons_and_nothing_is_lost():
    rows = make_pushes(8)
    rows.loc[0, "pv"] = -5
    rows.loc[1, "clicks"] = 99_999
    rows.loc[2, "ctr"] = np.nan
    rows.loc[3, "text"] = "   "
    rows.loc[4, "video_id"] = "v-unknown"
    rows.loc[5, "push_id"] = "p6"  # duplicate id
    videos = pd.DataFrame({"video_id": ["v0", "v1", "v2"], "topic": ["a", "b", "c"]})
    result = clean_pushes(rows, CleanConfig(), videos=videos)
    reasons = result.removed.set_index("push_id")["reject_reason"]
    assert reasons["p0"] == "invalid: negative pv"
    assert reasons["p1"] == "invalid: clicks > pv"
    assert reasons["p2"] == "invalid: ctr not in [0, 1]"
    assert reasons["p3"] == "invalid: empty text"
    assert reasons["p4"] == "invalid: unknown video_id"
    assert "invalid: duplicate push_id" in set(reasons)
    r = result.report
    assert r["rejected_invalid"] == 6
    assert r["rows_in"] == len(result.cleaned) + len(result.removed) == 8


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda df: df.drop(columns="ctr"), "missing column"),  # svr/lvtr/htr may be absent
        (lambda df: df.iloc[:0], "no rows"),
    ],
)
def test_unusable_tables_fail_clearly(mutate, message):
    with pytest.raises(DataContractError, match=message):
        clean_pushes(mutate(make_pushes(3)), CleanConfig())


def test_wrong_dtypes_become_rejections_not_crashes():
    rows = make_pushes(3).astype({"pv": object, "ctr": object})
    rows.loc[0, "pv"] = "many"
    rows.loc[1, "ctr"] = "high"
    result = clean_pushes(rows, CleanConfig(min_cluster_size=10))
    assert set(result.removed["reject_reason"]) == {
        "invalid: non-numeric pv",
        "invalid: ctr not in [0, 1]",
    }
    assert len(result.cleaned) == 1 and result.cleaned["pv"].dtype == np.int64


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown clean setting"):
        config_from_dict({"min_ctrr": 0.1})
    with pytest.raises(ConfigError, match="weighting"):
        CleanConfig(weighting="log")
    with pytest.raises(ConfigError, match="rate"):
        CleanConfig(max_svr=40)


# --- simulated data, CLI, component ------------------------------------------------------------


def test_clean_simulated_history(sim):
    result = clean_pushes(sim.pushes, CleanConfig(), videos=sim.videos)
    kept, r = result.cleaned, result.report
    assert r["rows_in"] == len(sim.pushes) == len(kept) + len(result.removed)
    assert 0 < len(kept) < len(sim.pushes)
    assert (kept["ctr"] > 0.006).all() and (kept["svr"] < 0.4).all() and (kept["pv"] > 800).all()
    assert (kept["lvtr"] > 0.5).all() and (kept["htr"] < 0.01).all()
    # invented entities raise the simulated hate rate: the HTR rule catches them
    invented = sim.pushes["htr"] >= 0.01
    assert invented.sum() > 0 and not kept["push_id"].isin(sim.pushes.push_id[invented]).any()
    totals = pd.DataFrame(r["by_cluster"]).T.sum()
    assert totals["kept"] == len(kept) and totals["removed_soft"] == r["removed_soft"]
    flat = clean_metrics(r)
    assert flat["rows_out"] == len(kept) and "removed_hard.ctr" in flat


def test_cli_clean(sim_dir, tmp_path, capsys):
    from pushgen.cli.main import main

    out = tmp_path / "cleaned.parquet"
    argv = [
        "clean",
        "--pushes",
        str(sim_dir / "pushes.parquet"),
        "--videos",
        str(sim_dir / "videos.parquet"),
        "--out",
        str(out),
    ]
    assert main([*argv, "--weighting", "literal"]) == 0
    cleaned = pd.read_parquet(out)
    removed = pd.read_parquet(tmp_path / "cleaned.rejected.parquet")
    report = json.loads((tmp_path / "cleaned.report.json").read_text())
    assert report["config"]["weighting"] == "literal"
    assert len(cleaned) + len(removed) == report["rows_in"]
    assert removed["reject_reason"].str.len().gt(0).all()

    assert main(["clean", "--pushes", str(tmp_path / "nope.parquet"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"pushgen clean: error: no such file: {tmp_path / 'nope.parquet'}"]
    bad_q = [*argv, "--quantiles", "0.9", "0.1"]
    assert main(bad_q) == 2 and "quantile_low" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:.*non-Python base image")
def test_caption_and_clean_components_run_in_a_kfp_pipeline(sim_dir, tmp_path):
    from kfp import dsl

    from components.caption import caption
    from components.clean import clean

    @dsl.pipeline(name="data-steps")
    def data_steps(videos_uri: str, pushes_uri: str):
        videos = dsl.importer(artifact_uri=videos_uri, artifact_class=dsl.Dataset)
        pushes = dsl.importer(artifact_uri=pushes_uri, artifact_class=dsl.Dataset)
        cap = caption(videos=videos.output)
        clean(
            pushes=pushes.output,
            captions=cap.outputs["captions"],
            weighting="literal",
            config={"min_pv": 500},
        )

    params = {
        "videos_uri": str(sim_dir / "videos.parquet"),
        "pushes_uri": str(sim_dir / "pushes.parquet"),
    }
    run_in_process(data_steps, params, tmp_path)
    run_dir = next(p for p in tmp_path.iterdir() if p.name.startswith("data-steps"))
    captions = pd.read_parquet(run_dir / "caption" / "captions")
    cleaned = pd.read_parquet(run_dir / "clean" / "cleaned")
    removed = pd.read_parquet(run_dir / "clean" / "removed")
    report = json.loads((run_dir / "clean" / "report").read_text())
    assert len(captions) == 120 and "topic" in captions
    assert report["config"] == {**report["config"], "min_pv": 500, "weighting": "literal"}
    assert len(cleaned) + len(removed) == report["rows_in"] and cleaned["pv"].gt(500).all()
