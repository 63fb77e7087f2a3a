"""The local serving stack: generator, ranker and pushgen transformer as three KServe ModelServers.

Each runs in its own process (`python -m serving.<model>`), bound to 127.0.0.1 with gRPC off; the
stack waits until every model reports ready and stops them all on exit. Server output goes to
`<log_dir>/servers/<name>.log`, the serving log to `<log_dir>/`.

    with LocalStack("runs/demo/models", feature_repo="runs/demo/feature_repo") as stack:
        print(push_for_video(stack.url, "v00042"))
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pushgen.core.errors import PushgenError
from serving.storage import StorageConfig, resolve_model_location


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now on `host`."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class StackPorts:
    """REST ports; 0 picks a free one."""

    transformer: int = 0
    generator: int = 0
    ranker: int = 0


@dataclass
class StackConfig:
    """How the local stack starts its servers."""

    host: str = "127.0.0.1"  # all three bind here
    ports: StackPorts = field(default_factory=StackPorts)
    log_dir: Path = Path("runs/serving")  # serving log + server output
    model_root: Path | None = (
        None  # local model paths must resolve inside this (None: the models dir)
    )
    cache_dir: Path = Path("runs/model-cache")  # s3:// models are downloaded here
    startup_timeout_s: float = 300.0  # model loading on CPU can take a minute or two
    degrade_without_ranker: bool = (
        False  # transformer serves the first guarded candidate if ranker is down
    )
    ranker_batching: bool = True  # dynamic batching of concurrent ranker requests
    max_new_tokens: int = 24  # generator length budget
    dtype: str = "auto"  # both models: bf16 where the hardware has bf16 units (pushgen.core.models.resolve_dtype)
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the servers
    explore_epsilon: float | None = None  # transformer's exploration share; None: its default
    log_ship_to: str | None = None  # artifact store URI the closed serving-log windows go to


@dataclass
class _Server:
    name: str
    model: str
    port: int
    args: list[str]
    proc: subprocess.Popen | None = None
    log_path: Path | None = None


class LocalStack:
    """Start generator, ranker and transformer as subprocesses; a context manager."""

    def __init__(
        self,
        models: str | os.PathLike,
        feature_repo: str | os.PathLike | None = None,
        ports: StackPorts | None = None,
        log_dir: str | os.PathLike | None = None,
        config: StackConfig | None = None,
    ):
        self.config = config or StackConfig()
        if ports is not None:
            self.config.ports = ports
        if log_dir is not None:
            self.config.log_dir = Path(log_dir)
        self.models = str(models)
        self.feature_repo = Path(feature_repo) if feature_repo else None
        self.servers: list[_Server] = []
        self.generator_args: list[str] = []  # set by start(): the transformer's generator flags

    # --- URLs ---
    def _url(self, port: int) -> str:
        return f"http://{self.config.host}:{port}"

    @property
    def url(self) -> str:
        """Base URL of the pushgen transformer (the user-facing endpoint)."""
        return self._url(self._server("pushgen").port)

    @property
    def generator_url(self) -> str:
        return self._url(self._server("generator").port)

    @property
    def ranker_url(self) -> str:
        return self._url(self._server("ranker").port)

    def _server(self, name: str) -> _Server:
        for s in self.servers:
            if s.name == name:
                return s
        raise PushgenError(f"the stack has no server {name!r}; start it first")

    # --- life cycle ---
    def _plan(self) -> None:
        cfg = self.config
        is_local = not self.models.startswith("s3://")
        root = cfg.model_root or (Path(self.models).resolve() if is_local else Path.cwd())
        storage = StorageConfig(root=root, cache_dir=cfg.cache_dir)
        # a local --models is the user's path (relative to the working directory), not a path
        # under the model root (which is what a relative path means to resolve_model_location)
        models = str(Path(self.models).resolve()) if is_local else self.models
        local = resolve_model_location(models, storage)  # downloads s3:// once for both
        for sub in ("generator", "ranker"):
            if not (local / sub).is_dir():
                raise PushgenError(
                    f"{self.models} has no {sub}/ directory (expected generator/ and ranker/)"
                )
        ports = {
            n: getattr(cfg.ports, n) or free_port(cfg.host)
            for n in ("transformer", "generator", "ranker")
        }
        common = ["--host", cfg.host, "--model-root", str(local), "--dtype", cfg.dtype]
        gen = _Server(
            "generator",
            "generator",
            ports["generator"],
            [
                "--model-dir",
                str(local / "generator"),
                "--port",
                str(ports["generator"]),
                "--max-new-tokens",
                str(cfg.max_new_tokens),
                "--cache-dir",
                str(cfg.cache_dir.resolve()),
                *common,
            ],
        )
        rank_args = ["--model-dir", str(local / "ranker"), "--port", str(ports["ranker"]), *common]
        if not cfg.ranker_batching:
            rank_args.append("--no-batching")
        rank = _Server("ranker", "ranker", ports["ranker"], rank_args)
        self.generator_args = [  # what a transformer needs to build this generator's prompts
            "--generator-dir",
            str(local / "generator"),
            "--model-root",
            str(local),
            "--max-new-tokens",
            str(cfg.max_new_tokens),
        ]
        trans_args = [
            "--port",
            str(ports["transformer"]),
            "--host",
            cfg.host,
            "--generator-url",
            self._url(gen.port),
            *self.generator_args,
            "--ranker-url",
            self._url(rank.port),
            "--log-dir",
            str(cfg.log_dir.resolve()),
        ]
        if self.feature_repo is not None:
            trans_args += ["--feature-repo", str(self.feature_repo.resolve())]
        if cfg.degrade_without_ranker:
            trans_args.append("--degrade-without-ranker")
        if cfg.explore_epsilon is not None:
            trans_args += ["--explore-epsilon", str(cfg.explore_epsilon)]
        if cfg.log_ship_to:
            trans_args += ["--log-ship-to", cfg.log_ship_to]
        self.servers = [
            gen,
            rank,
            _Server("pushgen", "transformer", ports["transformer"], trans_args),
        ]

    def start(self) -> LocalStack:
        """Start every server and wait until all are ready (or raise with the failing log's tail)."""
        self._plan()
        out_dir = self.config.log_dir / "servers"
        out_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.config.env}
        for s in self.servers:
            s.log_path = out_dir / f"{s.name}.log"
            with s.log_path.open("wb") as fh:
                s.proc = subprocess.Popen(
                    [sys.executable, "-m", f"serving.{s.model}", *s.args],
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=Path(__file__).resolve().parent.parent,
                )
        try:
            for s in self.servers:
                self.wait_ready(s.name)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, name: str, timeout_s: float | None = None) -> None:
        """Poll the v2 model-ready endpoint of server `name` until it answers 200."""
        s = self._server(name)
        deadline = time.monotonic() + (timeout_s or self.config.startup_timeout_s)
        url = f"{self._url(s.port)}/v2/models/{s.name}/ready"
        while time.monotonic() < deadline:
            if s.proc is not None and s.proc.poll() is not None:
                raise PushgenError(
                    f"the {s.name} server exited with code {s.proc.returncode}:\n{self._tail(s)}"
                )
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise PushgenError(
            f"the {s.name} server was not ready within the timeout:\n{self._tail(s)}"
        )

    @staticmethod
    def _tail(s: _Server, lines: int = 15) -> str:
        if s.log_path is None or not s.log_path.exists():
            return ""
        return "\n".join(s.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop_server(self, name: str, timeout_s: float = 10.0) -> None:
        """Stop one server: SIGTERM (uvicorn drains), then SIGKILL after `timeout_s`."""
        s = self._server(name)
        if s.proc is None or s.proc.poll() is not None:
            return
        s.proc.send_signal(signal.SIGTERM)
        try:
            s.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait()

    def stop(self) -> None:
        """Stop every server (transformer first, so no request lands on a dying predictor)."""
        for s in reversed(self.servers):
            self.stop_server(s.name)

    def pids(self) -> dict[str, int]:
        """Process id of each running server (the benchmark reads their memory)."""
        return {s.name: s.proc.pid for s in self.servers if s.proc is not None}

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def push_for_video(
    base_url: str, video_id: str, model: str = "pushgen", timeout_s: float = 120.0, **fields: Any
) -> dict[str, Any]:
    """Ask a running pushgen transformer for a push, as a user would; raises with the server's message."""
    url = f"{base_url.rstrip('/')}/v1/models/{model}:predict"
    try:
        key = os.environ.get("PUSHGEN_API_KEY")  # see serving/README.md, Auth
        resp = httpx.post(
            url,
            json={"instances": [{"video_id": video_id, **fields}]},
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {key}"} if key else None,
        )
    except httpx.HTTPError as exc:
        raise PushgenError(f"cannot reach the pushgen server at {base_url}: {exc!r}") from None
    if resp.status_code != 200:
        try:
            message = resp.json().get("error", resp.text)
        except ValueError:
            message = resp.text
        raise PushgenError(f"the server answered {resp.status_code}: {message}")
    return resp.json()["predictions"][0]
