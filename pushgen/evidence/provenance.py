"""Which code made a results file: commit, command line, machine, time; and whether it is stale.

`results.json` records `provenance()` of the run that made it. `stale_files(commit)` lists the
replay-relevant files (`REPLAY_RELEVANT`: everything that trains the models, simulates the world
or computes a figure; the orchestration in `pushgen results` is left out, its settings are the
recorded command line) changed between that commit and the working tree; a test fails, and
`pushgen results --reuse` warns on top, when the list is not empty. Presentation code (tables,
the README and HTML renderers, plots) is left out: re-rendering the same JSON needs no rerun.

    p = provenance(sys.argv)          # {"commit", "dirty", "command", "machine", "started_at"}
    stale = stale_files(p["commit"])  # [] when the results match the code
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# paths (git pathspecs, from the repository root) whose change can change a figure of a run
REPLAY_RELEVANT: tuple[str, ...] = (
    "pushgen/core",
    "pushgen/data",
    "pushgen/generator",
    "pushgen/ranker",
    "pushgen/evidence/replay.py",
    "pushgen/evidence/replay_data.py",
    "pushgen/evidence/stats.py",
    "pushgen/evidence/breakdown.py",
    "pushgen/cli/demo.py",
    "pipelines/training.py",
    "components",
)
# the real-data run (`pushgen results --upworthy`) also depends on its own stages
UPWORTHY_RELEVANT: tuple[str, ...] = (
    *REPLAY_RELEVANT,
    "pushgen/evidence/upworthy.py",
    "pushgen/evidence/upworthy_replay.py",
)

# `make bench` (bench.json): the benchmarks and the code they time
BENCH_RELEVANT: tuple[str, ...] = ("bench", "pushgen", "serving")


def _git(*args: str) -> str | None:
    """stdout of a git command in the repository, or None when git or the repository is absent."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def head_commit() -> str | None:
    """The checked-out commit (40 hex digits), or None outside a git checkout."""
    return _git("rev-parse", "HEAD")


def stale_files(commit: str, paths: tuple[str, ...] = REPLAY_RELEVANT) -> list[str] | None:
    """Replay-relevant files that differ between `commit` and the working tree (committed or
    not); None when that cannot be told (no git, or the commit is not in this clone)."""
    if _git("cat-file", "-e", f"{commit}^{{commit}}") is None:
        return None
    out = _git("diff", "--name-only", commit, "--", *paths)
    if out is None:
        return None
    untracked = _git("ls-files", "--others", "--exclude-standard", "--", *paths) or ""
    return sorted({*out.splitlines(), *untracked.splitlines()} - {""})


def provenance(argv: list[str] | None = None, paths: tuple[str, ...] = REPLAY_RELEVANT) -> dict:
    """What made a results file: commit, files under `paths` uncommitted at the start,
    the command line, the machine and the start time (UTC)."""
    from pushgen.core.machine import describe_machine

    commit = head_commit()
    argv = list(sys.argv if argv is None else argv)
    return {
        "commit": commit,
        "dirty": stale_files(commit, paths) if commit else None,
        "command": shlex.join(
            ["pushgen", *argv[1:]] if argv and argv[0].endswith("pushgen") else argv
        ),
        "machine": describe_machine(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


STALE_MARK = "**Stale results.**"


def stale_banner(
    prov: dict,
    paths: tuple[str, ...] = REPLAY_RELEVANT,
    remake: str = "`make results` makes them again; `python -m pushgen.evidence.results` "
    "rewrites this section from the results file.",
) -> str:
    """The warning the README's Results section and the report open with when replay-relevant
    code changed since the commit the results record ("" when current or when git cannot tell).
    `prov["stages"]` (stage -> commit), when present, counts every stage's commit: a resumed run
    is stale when any of its stages ran on code that has changed since. Its text names no file
    list, so it stays the same until the results are made again."""
    commit = str(prov.get("commit") or "")
    commits = dict.fromkeys([commit, *map(str, (prov.get("stages") or {}).values())])
    if not any(stale_files(c, paths) for c in commits if c):
        return ""
    return (
        f"> {STALE_MARK} These figures were made at commit `{commit[:12]}`; code that trains the "
        "models, simulates the world or replays has changed since, so they describe that commit, "
        f"not this one. {remake}\n\n"
    )
