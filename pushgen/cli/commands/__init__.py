"""CLI subcommands, one module per capability; each exposes `register(subparsers)`.

Modules here stay light at import (no torch, no pandas at top level) so `pushgen --help` is fast;
the heavy imports happen inside the command functions.
"""
