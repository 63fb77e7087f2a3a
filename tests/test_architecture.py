"""The architecture holds: layers point down and no import cycles (`[tool.importlinter]` in
pyproject.toml, the same contracts `make lint` runs), and the contracts do catch a planted cycle
and a planted upward import; no module is over 600 lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pushgen", "components", "pipelines", "serving", "monitoring", "feature_repo")
LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT, "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The project's Python packages and pyproject.toml, copied where a test may break them."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_its_contracts():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_a_planted_cycle_breaks_the_contract(tree_copy: Path):
    # heads is the bottom of the ranker; a lazy import of select from it closes a cycle
    heads = tree_copy / "pushgen/ranker/heads.py"
    heads.write_text(
        heads.read_text() + "\n\ndef _planted():\n    from pushgen.ranker import select  # noqa\n"
    )
    result = lint_imports(tree_copy)
    assert result.returncode != 0
    assert "No import cycles" in result.stdout and "BROKEN" in result.stdout
    assert "pushgen.ranker" in result.stdout and ".select" in result.stdout


def test_a_planted_upward_import_breaks_the_contract(tree_copy: Path):
    # the core importing the CLI: an arrow pointing up
    errors = tree_copy / "pushgen/core/errors.py"
    errors.write_text(
        errors.read_text() + "\n\ndef _planted():\n    import pushgen.cli.main  # noqa\n"
    )
    result = lint_imports(tree_copy)
    assert result.returncode != 0
    assert "Every arrow points down" in result.stdout and "BROKEN" in result.stdout
    assert "pushgen.core.errors -> pushgen.cli.main" in result.stdout


def test_no_module_over_600_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for pkg in (*PACKAGES, "bench")
        for p in (ROOT / pkg).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 600
    }
    assert not long, f"modules over 600 lines: {long}"
