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


def redis_available() -> str | None:
    """None when a Redis server can be started here, else why not."""
    import shutil

    return None if shutil.which("redis-server") else "redis-server not installed (apt redis-server)"


def start_redis(port: int, log: Path) -> subprocess.Popen:
    """A real Redis server (Debian's redis-server) on 127.0.0.1:`port`, no persistence; returns
    once it answers PING."""
    import socket

    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ],  # fmt: skip
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("redis-server did not answer PING in 30 s")
