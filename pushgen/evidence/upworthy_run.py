"""Run a real-data run's stages in order, resuming (`run_upworthy`), and the
`pushgen results --upworthy ARCHIVE` form of the results command (`run_upworthy_results`).

    pushgen results --upworthy ../shared/data/upworthy_ab_dev.parquet      # or `make upworthy`

Each stage runs once: its output file present means done, so a rerun resumes after the last
stage that finished. `run_upworthy_results` runs in `runs/upworthy` (or `--out`), then publishes
`docs/results/upworthy/` (or `--results`/upworthy) and rewrites the README's real-data section
from its results.json. `--upworthy-size small` runs a 600-story sample (a quick look; the
README's figures come from the full size or, where the full size cannot finish, `2core`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd

from pushgen.core.errors import ConfigError
from pushgen.evidence.provenance import UPWORTHY_RELEVANT, head_commit, provenance, stale_files
from pushgen.evidence.upworthy import (
    STAGES,
    UpworthyRunConfig,
    _read,
    _write,
    split_stories,
    stage_clean,
    stage_label,
    stage_rankers,
    stage_sft,
    two_core_config,
)
from pushgen.evidence.upworthy_replay import stage_generate, stage_release, stage_select
from pushgen.evidence.upworthy_report import collect, publish

SIZES = {
    "full": UpworthyRunConfig(),
    "2core": two_core_config(),
    "small": replace(UpworthyRunConfig(), max_stories=600, sft_steps=20, generate_stories=60),
}
PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "results" / "upworthy" / "results.json"


def expected_duration(published: Path = PUBLISHED) -> str:
    """How long the published run took, from its results.json (stage times, size, machine)."""
    if not published.exists():
        return "no published run to compare with yet"
    res = json.loads(published.read_text())
    total = sum(res.get("timings_s", {}).values())
    return (
        f"the published run ({res.get('size', '?')} size) took {total / 60:.0f} min on "
        f"{res.get('machine', 'its machine')}, SFT and generation most of it"
    )


class Stages:
    """Run each stage once: its marker file present means done (a rerun resumes). Each stage's
    time goes to `timings.json`, and the commit it ran on (with any uncommitted file that can
    change a figure) to `commits.json`: a resumed run may span commits."""

    def __init__(self, run_dir: Path, log: Callable[[str], None] = print) -> None:
        self.run_dir, self.log = run_dir, log
        self.timing_file = run_dir / "timings.json"
        self.timings = json.loads(self.timing_file.read_text()) if self.timing_file.exists() else {}
        self.commit_file = run_dir / "commits.json"

    def _record_commit(self, name: str, code: dict) -> None:
        commits = _read(self.commit_file) if self.commit_file.exists() else {}
        _write(self.commit_file, {**commits, name: code})

    def run(self, name: str, marker: str, fn: Callable[[], object]) -> None:
        k = STAGES.index(name) + 1
        if (self.run_dir / marker).exists():
            if self.timing_file.exists():
                self.timings = {**self.timings, **json.loads(self.timing_file.read_text())}
            self.log(f"[{k}/{len(STAGES)}] {name}: done earlier ({self.timings.get(name, '?')} s)")
            return
        self.log(f"[{k}/{len(STAGES)}] {name} ...")
        started = time.perf_counter()
        commit = head_commit()  # the code the stage starts on
        code = {
            "commit": commit,
            "dirty": stale_files(commit, UPWORTHY_RELEVANT) if commit else None,
        }
        fn()
        self._record_commit(name, code)
        # re-read first: a stage may have been run by another process meanwhile (resume)
        if self.timing_file.exists():
            self.timings = {**json.loads(self.timing_file.read_text()), **self.timings}
        self.timings[name] = round(time.perf_counter() - started, 1)
        self.timing_file.write_text(json.dumps(self.timings, indent=2))
        self.log(f"[{k}/{len(STAGES)}] {name}: {self.timings[name]} s")


def run_upworthy(
    archive: str | Path,
    run_dir: str | Path,
    cfg: UpworthyRunConfig | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Every stage, resuming; returns the collected results (also `<run_dir>/results.json`)."""
    from pushgen.data.upworthy import ingest_upworthy

    cfg = cfg or UpworthyRunConfig()
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    settings = run / "settings.json"
    if settings.exists() and _read(settings) != json.loads(json.dumps(asdict(cfg), default=str)):
        log(f"settings differ from the run in {run}: use a new directory (or delete it) to rerun")
        raise ConfigError(f"{run} holds a run with other settings ({settings})")
    _write(settings, asdict(cfg))
    st = Stages(run, log)
    st.run("ingest", "data/ingest_report.json", lambda: ingest_upworthy(archive, run / "data"))

    def split() -> None:
        videos = pd.read_parquet(run / "data" / "videos.parquet")
        _write(run / "split.json", split_stories(videos["video_id"], cfg))

    st.run("split", "split.json", split)
    st.run("clean", "clean/cleaned.parquet", lambda: stage_clean(run, cfg))
    st.run("label", "label/labelled.parquet", lambda: stage_label(run, cfg))
    st.run("sft", "sft/run_metrics.json", lambda: stage_sft(run, cfg))
    st.run("rankers", "rankers/choice.json", lambda: stage_rankers(run, cfg))
    st.run("select", "select/select.json", lambda: stage_select(run, cfg))
    st.run("generate", "generate/generate.json", lambda: stage_generate(run, cfg))
    st.run("release", "release/release.json", lambda: stage_release(run, cfg))

    results = collect(run, replace(cfg))
    _write(run / "results.json", results)
    return results


def run_upworthy_results(args: argparse.Namespace) -> int:
    """The `results --upworthy` form; returns the exit code."""
    if args.upworthy_size not in SIZES:
        raise ConfigError(f"--upworthy-size must be one of {sorted(SIZES)}")
    run = Path(args.out if args.out != "runs/results" else "runs/upworthy")
    out = Path(args.results) / "upworthy"
    size = args.upworthy_size
    print(
        f"real-data run in {run} ({size} size); {expected_duration()}; a rerun resumes", flush=True
    )
    started = time.perf_counter()
    command = f"pushgen results --upworthy {args.upworthy}" + (
        "" if size == "full" else f" --upworthy-size {size}"
    )
    prov = provenance(command.split(), UPWORTHY_RELEVANT)
    run_upworthy(args.upworthy, run, SIZES[size], log=lambda m: print(m, flush=True))
    readme = Path(args.readme) if size != "small" else None
    publish(run, out, readme, command=command, size=size, provenance=prov)
    print(
        f"done in {time.perf_counter() - started:.0f} s: {out}" + (f", {readme}" if readme else "")
    )
    return 0
