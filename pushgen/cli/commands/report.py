"""`pushgen report --run DIR --out DIR [--readme]` and `pushgen results` (the documented command).

    pushgen report --run runs/results --out runs/results/report           # Markdown + HTML + PNGs
    pushgen report --run runs/results --out docs/results --readme         # + README's Results
    pushgen results --out runs/results                                    # train, replay, report

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
        results = compact(figures)
        results["command"] = getattr(args, "command_line", None) or "make results"
        if replay and "sizes" in replay:
            results["sizes"] = replay["sizes"]
        (tmp / RESULTS_JSON).write_text(json.dumps(results, indent=2, sort_keys=True, default=str))
        out.mkdir(parents=True, exist_ok=True)
        for f in tmp.iterdir():
            f.replace(out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if readme is not None:
        replace_section(readme, render_section(json.loads((out / RESULTS_JSON).read_text())))
        print(f"rewrote the Results section of {readme}")
    print(f"report: {out / 'report.html'} ({out / 'report.md'}, {out / RESULTS_JSON})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `results` (the run-report form of `report` is added by the monitor commands)."""
    p = subparsers.add_parser(
        "results",
        help="train at the demo's size, replay held-out videos, write docs/results and README",
        description="The one command behind docs/results and the README's Results section.",
    )
    p.add_argument("--out", default="runs/results", help="working directory of the run")
    p.add_argument("--videos", type=int, default=160, help="videos in the simulated world")
    p.add_argument("--held-out", type=int, default=40, help="videos held out of training")
    p.add_argument("--sft-steps", type=int, default=40, help="the demo's SFT steps")
    p.add_argument("--replay-videos", type=int, default=40, help="held-out videos replayed")
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
    p.set_defaults(func=run_results)


def run_results(args: argparse.Namespace) -> int:
    """Simulate + train (skipped when the run exists) -> replay -> report --readme."""
    from pushgen.cli.demo import DemoConfig, make_data, run_pipeline

    if args.upworthy and Path(args.upworthy).suffix in (".parquet", ".csv"):
        from pushgen.evidence.upworthy_run import run_upworthy_results

        return run_upworthy_results(args)
    if args.held_out < 1 or args.held_out >= args.videos:
        raise ConfigError("--held-out must be >= 1 and below --videos")
    out = Path(args.out)
    cfg = DemoConfig(
        out=str(out), n_videos=args.videos, n_new_videos=args.held_out, sft_steps=args.sft_steps
    )
    if not (out / "pipeline" / "last_run.json").is_file():
        train, _, _ = make_data(cfg, out)
        run_pipeline(cfg, out, train)
    from pushgen.cli.main import main as cli

    sizes = {
        "world_videos": args.videos,
        "training_videos": args.videos - args.held_out,
        "sft_steps": args.sft_steps,
        "reward_epochs": cfg.reward_epochs,
    }
    if not (out / "replay" / "replay.json").is_file():
        replay_argv = ["replay", "--run", str(out), "--sim", str(out / "world")]
        code = cli(replay_argv + ["--videos", str(args.replay_videos)])
        if code:
            return code
    replay = json.loads((out / "replay" / "replay.json").read_text())
    replay["sizes"] = {**sizes, "replayed_videos": replay["videos"]}
    (out / "replay" / "replay.json").write_text(json.dumps(replay, indent=2, default=str))
    argv = ["report", "--run", str(out), "--out", args.results, "--readme", args.readme]
    return cli(argv + (["--upworthy", args.upworthy] if args.upworthy else []))
