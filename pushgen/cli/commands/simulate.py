"""`pushgen simulate`: write a simulated push world (videos, pushes, A/B tests, hidden truth)."""

from __future__ import annotations

import argparse

from pushgen.core.errors import ConfigError
from pushgen.core.settings import add_options, in_cli_terms, options_from
from pushgen.data.simulator import SimConfig

# SimConfig fields that are `simulate` options, with the flags that differ from --field-name
OPTIONS: dict[str, str | None] = {
    "n_videos": "--videos",
    "pushes_per_video": None,
    "ab_fraction": None,
    "confounder_strength": "--confounders",
    "seed": None,
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate videos, human pushes and A/B tests with a known truth",
        description="Write videos.parquet, pushes.parquet, ab_tests.parquet and world.json to --out.",
    )
    p.add_argument("--out", required=True, help="output directory")
    add_options(p, SimConfig(), OPTIONS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pushgen.data.simulator import simulate, write_simulation

    try:
        cfg = SimConfig(**options_from(args, OPTIONS))
    except ConfigError as exc:
        raise in_cli_terms(exc, OPTIONS, OPTIONS) from None
    sim = simulate(cfg)
    paths = write_simulation(sim, args.out)
    print(
        f"simulated {len(sim.videos)} videos, {len(sim.pushes)} pushes, "
        f"{sim.ab_tests.test_id.nunique()} A/B tests ({len(sim.ab_tests)} arms)"
    )
    for name, path in paths.items():
        print(f"  {name:9s} {path}")
    return 0
