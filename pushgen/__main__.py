"""`python -m pushgen` runs the CLI."""

from pushgen.cli import entry

entry()
