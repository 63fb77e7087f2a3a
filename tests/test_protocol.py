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


def test_one_batch_for_many_sets_gives_each_sets_win_matrix(tiny_encoder_dir, tmp_path):
    """`win_matrices` (what the server calls) scores several sets in one batch and gives what
    `win_matrix` gives for each alone, the caption folded in as `text [SEP] caption`."""
    import shutil

    import numpy as np

    from pushgen.ranker.inputs import RankerSettings, caption_segment
    from pushgen.ranker.select import PairwiseRanker

    model_dir = tmp_path / "ranker"
    shutil.copytree(tiny_encoder_dir, model_dir)
    RankerSettings(max_length=32, use_caption=True).save(model_dir)
    ranker = PairwiseRanker.from_pretrained(model_dir, device="cpu")
    sets = [(["a cat naps", "dogs run", "why do cats nap?"], "a video of cats"), (["x", "y"], None)]
    wins = ranker.win_matrices(sets)
    raws = ranker.win_matrices(sets, raw=True)
    for (texts, caption), win, raw in zip(sets, wins, raws, strict=True):
        np.testing.assert_allclose(win, ranker.win_matrix(texts, caption), atol=1e-6)
        np.testing.assert_allclose(raw, ranker.raw_win_matrix(texts, caption), atol=1e-6)
        np.testing.assert_allclose(win + win.T, 1.0, atol=1e-12)
    a, b = ranker.pair_inputs(["p", "q"], "cap")
    sep = ranker.tokenizer.sep_token
    assert a == ["p", "q"] and b == [f"q {sep} cap", f"p {sep} cap"] == [
        caption_segment("q", "cap", sep),
        caption_segment("p", "cap", sep),
    ]
    assert ranker.win_matrices([]) == []
