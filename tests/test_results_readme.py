"""The README's Results section is generated: it must equal what docs/results/results.json renders."""

from __future__ import annotations

import re
from pathlib import Path

from pushgen.evidence.results import load_results, read_section, render_section

REPO = Path(__file__).resolve().parents[1]
SEPARATOR = re.compile(r"\|( ?-+ ?\|)+")


def test_readme_results_section_matches_results_json():
    results = load_results(REPO / "docs" / "results" / "results.json")
    section = read_section(REPO / "README.md")
    assert section == render_section(results), (
        "README's Results section disagrees with docs/results/results.json: "
        "run `pushgen report --run DIR --out docs/results --readme` (or `make results`)"
    )


def test_every_results_row_names_its_machine():
    results = load_results(REPO / "docs" / "results" / "results.json")
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
