"""The README's generated sections: Results must equal what docs/results/results.json renders,
the measured figures what docs/results/bench.json renders, and the results must come from the
code as it is (no replay-relevant change since the commit they record)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pushgen.evidence.results import load_results, read_section, readme_section

REPO = Path(__file__).resolve().parents[1]
SEPARATOR = re.compile(r"\|( ?-+ ?\|)+")


@pytest.fixture(scope="module")
def results() -> dict:
    return load_results(REPO / "docs" / "results" / "results.json")


def test_readme_results_section_matches_results_json(results):
    section = read_section(REPO / "README.md")
    assert section == readme_section(results), (
        "README's Results section disagrees with docs/results/results.json: run `make results`"
    )


def test_results_record_the_code_command_machine_and_time(results):
    prov = results["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}", prov["commit"])
    assert prov["command"].startswith("pushgen results") and prov["machine"] == results["machine"]
    assert prov["started_at"] and prov["duration_s"] > 0
    assert prov["training"] and prov["replay"]


def test_results_come_from_the_current_code(results):
    from pushgen.evidence.provenance import STALE_MARK, stale_files

    commit = results["provenance"]["commit"]
    stale = stale_files(commit)
    if stale is None:
        pytest.skip(f"commit {commit[:12]} is not in this clone's history: cannot tell")
    assert not results["provenance"]["dirty"], "the results were made from uncommitted code"
    for seed, r in results["seeds"].items():  # each seed's replay: the same replay code
        replay_commit = r["replay"]["provenance"]["commit"]
        assert not r["replay"]["provenance"]["dirty"], f"seed {seed}: replay from uncommitted code"
        assert stale_files(replay_commit) == stale, f"seed {seed}: replay from other code"
    # stale results may stay only while the README says so on top (the issue's "at least the
    # report prints that warning"); `make results` makes them current again
    section = read_section(REPO / "README.md")
    if stale:
        assert section.startswith(f"> {STALE_MARK}"), (
            f"README shows results from {commit[:12]}; replay-relevant code changed since "
            f"({', '.join(stale[:8])}{' ...' if len(stale) > 8 else ''}) and the README does not "
            "say so: rerun `make results` or `python -m pushgen.evidence.results`"
        )
    else:
        assert STALE_MARK not in section


def test_results_cover_several_seeds_with_the_headline_and_paper_metrics(results):
    # `make results` runs 3 seeds; the committed results hold the seeds that finished on the
    # shared machine (the README says how many), never fewer than 2: a spread needs two
    assert len(results["seeds"]) >= 2
    summary = results["summary"]
    assert summary["headline_uplift"]["seeds"] == len(results["seeds"])
    assert set(summary["paper"]) == {"beat_baseline_base", "beat_baseline_sft", "uplift", "rm"}
    section = read_section(REPO / "README.md")
    for needle in ("mean human push", "between seeds", "paper", "human pushes + the same ranker"):
        assert needle in section, needle
    for seed in results["seeds"]:
        for name in ("videos.csv", "candidates.csv", "report.html"):
            assert (REPO / "docs" / "results" / f"seed-{seed}" / name).is_file(), (seed, name)


def test_every_results_row_names_its_machine(results):
    rows = [
        r
        for r in read_section(REPO / "README.md").splitlines()
        if r.startswith("|") and not SEPARATOR.fullmatch(r)
    ]
    assert rows
    for row in rows:
        assert row.endswith(f" {results['machine']} |") or row.endswith(" machine |"), row


def test_every_png_the_report_names_is_committed():
    report = (REPO / "docs" / "results" / "report.md").read_text()
    names = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", report)
    assert len(names) >= 6
    for name in names:
        assert (REPO / "docs" / "results" / name).is_file(), name


def test_readme_measured_figures_match_bench_json():
    from pushgen.evidence.bench_section import BENCH_JSON, END, START, render_bench

    bench = load_results(REPO / BENCH_JSON)
    assert read_section(REPO / "README.md", (START, END)) == render_bench(bench), (
        "README's measured figures disagree with docs/results/bench.json: run `make bench`"
    )
    prov = bench["provenance"]
    assert prov["command"] == "make bench" and not bench["not_run"] and not bench["failed"]
    assert re.fullmatch(r"[0-9a-f]{40}", prov["commit"]) and prov["dirty"] == []
    assert f"commit `{prov['commit'][:12]}`" in render_bench(bench)
    planted = render_bench({**bench, "provenance": {**prov, "dirty": ["bench/bench_rank.py"]}})
    assert "uncommitted changes to bench/bench_rank.py" in planted


def test_readme_real_data_section_matches_its_results_and_code():
    from pushgen.evidence.upworthy_report import UPWORTHY_END, UPWORTHY_START, render_section

    up = load_results(REPO / "docs" / "results" / "upworthy" / "results.json")
    section = read_section(REPO / "README.md", (UPWORTHY_START, UPWORTHY_END))
    assert UPWORTHY_START + "\n" + section + UPWORTHY_END == render_section(up), (
        "README's real-data section disagrees with docs/results/upworthy/results.json"
    )
    prov = up["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}", prov["commit"]) and prov["command"] == up["command"]
    assert set(prov["stages"]) == set(up["timings_s"]), "every stage's commit is recorded"
    assert not prov["dirty"] and not prov["dirty_stages"], "made from uncommitted code"
