"""`pushgen simulate`: write a simulated push world (videos, pushes, A/B tests, hidden truth)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate videos, human pushes and A/B tests with a known truth",
        description="Write videos.parquet, pushes.parquet, ab_tests.parquet and world.json to --out.",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--videos", type=int, default=1000, help="number of videos (default 1000)")
    p.add_argument(
        "--pushes-per-video", type=float, default=8.0, help="mean human pushes per video"
    )
    p.add_argument(
        "--ab-fraction", type=float, default=0.3, help="share of videos with an A/B test"
    )
    p.add_argument(
        "--confounders",
        type=float,
        default=1.0,
        help="scale of popularity/quality effects (0 = none)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (output is deterministic)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pushgen.errors import ConfigError
    from pushgen.simulator import SimConfig, simulate, write_simulation

    if args.videos < 1:
        raise ConfigError(f"--videos must be >= 1, got {args.videos}")
    cfg = SimConfig(
        n_videos=args.videos,
        pushes_per_video=args.pushes_per_video,
        ab_fraction=args.ab_fraction,
        confounder_strength=args.confounders,
        seed=args.seed,
    )
    sim = simulate(cfg)
    paths = write_simulation(sim, args.out)
    print(
        f"simulated {len(sim.videos)} videos, {len(sim.pushes)} pushes, "
        f"{sim.ab_tests.test_id.nunique()} A/B tests ({len(sim.ab_tests)} arms)"
    )
    for name, path in paths.items():
        print(f"  {name:9s} {path}")
    return 0
