"""The `pushgen` command line: one entry point, a subcommand per capability.

User mistakes (bad arguments, missing or malformed files, bad config) print one line on stderr and
exit 2; a bug keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from pushgen import __version__
from pushgen.core.errors import PushgenError

# Each module registers its subcommands.
COMMAND_MODULES = (
    "pushgen.cli.commands.simulate",
    "pushgen.cli.commands.data",
    "pushgen.cli.commands.generator",
    "pushgen.cli.commands.ranker",
    "pushgen.cli.commands.trainjob",
    "pushgen.cli.commands.pipeline",
    "pushgen.cli.commands.serve",
    "pushgen.cli.commands.deploy",
    "pushgen.cli.commands.batch",
    "pushgen.cli.commands.monitor",
    "pushgen.cli.commands.demo",
    "pushgen.cli.commands.replay",
    "pushgen.cli.commands.report",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="pushgen",
        description="Write push notifications with an LLM and pick the one users will click.",
    )
    parser.add_argument("--version", action="version", version=f"pushgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except PushgenError as exc:
        print(f"pushgen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pushgen {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
