"""`pushgen replay`: the whole method replayed offline against the human pushes.

    pushgen replay --run runs/results --sim runs/results/world --videos 40 [--out DIR]
        [--no-base] [--no-uncontrolled] [--train-weighting literal,none --weighting-steps 40]

Writes `replay.json` (every arm against the video's mean human push with BCa / Wilson 95%
intervals, the sent push redrawn, the paper's metrics, ablations, generator figures, where the
gain comes from), `videos.parquet` (one row per video) and
`candidates.parquet` into `--out` (default `<run>/replay`), all at once: a failed replay leaves
the previous output as it was.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from pushgen.core.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `replay` subcommand."""
    p = subparsers.add_parser(
        "replay",
        help="replay the trained method on held-out simulated videos vs the human pushes",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--run", required=True, help="a training run (pipeline root or demo folder)")
    p.add_argument("--sim", required=True, help="the simulated world (world.json, pushes, videos)")
    p.add_argument("--videos", type=int, default=0, help="held-out videos to replay (0: all)")
    p.add_argument("--out", help="output directory (default: <run>/replay)")
    p.add_argument("--no-base", action="store_true", help="skip the base-model ablation")
    p.add_argument(
        "--no-uncontrolled", action="store_true", help="skip the no-category-control ablation"
    )
    p.add_argument(
        "--train-weighting",
        default="",
        help="comma list of SFT weightings to retrain and replay (literal,none,bounded)",
    )
    p.add_argument(
        "--weighting-steps",
        type=int,
        default=0,
        help="SFT steps of those retrainings (0: the run's own)",
    )
    p.add_argument(
        "--redraws", type=int, default=2000, help="redraws of which human push counts as sent"
    )
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap draws")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu / cuda (default: cuda when available)")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace):
    from pushgen.data.clean import WEIGHTINGS
    from pushgen.evidence.replay import ReplayConfig

    weightings = [w.strip() for w in args.train_weighting.split(",") if w.strip()]
    unknown = sorted(set(weightings) - set(WEIGHTINGS))
    if unknown:
        raise ConfigError(f"--train-weighting: unknown {unknown}; known: {list(WEIGHTINGS)}")
    if args.bootstrap < 100 or args.redraws < 1 or args.weighting_steps < 0:
        raise ConfigError("--bootstrap must be >= 100, --redraws >= 1, --weighting-steps >= 0")
    cfg = ReplayConfig(
        videos=args.videos,
        base_model=not args.no_base,
        uncontrolled=not args.no_uncontrolled,
        n_boot=args.bootstrap,
        redraws=args.redraws,
        seed=args.seed,
        device=args.device,
    )
    return cfg, weightings


def run(args: argparse.Namespace) -> int:
    from pushgen.evidence.replay import choose_videos, goals, run_replay
    from pushgen.evidence.replay_data import RunArtifacts, SimWorld
    from pushgen.evidence.tables import replay_lines

    cfg, weightings = _config(args)
    run_art = RunArtifacts.find(args.run)
    sim = SimWorld.load(args.sim)
    choose_videos(run_art, sim, cfg.videos, cfg.seed)  # bad --videos fails before any work
    out = Path(args.out) if args.out else Path(args.run) / "replay"
    if weightings:
        from pushgen.evidence.ablation import train_weighting_variant

        for w in weightings:
            print(f"training the SFT weighting ablation: {w}", flush=True)
            path = train_weighting_variant(
                run_art, w, out.parent / f"{out.name}-ablation" / w, args.weighting_steps or None
            )
            cfg.extra_generators[f"weighting_{w}"] = str(path)
    from pushgen.evidence.provenance import provenance

    prov = provenance(["pushgen", "replay", *_argv(args)])  # at the start: its time is the start
    report, candidates, per_video = run_replay(run_art, sim, cfg)
    report["goals"] = goals(report)
    report["run"], report["sim"] = str(Path(args.run)), str(Path(args.sim))
    report["provenance"] = prov
    write_outputs(out, report, candidates, per_video)
    print("\n".join(replay_lines(report)))
    print(f"wrote {out}/replay.json, videos.parquet, candidates.parquet")
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    """The options that shape a replay, as a command line."""
    argv = ["--run", str(args.run), "--sim", str(args.sim), "--videos", str(args.videos)]
    argv += ["--seed", str(args.seed), "--bootstrap", str(args.bootstrap)]
    return argv + [
        f"--{k}" for k in ("no-base", "no-uncontrolled") if getattr(args, k.replace("-", "_"))
    ]


def write_outputs(out: Path, report: dict, candidates, per_video) -> None:
    """Write the three files into a scratch folder beside `out`, then swap it in whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        (tmp / "replay.json").write_text(json.dumps(report, indent=2, default=str))
        per_video.to_parquet(tmp / "videos.parquet", index=False)
        candidates.to_parquet(tmp / "candidates.parquet", index=False)
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
