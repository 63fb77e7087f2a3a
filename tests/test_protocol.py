"""What serving relies on in kserve without a public API for it, pinned so an upgrade fails loudly."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]

# a one-model server on (host, port): the smallest use of LocalModelServer
SERVE = textwrap.dedent(
    """
    import sys
    from kserve import Model
    from serving.server import LocalModelServer, ServerConfig

    class Echo(Model):
        def load(self):
            self.ready = True
            return True

        async def predict(self, payload, headers=None):
            return {"predictions": [payload]}

    model = Echo("echo")
    model.load()
    LocalModelServer(ServerConfig(host=sys.argv[1], http_port=int(sys.argv[2]))).start([model])
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(host: str, port: int) -> bool:
    try:
        return httpx.get(f"http://{host}:{port}/v2/health/live", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_local_model_server_binds_only_the_host_it_is_given():
    """kserve's RESTServer hard-codes host 0.0.0.0; LocalModelServer sets it on the server's
    uvicorn config before serving. If kserve stops reading that config at serve time, the server
    listens on every interface again, and this fails."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, "127.0.0.2", str(port)],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not _answers("127.0.0.2", port):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the server did not come up on 127.0.0.2"
            time.sleep(0.2)
        assert not _answers("127.0.0.1", port), "LocalModelServer listens beyond its host"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
