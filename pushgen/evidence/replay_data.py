"""What an offline replay reads: a trained run's artifacts, the simulated world, held-out videos.

A run folder is a pipeline root (`last_run.json` + `store/`, what `pushgen pipeline run --local`
writes) or a demo folder holding one under `pipeline/`. Every artifact the replay and the report
need is checked up front, so a missing one is one clear error before anything is computed:

    run = RunArtifacts.find("runs/demo")
    sim = SimWorld.load("runs/demo/world")
    videos = held_out_videos(run, sim)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pushgen.core.errors import DataContractError
from pushgen.data.contracts import read_table
from pushgen.data.simulator import World

RUN_INDEX = "last_run.json"  # written by pipelines.training.run_local: {"task/output": path}
# artifact key in the run index -> what it is (for error messages)
RUN_ARTIFACTS: dict[str, str] = {
    "sft/generator": "the fine-tuned generator",
    "reward/ranker": "the pairwise ranker",
    "caption/captions": "the captions",
    "simulate-or-ingest/pushes": "the training pushes",
    "simulate-or-ingest/ab_tests": "the training A/B tests",
    "clean/metrics": "the cleaning report",
    "label/labelled": "the labelled pushes",
}


@dataclass
class RunArtifacts:
    """Paths of one training run's outputs (every one checked to exist)."""

    root: Path  # the pipeline root
    paths: dict[str, Path]  # RUN_ARTIFACTS key -> path

    @classmethod
    def find(cls, run_dir: str | Path) -> RunArtifacts:
        """The run under `run_dir` (a pipeline root or a demo folder), or a `DataContractError`
        naming the first missing artifact."""
        run_dir = Path(run_dir)
        root = next((d for d in (run_dir, run_dir / "pipeline") if (d / RUN_INDEX).is_file()), None)
        if root is None:
            raise DataContractError(
                f"{run_dir} is not a pushgen run: no {RUN_INDEX} in it or in {run_dir}/pipeline"
            )
        try:
            index = json.loads((root / RUN_INDEX).read_text())
        except ValueError as exc:
            raise DataContractError(f"{root / RUN_INDEX} is not JSON: {exc}") from None
        paths = {}
        for key, what in RUN_ARTIFACTS.items():
            path = Path(index.get(key, ""))
            if key not in index or not path.exists():
                raise DataContractError(f"run {run_dir} lacks {what} ({key})")
            paths[key] = path
        return cls(root, paths)

    def __getitem__(self, key: str) -> Path:
        return self.paths[key]

    def split(self, key: str) -> dict:
        """The `split.json` a model step wrote (generator or ranker), {} when absent."""
        path = self.paths[key] / "split.json"
        return json.loads(path.read_text()) if path.is_file() else {}


@dataclass
class SimWorld:
    """A simulated world's truth plus its full push history (held-out videos' pushes included)."""

    world: World
    videos: pd.DataFrame
    pushes: pd.DataFrame  # every human push, with the simulator's `true_ctr`

    @classmethod
    def load(cls, sim_dir: str | Path) -> SimWorld:
        """Read `world.json`, `videos.parquet` and `pushes.parquet` from `sim_dir`."""
        sim_dir = Path(sim_dir)
        for name in ("world.json", "videos.parquet", "pushes.parquet"):
            if not (sim_dir / name).is_file():
                raise DataContractError(f"{sim_dir} is not a simulated world: {name} is missing")
        pushes = read_table(sim_dir / "pushes.parquet", "pushes")
        if "true_ctr" not in pushes.columns:
            raise DataContractError(f"{sim_dir}/pushes.parquet has no true_ctr column")
        return cls(
            World.load(sim_dir / "world.json"),
            read_table(sim_dir / "videos.parquet", "videos"),
            pushes,
        )


def held_out_videos(run: RunArtifacts, sim: SimWorld, unseen_only: bool = True) -> list[str]:
    """Videos to replay: they have a caption and a human push to compare with, and

    - `unseen_only` (the replay's default): no step of the run has seen them: no push and no A/B
      arm of theirs was ingested (so none was filtered, validated on or trained on);
    - otherwise (the pipeline's own report step, which sees only ingested pushes): neither model
      trained on them (the generator's `split.json` train videos, else every video with a
      training push, and the videos of the ranker's training A/B tests).
    """
    ingested_pushes = read_table(run["simulate-or-ingest/pushes"])
    ab = read_table(run["simulate-or-ingest/ab_tests"])
    if unseen_only:
        gen_split = run.split("sft/generator")
        seen = set(ingested_pushes["video_id"]) | set(ab["video_id"])
        seen |= set(gen_split.get("train_videos", [])) | set(gen_split.get("val_videos", []))
    else:
        gen_split = run.split("sft/generator")
        if gen_split.get("train_videos"):
            seen = set(gen_split["train_videos"])
        else:
            seen = set(ingested_pushes["video_id"])
        rank_split = run.split("reward/ranker")
        train_tests = set(rank_split.get("train_test_ids", ab["test_id"].astype(str)))
        seen |= set(ab.loc[ab["test_id"].astype(str).isin(train_tests), "video_id"])
    captioned = set(read_table(run["caption/captions"])["video_id"])
    with_pushes = set(sim.pushes["video_id"])
    known = set(sim.world.videos["video_id"])
    return sorted((captioned & with_pushes & known) - seen)


def sent_pushes(pushes: pd.DataFrame) -> pd.DataFrame:
    """The human push that was sent for each video: its earliest (the editor's first choice)."""
    ordered = pushes.sort_values(["video_id", "sent_at", "push_id"])
    return ordered.groupby("video_id", sort=True).head(1).set_index("video_id")
