"""Ingest of an Upworthy-layout A/B file (raw packages CSV and parquet) and clean without SVR/LVTR/HTR."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from pushgen.cli.main import main
from pushgen.data.clean import CleanConfig, clean_metrics, clean_pushes
from pushgen.data.ingest import content_hash, load_source
from pushgen.data.upworthy import ingest_upworthy


def raw_packages(n_tests: int = 6) -> pd.DataFrame:
    """The archive's original layout: one row per package (with columns ingest ignores)."""
    rows = []
    for t in range(n_tests):
        for arm in range(3):
            rows.append(
                {
                    "created_at": f"2014-0{1 + t % 9}-10 12:00:00.000",
                    "updated_at": "2014-02-01 00:00:00.000",
                    "clickability_test_id": f"5{t:03d}abc",
                    "excerpt": "Things that matter. Pass 'em on.",
                    "headline": f"Story {t} headline number {arm}",
                    "lede": f"<p>A lede about story {t} &amp; its people.</p> Second sentence.",
                    "slug": f"story-{t}-{arm}",
                    "eyecatcher_id": f"img{t}",
                    "impressions": str(3000 + 10 * arm),
                    "clicks": str(30 + 5 * arm),
                    "significance": "50.0",
                    "first_place": "FALSE",
                    "winner": "FALSE",
                    "share_text": "",
                    "square": "",
                    "test_week": "201405",
                }
            )
    return pd.DataFrame(rows)


def with_bad_rows(df: pd.DataFrame) -> pd.DataFrame:
    bad = df.iloc[[0, 1, 2, 3]].copy()
    bad.iloc[0, bad.columns.get_loc("headline")] = "   "  # empty headline
    bad.iloc[1, bad.columns.get_loc("clicks")] = "99999"  # clicks > impressions
    bad.iloc[2, bad.columns.get_loc("impressions")] = "many"  # non-numeric
    dup = df.iloc[[4]].copy()  # an exact duplicate of an arm
    return pd.concat([df, bad.iloc[:3], dup], ignore_index=True)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_ingest_sets_bad_rows_aside_and_loses_nothing(tmp_path, suffix):
    df = with_bad_rows(raw_packages())
    path = tmp_path / f"packages{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path, index=False)
    report = ingest_upworthy(path, tmp_path / "out")
    rejected = pd.read_parquet(tmp_path / "out" / "rejected.parquet")
    assert report["arms_valid"] + report["arms_rejected"] == len(df)
    assert report["rows"]["ab_tests"] == len(raw_packages())
    assert sorted(rejected["reject_reason"]) == sorted(
        ["empty headline", "clicks > impressions", "non-numeric impressions", "duplicate arm"]
    )
    videos = pd.read_parquet(tmp_path / "out" / "videos.parquet")
    pushes = pd.read_parquet(tmp_path / "out" / "pushes.parquet")
    ab = pd.read_parquet(tmp_path / "out" / "ab_tests.parquet")
    assert len(videos) == 6 and len(pushes) == 18
    # HTML is gone, and no headline leaks into the item the generator writes from
    assert "<p>" not in videos["description"].iloc[0] and "&amp;" not in videos["title"].iloc[0]
    assert not any("headline number" in d for d in videos["description"])
    assert set(ab["headline_id"]) == set(pushes["push_id"])
    assert pushes[["svr", "lvtr", "htr"]].isna().all().all()


def test_missing_optional_columns_and_required_ones(tmp_path):
    df = raw_packages().drop(columns=["eyecatcher_id", "test_week", "lede"])
    df.to_csv(tmp_path / "a.csv", index=False)
    report = ingest_upworthy(tmp_path / "a.csv", tmp_path / "out")
    assert {"eyecatcher_id", "test_week", "lede"} <= set(report["absent_columns"])
    assert report["arms_rejected"] == 0  # the excerpt alone still describes the story
    no_text = raw_packages().drop(columns=["lede", "excerpt"])
    no_text.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(Exception, match="no usable arm"):
        ingest_upworthy(tmp_path / "b.csv", tmp_path / "out_b")
    raw_packages().drop(columns=["clicks"]).to_csv(tmp_path / "c.csv", index=False)
    assert main(["ingest", "--format", "upworthy", str(tmp_path / "c.csv"), "--out", "x"]) == 2


def test_cli_and_pipeline_data_location(tmp_path, capsys):
    raw_packages().to_parquet(tmp_path / "uw.parquet", index=False)
    code = main(
        [
            "ingest",
            "--format",
            "upworthy",
            str(tmp_path / "uw.parquet"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 0 and "18 ab_tests" in capsys.readouterr().out
    # the pipeline's data_location takes the same file; its content hash keys the cache
    report = load_source(str(tmp_path / "uw.parquet"), str(tmp_path / "p"))
    assert report["rows"]["videos"] == 6 and not report["simulated"]
    assert content_hash(str(tmp_path / "uw.parquet")) != content_hash("")


def test_clean_applies_what_it_can_and_says_what_it_could_not(tmp_path):
    raw_packages(10).to_csv(tmp_path / "uw.csv", index=False)
    ingest_upworthy(tmp_path / "uw.csv", tmp_path / "out")
    pushes = pd.read_parquet(tmp_path / "out" / "pushes.parquet")
    videos = pd.read_parquet(tmp_path / "out" / "videos.parquet")
    cfg = CleanConfig(min_ctr=0.0105, min_pv=100, min_cluster_size=5)  # Upworthy-scale thresholds
    result = clean_pushes(pushes, cfg, videos=videos)
    r = result.report
    assert set(r["not_applied"]) == {"svr>=0.4", "lvtr<=0.5", "htr>=0.01", "clusters"}
    assert r["removed_hard_by_rule"]["ctr<=0.0105"] == 10  # arm 0 of each test: CTR 1.0%
    assert (
        r["rows_in"]
        == r["rejected_invalid"] + r["removed_hard"] + r["removed_soft"] + r["rows_out"]
    )
    assert result.cleaned["confidence"].between(0.3, 1.0).all()
    assert clean_metrics(r)["not_applied.svr"] == 1.0
    # the same table without the columns at all
    result2 = clean_pushes(pushes.drop(columns=["svr", "lvtr", "htr"]), cfg, videos=videos)
    assert result2.report["rows_out"] == r["rows_out"]


def test_ingest_command_runs_as_a_process(tmp_path):
    raw_packages(2).to_csv(tmp_path / "uw.csv", index=False)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pushgen.cli.main import main; raise SystemExit(main())",
            "ingest",
            "--format",
            "upworthy",
            str(tmp_path / "uw.csv"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
