"""The end-to-end demo behind `pushgen demo` and `make demo`, one stage per function.

    run_demo(DemoConfig(out="runs/demo"))

Stages: simulate a world and hold a few videos out as "new" (they have no push history) ->
run the training pipeline with the kfp local runner -> materialise video features into Feast's
SQLite online store -> start generator, ranker and pushgen transformer as KServe ModelServers on
127.0.0.1 -> ask for a push for each new video -> simulate feedback from the world's truth ->
judge the serving log with the monitor (calibrated bands; `not evaluated` below the sample the
checks need) -> one pass of the production loop (a drifted window, its alert, the retraining of
the blamed part, the gate's decision).

The demo says at its start how long it will take: the stage times of the last recorded run
(`docs/results/demo_timing.json`, written by `pushgen demo --record`), scaled by nothing: the
same machine class gives the same figure. Every run writes its own to `<out>/timing.json`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from pushgen.data.contracts import read_table, write_table
from pushgen.data.simulator import SimConfig, World, simulate, true_ctr, write_simulation

console = Console()


@dataclass
class DemoConfig:
    """Sizes and models of the demo run (defaults: minutes on 2 CPU cores)."""

    out: str = "runs/demo"  # everything is written under this directory
    n_videos: int = 120  # videos in the simulated world
    n_new_videos: int = 6  # videos held out of training: the "new videos" served at the end
    sft_steps: int = 40  # LoRA SFT steps (batch 8): enough to learn the push format and styles
    reward_epochs: float = 1.0  # ranker epochs over the A/B pairs
    report_videos: int = 8  # held-out videos the run report replays (the full replay: make results)
    base_model: str = "default"  # generator base (packaged SmolLM2-135M-Instruct)
    backbone: str = "default"  # ranker and labeller encoder (packaged all-MiniLM-L6-v2)
    seed: int = 0
    feedback_pv: int = 5000  # simulated exposures per served push
    reference_requests: int = 2000  # healthy log-shaped traffic the monitor calibrates on
    loop: bool = True  # end with one pass of the production loop (drift -> retrain -> gate)
    record: bool = False  # also write the stage times to docs/results/demo_timing.json


TIMING_FILE = Path("docs/results/demo_timing.json")  # the recorded run the estimate comes from


def _stage(n: int, title: str) -> float:
    console.rule(f"[bold]{n}. {title}")
    return time.perf_counter()


def _done(start: float) -> None:
    console.print(f"[dim]done in {time.perf_counter() - start:.0f} s[/dim]")


class _RunnerLog(io.TextIOBase):
    """Where the kfp local runner's chatty output goes: all of it to a file; task lines, errors
    and (every 20 s at most) a progress-bar line are echoed to the real stdout."""

    SHOW = re.compile(r"Executing task|finished with status|Traceback|Error|FAILURE")
    PROGRESS = re.compile(r"\d+%\|")
    ANSI = re.compile(r"\x1b\[[0-9;]*m")

    def __init__(self, path: Path, progress_every_s: float = 20.0):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a", encoding="utf-8")
        self.echo = sys.stdout  # the real stdout, captured before the redirect
        self.pending = ""
        self.progress_every_s = progress_every_s
        self.last_progress = 0.0

    def write(self, text: str) -> int:
        self.file.write(text)
        self.pending += text
        *lines, self.pending = re.split(r"[\r\n]", self.pending)
        for line in lines:
            line = self.ANSI.sub("", line).strip()
            now = time.monotonic()
            if self.SHOW.search(line):
                self._echo(line)
            elif self.PROGRESS.search(line) and now - self.last_progress > self.progress_every_s:
                self.last_progress = now
                self._echo("  " + line)
        return len(text)

    def _echo(self, line: str) -> None:
        self.echo.write(f"  {line}\n")
        self.echo.flush()

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def make_data(cfg: DemoConfig, out: Path) -> tuple[Path, World, list[str]]:
    """Simulate a world; new videos keep their video row but lose pushes and A/B arms."""
    sim = simulate(SimConfig(n_videos=cfg.n_videos, seed=cfg.seed))
    write_simulation(sim, out / "world")
    new_ids = sim.videos["video_id"].iloc[-cfg.n_new_videos :].tolist() if cfg.n_new_videos else []
    train = out / "train_data"
    write_table(sim.videos, train / "videos.parquet")
    write_table(sim.pushes[~sim.pushes.video_id.isin(new_ids)], train / "pushes.parquet")
    write_table(sim.ab_tests[~sim.ab_tests.video_id.isin(new_ids)], train / "ab_tests.parquet")
    (train / "world.json").write_text((out / "world" / "world.json").read_text())
    console.print(
        f"{len(sim.videos)} videos, {len(sim.pushes)} human pushes, "
        f"{sim.ab_tests.test_id.nunique()} A/B tests; new videos: {', '.join(new_ids)}"
    )
    return train, sim.world, new_ids


def run_pipeline(cfg: DemoConfig, out: Path, train: Path) -> Path:
    """Run the KFP training pipeline locally; returns the registered release directory."""
    from pipelines.training import run_local
    from pushgen.core.store import ArtifactStore

    params = {
        "data_location": str(train.resolve()),
        "seed": cfg.seed,
        "base_model": cfg.base_model,
        "backbone": cfg.backbone,
        "sft_max_steps": cfg.sft_steps,
        "sft_batch_size": 8,
        "reward_epochs": cfg.reward_epochs,
        "reward_batch_size": 16,
        "report_videos": cfg.report_videos,
    }
    os.environ.setdefault("PYTHONUNBUFFERED", "1")  # step logs stream as they happen
    log_path = out / "pipeline" / "runner.log"
    console.print(f"kfp local runner output: {log_path}")
    runner_log = _RunnerLog(log_path)
    try:
        with contextlib.redirect_stdout(runner_log), contextlib.redirect_stderr(runner_log):
            artifacts = run_local(params, pipeline_root=out / "pipeline")
    finally:
        runner_log.close()
    console.print(f"{len(artifacts)} artifacts; index in {out / 'pipeline' / 'last_run.json'}")
    release = ArtifactStore.from_uri(out / "pipeline" / "store").resolve("latest")
    console.print(f"registered release {release['version']} at {release['uri']}")
    summary = next((p for k, p in artifacts.items() if k.endswith("/summary")), None)
    if summary and Path(summary).is_file():
        console.print(Path(summary).read_text()[:2500])
    return Path(release["uri"])


def build_features(out: Path, release: Path) -> Path:
    """Apply the Feast repo over the release's video/caption/push data and materialise it."""
    from pushgen.features.feast_store import build_feature_store

    repo = build_feature_store(
        videos=read_table(release / "features" / "videos.parquet"),
        captions=read_table(release / "features" / "captions.parquet"),
        pushes=read_table(out / "train_data" / "pushes.parquet"),
        out_dir=out / "features",
    )
    console.print(f"Feast repo at {repo} (SQLite online store)")
    return repo


def shipped_log(out: Path) -> Path:
    """Where the demo's transformer ships its log windows: the artifact store, as on a cluster."""
    return (out / "pipeline" / "store" / "serving-log" / "local").resolve()


def serve_new_videos(
    cfg: DemoConfig, out: Path, release: Path, repo: Path, world: World, new_ids: list[str]
) -> pd.DataFrame:
    """Start the local KServe stack and ask for a push for every new video, as a user would."""
    from serving.stack import LocalStack, StackConfig, push_for_video

    stack_cfg = StackConfig(
        log_dir=out / "serving",
        model_root=release,
        cache_dir=out / "model-cache",
        log_ship_to=str(shipped_log(out)),
    )
    rows = []
    with LocalStack(release, feature_repo=repo, config=stack_cfg) as stack:
        console.print(f"pushgen transformer ready at {stack.url}")
        for video_id in new_ids:
            answer = push_for_video(stack.url, video_id)
            alternatives = answer.get("alternatives") or []
            texts = [a.get("text") for a in alternatives if a.get("text")]
            ctrs = [true_ctr(world, video_id, t) for t in texts] or [float("nan")]
            chosen = answer.get("text")
            rows.append(
                {
                    "video_id": video_id,
                    "category": answer.get("category"),
                    "push": chosen,
                    "win_prob": answer.get("win_prob"),
                    "true_ctr": true_ctr(world, video_id, chosen) if chosen else float("nan"),
                    "mean_candidate_ctr": float(np.mean(ctrs)),
                    "best_candidate_ctr": float(np.max(ctrs)),
                }
            )
    console.print("[bold]pushes for new videos[/bold] (true CTR from the simulator's truth)")
    for r in rows:
        score = (
            f"beats the other candidates {r['win_prob']:.0%} of the time (ranker)"
            if r["win_prob"] is not None
            else "no ranker score"
        )
        console.print(
            f"  {r['video_id']}  [{r['category']}]  {r['push']!r}\n"
            f"      {score}   true CTR {r['true_ctr']:.2%}   candidates: mean "
            f"{r['mean_candidate_ctr']:.2%}, best {r['best_candidate_ctr']:.2%}",
            highlight=False,
        )
    chosen = np.nanmean([r["true_ctr"] for r in rows]) if rows else float("nan")
    mean = np.nanmean([r["mean_candidate_ctr"] for r in rows]) if rows else float("nan")
    console.print(f"mean true CTR: chosen {chosen:.2%} vs random candidate {mean:.2%}")
    return pd.DataFrame(rows)


def monitor(cfg: DemoConfig, out: Path, world: World) -> dict:
    """Feedback for every logged request from the world's truth, then the monitor's verdict.

    The reference is healthy log-shaped traffic over the same world (monitoring/logsim.py),
    standing in for last week's serving log. A demo serves a handful of requests, so most checks
    say `not evaluated` with the number of requests they need; none of them alerts on that.
    """
    from monitoring.logsim import StreamConfig, simulate_log
    from serving.serving_log import read_serving_windows, ship_feedback

    # what the transformer shipped to the store when it stopped (its JSONL stays in out/serving)
    log, rejected = read_serving_windows(str(shipped_log(out)))
    if len(rejected):
        console.print(f"[yellow]{len(rejected)} serving-log rows failed the contract[/yellow]")
    rng = np.random.default_rng(cfg.seed)
    rows = []
    for request_id, part in log.groupby("request_id", sort=False):
        chosen = part[part["selected"].astype(bool)]
        if chosen.empty:  # nothing servable: nothing sent, still reported (and kept)
            rows.append({"request_id": request_id, "pv": 0, "clicks": 0})
            continue
        ctr = true_ctr(world, chosen["video_id"].iloc[0], chosen["text"].iloc[0])
        rows.append(
            {
                "request_id": request_id,
                "pv": cfg.feedback_pv,
                "clicks": int(rng.binomial(cfg.feedback_pv, ctr)),
            }
        )
    feedback = pd.DataFrame(rows, columns=["request_id", "pv", "clicks"])
    write_table(feedback, out / "serving" / "feedback.parquet")
    key = ship_feedback(feedback, str(shipped_log(out)), "demo")  # beside the windows
    console.print(f"serving log windows and their feedback: {shipped_log(out)} ({key})")
    ref_log, ref_fb = simulate_log(
        world, StreamConfig(n_requests=cfg.reference_requests, seed=cfg.seed)
    )
    with warnings.catch_warnings():  # evidently's imports warn about numpy and litestar internals
        warnings.simplefilter("ignore")
        from monitoring.config import MonitorConfig
        from monitoring.report import alert_lines, run_monitoring

        summary = run_monitoring(
            log,
            feedback,
            ref_log,
            out / "monitor",
            MonitorConfig(evidently=False),
            reference_feedback=ref_fb,
        )
    console.print("\n".join(alert_lines(summary)), highlight=False)
    console.print(f"monitor report: {summary['report_html']}")
    return summary


def loop_pass(cfg: DemoConfig, out: Path, train: Path) -> dict:
    """One pass of the production loop over the demo's data and store (`pipelines.loop_pass`)."""
    from pipelines.loop_pass import LoopConfig, run_loop_pass
    from pushgen.loop.gate import decision_markdown

    loop_cfg = LoopConfig(
        data=str(train),
        store=str(out / "pipeline" / "store"),
        out=str(out / "loop"),
        base_model=cfg.base_model,
        backbone=cfg.backbone,
        seed=cfg.seed,
    )
    runner_log = _RunnerLog(out / "loop" / "runner.log")
    try:
        with contextlib.redirect_stdout(runner_log), contextlib.redirect_stderr(runner_log):
            result = run_loop_pass(loop_cfg)
    finally:
        runner_log.close()
    console.print(f"alert: {result['alert']}; blamed: {result['retrain_targets'] or 'none'}")
    if result.get("gate"):
        console.print(f"retraining run: {result['new_version']} ({result['gate']['run_reason']})")
        console.print(decision_markdown(result["gate"]))
    console.print(f"status: {result.get('status')}; LATEST is {result['latest']}")
    again = result.get("previous_offered")
    if again:  # the gate's other answer: the ranker that served before, offered again
        console.print(
            f"the ranker of {again['candidate_version']}, offered again against LATEST: "
            f"{'promoted' if again['promote'] else 'rejected'} ({again['reason']})"
        )
    elif result.get("status") != "promoted":
        console.print(
            f"no version promoted: {(result.get('gate') or {}).get('reason', 'no retrain')}"
        )
    return result


def _settings(cfg: DemoConfig) -> dict:
    """The settings that decide the demo's run time (an estimate holds only for the same)."""
    return {
        "n_videos": cfg.n_videos,
        "n_new_videos": cfg.n_new_videos,
        "sft_steps": cfg.sft_steps,
        "reward_epochs": cfg.reward_epochs,
        "report_videos": cfg.report_videos,
        "base_model": cfg.base_model,
        "backbone": cfg.backbone,
        "loop": cfg.loop,
    }


def announce_duration(cfg: DemoConfig, timing_file: Path = TIMING_FILE) -> float | None:
    """Print how long the demo will take, from the recorded run; returns the seconds (or None)."""
    from pushgen.core.machine import describe_machine

    try:
        recorded = json.loads(timing_file.read_text())
    except (OSError, ValueError):
        console.print("[dim]no recorded demo run to estimate the time from[/dim]")
        return None
    if recorded.get("settings") != _settings(cfg):
        console.print("[dim]other settings than the recorded run: no time estimate[/dim]")
        return None
    total = float(recorded["total_s"])
    same = recorded.get("machine") == describe_machine()
    console.print(
        f"[bold]This demo takes about {total / 60:.0f} minutes[/bold] after install "
        f"(measured on {recorded.get('machine')}{'' if same else '; this machine differs'}); "
        "stages: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in recorded["stages"].items()),
        highlight=False,
    )
    return total


def run_demo(cfg: DemoConfig) -> dict:
    """Run every stage; returns paths and headline figures."""
    from pushgen.core.machine import describe_machine

    # library deprecation chatter (evidently, litestar, transformers) is not for demo users
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    announce_duration(cfg)
    begun = time.perf_counter()
    stages: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        _done(start)
        stages[name] = round(time.perf_counter() - start, 1)

    t = _stage(1, "data: simulate a push world, hold out new videos")
    train, world, new_ids = make_data(cfg, out)
    timed("data", t)
    t = _stage(
        2,
        "training pipeline (kfp local runner): caption → clean → label → SFT ‖ ranker "
        "→ evaluate → register",
    )
    release = run_pipeline(cfg, out, train)
    timed("pipeline", t)
    t = _stage(3, "features: Feast repo, SQLite online store")
    repo = build_features(out, release)
    timed("features", t)
    t = _stage(4, "serving: KServe ModelServers on 127.0.0.1, pushes for new videos")
    served = serve_new_videos(cfg, out, release, repo, world, new_ids)
    timed("serving", t)
    t = _stage(5, "monitoring: feedback from the world's truth, calibrated checks, report")
    summary = monitor(cfg, out, world)
    timed("monitoring", t)
    loop = None
    if cfg.loop:
        t = _stage(6, "production loop: drifted window → alert → retrain the blamed part → gate")
        loop = loop_pass(cfg, out, train)
        timed("loop", t)
    timing = {
        "total_s": round(time.perf_counter() - begun, 1),
        "stages": stages,
        "settings": _settings(cfg),
        "machine": describe_machine(),
        "measured_at": time.strftime("%Y-%m-%d"),
    }
    (out / "timing.json").write_text(json.dumps(timing, indent=2))
    if cfg.record:
        TIMING_FILE.parent.mkdir(parents=True, exist_ok=True)
        TIMING_FILE.write_text(json.dumps(timing, indent=2) + "\n")
    result = {
        "release": str(release),
        "feature_repo": str(repo),
        "served": served.to_dict("records"),
        "monitoring": summary.get("report_html"),
        "loop": loop,
        "timing": timing,
    }
    (out / "demo_summary.json").write_text(json.dumps(result, indent=2, default=str))
    console.rule("[bold green]demo complete")
    console.print(f"took {timing['total_s'] / 60:.1f} min; summary: {out / 'demo_summary.json'}")
    return result
