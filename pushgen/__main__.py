"""`python -m pushgen` runs the CLI."""

from pushgen.cli.main import entry

entry()
