"""For tests that start a server process: the transformer's command line, and waiting until a
URL answers 200 (the process's log in the failure message)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx


def transformer_cmd(
    port: int, generator_url: str, ranker_url: str, log_dir: Path | str, *extra: str
) -> list[str]:
    """`python -m serving.transformer` on 127.0.0.1:`port` with its two upstreams."""
    return [
        sys.executable,
        "-m",
        "serving.transformer",
        "--port",
        str(port),
        "--generator-url",
        generator_url,
        "--ranker-url",
        ranker_url,
        "--log-dir",
        str(log_dir),
        *extra,
    ]


def wait_until_ok(
    url: str, log: Path, timeout_s: float = 120.0, proc: subprocess.Popen | None = None
) -> None:
    """Poll `url` until it answers 200; fail with the log's tail if `proc` exits or time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        alive = proc is None or proc.poll() is None
        assert alive and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.3)
