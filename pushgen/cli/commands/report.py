"""`pushgen report --run DIR --out DIR [--readme]` and `pushgen results` (the documented command).

    pushgen report --run runs/results/seed-0 --out runs/results/report    # Markdown + HTML + PNGs
    pushgen report --run runs/results/seed-0 --out DIR --readme           # + README's Results
    pushgen results                    # per seed: simulate, train, replay; docs/results + README
    pushgen results --reuse            # the same, reusing trained runs and replays that exist

`report` reads the run's artifacts and, when present, `<run>/replay/replay.json` (or `--replay`);
`--upworthy` adds an `eval-ranker --format upworthy` JSON. The monitor summary form
(`pushgen report PATH`) lives in `pushgen.cli.commands.monitor`, which hands `--run` calls here.
Every file is written into a scratch folder first, so a failure leaves `--out` as it was.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from pushgen.core.errors import ConfigError, DataContractError


def add_run_report_args(p: argparse.ArgumentParser) -> None:
    """The run-report options of `pushgen report` (shared with the monitor summary form)."""
    p.add_argument("--run", help="a training run (pipeline root or demo folder)")
    p.add_argument("--out", help="output directory (default: <run>/report)")
    p.add_argument("--replay", help="a replay.json (default: <run>/replay/replay.json if present)")
    p.add_argument("--upworthy", help="an `eval-ranker --format upworthy --json` report to include")
    p.add_argument(
        "--readme",
        nargs="?",
        const="README.md",
        default=None,
        metavar="PATH",
        help="also write results.json and rewrite PATH's Results section (README.md)",
    )
    p.add_argument("--device", help="cpu / cuda (default: cuda when available)")


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise DataContractError(f"no {what} at {path}")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise DataContractError(f"{path} is not JSON: {exc}") from None


def run_report(args: argparse.Namespace) -> int:
    """Build the report; with --readme also results.json and the README section."""
    from pushgen.evidence.replay_data import RunArtifacts
    from pushgen.evidence.report import RESULTS_JSON, build_report
    from pushgen.evidence.results import compact, render_section, replace_section

    run = RunArtifacts.find(args.run)
    replay_path = Path(args.replay) if args.replay else Path(args.run) / "replay" / "replay.json"
    replay = _read_json(replay_path, "replay") if args.replay or replay_path.is_file() else None
    if replay is not None and "arms" not in replay:
        raise DataContractError(f"{replay_path} is not a replay report (no 'arms')")
    upworthy = _read_json(Path(args.upworthy), "Upworthy evaluation") if args.upworthy else None
    readme = Path(args.readme) if args.readme else None
    if readme is not None:
        from pushgen.evidence.results import END, START

        text = readme.read_text() if readme.is_file() else ""
        if text.count(START) != 1 or text.count(END) != 1:
            raise DataContractError(f"{readme} has no results markers to rewrite")
    out = Path(args.out) if args.out else Path(args.run) / "report"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        figures = build_report(run, tmp, replay, upworthy, args.device)
        if replay is not None:
            from pushgen.evidence.provenance import provenance
            from pushgen.evidence.results import assemble

            prov = provenance(["pushgen", "report", "--run", str(args.run)])
            results = assemble({"0": compact(figures)}, prov, replay.get("sizes", {}))
            (tmp / RESULTS_JSON).write_text(json.dumps(results, indent=2, default=str))
        out.mkdir(parents=True, exist_ok=True)
        for f in tmp.iterdir():
            f.replace(out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if readme is not None:
        if replay is None:
            raise DataContractError("--readme needs a replay (pushgen replay --run DIR --sim DIR)")
        replace_section(readme, render_section(json.loads((out / RESULTS_JSON).read_text())))
        print(f"rewrote the Results section of {readme}")
    print(f"report: {out / 'report.html'} ({out / 'report.md'})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `results` (the run-report form of `report` is added by the monitor commands)."""
    p = subparsers.add_parser(
        "results",
        help="per seed: simulate, train, replay never-seen videos; docs/results and README",
        description="The one command behind docs/results and the README's Results section.",
    )
    p.add_argument("--out", default="runs/results", help="working directory (one run per seed)")
    p.add_argument("--seeds", default="0,1,2", help="comma list of world and training seeds")
    p.add_argument("--videos", type=int, default=160, help="videos in each simulated world")
    p.add_argument("--held-out", type=int, default=40, help="videos no step ever sees")
    p.add_argument("--sft-steps", type=int, default=20, help="LoRA SFT steps (batch 8)")
    p.add_argument(
        "--replay-videos", type=int, default=24, help="never-seen videos replayed (0: all)"
    )
    p.add_argument("--results", default="docs/results", help="where results.json and PNGs go")
    p.add_argument(
        "--readme", default="README.md", help="README whose Results section is rewritten"
    )
    p.add_argument(
        "--upworthy",
        help="an Upworthy-layout archive (.parquet/.csv): run the whole method on it "
        "(pushgen.evidence.upworthy_run); or an `eval-ranker --format upworthy --json` report",
    )
    p.add_argument(
        "--upworthy-size",
        default="full",
        help="real-data run size: full, 2core (fits 2 CPU cores) or small",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="reuse each seed's trained run and replay where they exist (default: rerun all)",
    )
    p.add_argument("--device", help="cpu / cuda (default: cuda when available)")
    p.set_defaults(func=run_results)


def command_line(args: argparse.Namespace) -> str:
    """The `pushgen results` command line that reproduces `args` (every option spelled out)."""
    parts = [
        "pushgen results",
        f"--seeds {args.seeds}",
        f"--videos {args.videos}",
        f"--held-out {args.held_out}",
        f"--sft-steps {args.sft_steps}",
        f"--replay-videos {args.replay_videos}",
    ]
    return " ".join(parts + (["--reuse"] if args.reuse else []))


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds must be a comma list of integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must name one or more distinct seeds, got {text!r}")
    return seeds


def run_results(args: argparse.Namespace) -> int:
    """Per seed: simulate + train -> replay -> report; then results.json, report and README."""
    import time

    from pushgen.cli.demo import DemoConfig, make_data, run_pipeline
    from pushgen.cli.main import main as cli
    from pushgen.evidence.provenance import provenance
    from pushgen.evidence.replay_data import RunArtifacts
    from pushgen.evidence.report import build_report, top_report
    from pushgen.evidence.results import assemble, compact, readme_section, replace_section

    if args.upworthy and Path(args.upworthy).suffix in (".parquet", ".csv"):
        from pushgen.evidence.upworthy_run import run_upworthy_results

        return run_upworthy_results(args)
    seeds = _seeds(args.seeds)
    if args.held_out < 1 or args.held_out >= args.videos:
        raise ConfigError("--held-out must be >= 1 and below --videos")
    if args.replay_videos < 0 or args.replay_videos > args.held_out:
        raise ConfigError("--replay-videos must be between 0 (all) and --held-out")
    readme = Path(args.readme)
    from pushgen.evidence.results import END, START

    text = readme.read_text() if readme.is_file() else ""
    if text.count(START) != 1 or text.count(END) != 1:
        raise DataContractError(f"{readme} has no results markers to rewrite")
    prov = provenance(["pushgen", *command_line(args).split()[1:]])
    start = time.perf_counter()
    results_dir = Path(args.results)
    per_seed, reused = {}, {"training": [], "replay": []}
    for i, seed in enumerate(seeds, 1):
        out = Path(args.out) / f"seed-{seed}"
        say = f"[seed {seed}, {i}/{len(seeds)}, {time.perf_counter() - start:.0f} s]"
        cfg = DemoConfig(
            out=str(out),
            n_videos=args.videos,
            n_new_videos=args.held_out,
            sft_steps=args.sft_steps,
            seed=seed,
            report_videos=0,  # the pipeline's own report step: no replay (this one does it)
        )
        if args.reuse and (out / "pipeline" / "last_run.json").is_file():
            print(f"{say} reusing the trained run in {out} (--reuse)", flush=True)
            reused["training"].append(seed)
        else:
            print(f"{say} simulating and training in {out}", flush=True)
            shutil.rmtree(out, ignore_errors=True)
            train, _, _ = make_data(cfg, out)
            run_pipeline(cfg, out, train)
        replay_json = out / "replay" / "replay.json"
        if args.reuse and replay_json.is_file():
            print(f"{say} reusing the replay in {replay_json} (--reuse)", flush=True)
            reused["replay"].append(seed)
        else:
            print(f"{say} replaying the never-seen videos", flush=True)
            argv = ["replay", "--run", str(out), "--sim", str(out / "world"), "--seed", str(seed)]
            code = cli([*argv, "--videos", str(args.replay_videos)])
            if code:
                return code
        replay = json.loads(replay_json.read_text())
        seed_dir = results_dir / f"seed-{seed}"
        print(f"{say} report into {seed_dir}", flush=True)
        upworthy = _read_json(Path(args.upworthy), "Upworthy evaluation") if args.upworthy else None
        figures = build_report(RunArtifacts.find(out), seed_dir, replay, upworthy, args.device)
        for name in ("videos", "candidates"):
            table = pd_read(out / "replay" / f"{name}.parquet")
            table.to_csv(seed_dir / f"{name}.csv", index=False, float_format="%.6g")
        per_seed[str(seed)] = compact(figures)
        per_seed[str(seed)]["timing"] = _timing(out, replay)
    prov["duration_s"] = round(time.perf_counter() - start, 1)
    prov["training"] = (
        f"reused for seeds {reused['training']}" if reused["training"] else "rerun for every seed"
    )
    prov["replay"] = (
        f"reused for seeds {reused['replay']}" if reused["replay"] else "rerun for every seed"
    )
    sizes = {
        "world videos": args.videos,
        "training videos": args.videos - args.held_out,
        "never-seen videos": args.held_out,
        "SFT steps": args.sft_steps,
        "reward epochs": DemoConfig().reward_epochs,
    }
    results = assemble(per_seed, prov, sizes)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    top_report(results, results_dir)
    replace_section(readme, readme_section(results))
    print(
        f"results: {results_dir / 'results.json'}, {results_dir / 'report.html'}; rewrote the "
        f"Results section of {readme}; training {prov['training']}, replay {prov['replay']}; "
        f"{prov['duration_s'] / 60:.1f} min"
    )
    return 0


def _timing(out: Path, replay: dict) -> dict:
    """Wall-clock seconds of a seed's training (world written -> run index written) and replay
    (run index written -> replay.json written: `pushgen results` replays right after training),
    read from the files, so reused runs have them too."""
    world = out / "world" / "world.json"
    index = out / "pipeline" / "last_run.json"
    done = (out / "replay" / "replay.json").stat().st_mtime
    return {
        "training_s": round(index.stat().st_mtime - world.stat().st_mtime, 1),
        "replay_s": round(done - index.stat().st_mtime, 1),
    }


def pd_read(path: Path):
    """A parquet table (pandas)."""
    import pandas as pd

    return pd.read_parquet(path)
