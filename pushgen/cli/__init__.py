"""The `pushgen` command line: the parser (`main`), one module of subcommands per capability
(`commands/`), and the end-to-end demo (`demo`).

Layer 6, the top: may import everything; nothing in the project imports it.
"""
