"""Run the `pushgen` CLI as one torchrun rank and record what this rank wrote (test helper).

    torchrun --nproc-per-node 2 tests/rank_audit.py AUDIT_DIR WATCHED_DIR -- train-generator ...

A `sys.addaudithook` hook (CPython's audit events: `open` with a write mode, `os.mkdir`,
`os.rename`, `os.remove`, `os.rmdir`, `shutil.rmtree`) keeps every path under WATCHED_DIR this
process touched; at exit they go to `AUDIT_DIR/rank-<RANK>.json`, with the process id. The pid is
also written to `AUDIT_DIR/pid-<RANK>` at start, so a test can kill one rank. Files written by
native code (safetensors) raise no event; the Python-side writes around them (metrics, manifest,
the staging dir) do, so a rank that wrote the release would show.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

WRITE_EVENTS = ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree")


def main() -> int:
    audit_dir, watched = Path(sys.argv[1]), str(Path(sys.argv[2]).resolve())
    argv = sys.argv[sys.argv.index("--") + 1 :]
    rank = os.environ.get("RANK", "0")
    touched: list[str] = []

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode = args[0], args[1]
            if (
                not isinstance(path, str | os.PathLike)
                or not mode
                or set("wax+") & set(mode) == set()
            ):
                return
        elif event not in WRITE_EVENTS:
            return
        path = (
            os.path.abspath(os.fsdecode(args[0]))
            if isinstance(args[0], str | bytes | os.PathLike)
            else ""
        )
        if path.startswith(watched):
            touched.append(f"{event} {path}")

    def dump() -> None:
        (audit_dir / f"rank-{rank}.json").write_text(
            json.dumps({"pid": os.getpid(), "touched": touched})
        )

    audit_dir.mkdir(parents=True, exist_ok=True)
    (audit_dir / f"pid-{rank}").write_text(str(os.getpid()))
    atexit.register(dump)
    sys.addaudithook(hook)
    from pushgen.cli.main import main as pushgen_main

    return pushgen_main(argv)


if __name__ == "__main__":
    sys.exit(main())
