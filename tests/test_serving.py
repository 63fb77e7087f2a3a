"""Real KServe ModelServers on 127.0.0.1 (tiny models), driven over HTTP with both protocols.

One LocalStack (generator, ranker, transformer as subprocesses) serves the whole module; the fault
tests start extra transformers pointing at a ranker that is not there.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from pushgen.cli.main import main
from serving.serving_log import read_serving_log
from serving.stack import LocalStack, StackConfig, free_port, push_for_video
from serving.tiny import TINY_GUARD_FAILS, TINY_PUSHES
from tests.servers import transformer_cmd, wait_until_ok

REPO = Path(__file__).resolve().parents[1]
JSON = {"Content-Type": "application/json"}
CAPTION = "A chef in Rome folds 5 kinds of dumplings for her grandmother"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    from serving.tiny import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("served_models"))


@pytest.fixture(scope="module")
def feature_repo(sim, tmp_path_factory) -> Path:
    """A real Feast repo (SQLite online store) materialised with the simulated videos' captions."""
    from pushgen.data.caption import TextCaptioner
    from pushgen.features.feast_store import build_feature_store

    videos = sim.videos
    captions = TextCaptioner().caption_videos(videos)
    return build_feature_store(videos, captions, tmp_path_factory.mktemp("features"))


@pytest.fixture(scope="module")
def stack(models_dir, feature_repo, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("serving_log")
    # no exploration: these tests check that the top-scored guarded candidate is served
    config = StackConfig(
        log_dir=log_dir, env={"OMP_NUM_THREADS": "1"}, max_new_tokens=12, explore_epsilon=0.0
    )
    with LocalStack(models_dir, feature_repo, config=config) as s:
        yield s


def _post(url: str, body=None, **kw) -> httpx.Response:
    return (
        httpx.post(url, json=body, timeout=60, **kw)
        if body is not None
        else httpx.post(url, timeout=60, **kw)
    )


def _v1(base: str, name: str) -> str:
    return f"{base}/v1/models/{name}:predict"


def _v2(base: str, name: str) -> str:
    return f"{base}/v2/models/{name}/infer"


# --- health, metadata, both protocols ----------------------------------------------------


def test_health_and_metadata(stack):
    for base, name in [
        (stack.generator_url, "generator"),
        (stack.ranker_url, "ranker"),
        (stack.url, "pushgen"),
    ]:
        assert httpx.get(f"{base}/v2/health/live").json() == {"live": True}
        assert httpx.get(f"{base}/v2/health/ready").json() == {"ready": True}
        assert httpx.get(f"{base}/v1/models/{name}").json() == {"name": name, "ready": True}
        meta = httpx.get(f"{base}/v2/models/{name}").json()
        assert meta["name"] == name and meta["inputs"] and meta["outputs"]
    # bound to loopback only
    pid = stack.pids()["ranker"]
    addrs = {c.laddr.ip for c in psutil.Process(pid).connections("tcp") if c.status == "LISTEN"}
    assert addrs == {"127.0.0.1"}


def test_ranker_v1_and_v2(stack):
    texts = ["You won't believe this", "3 tips for dumplings", "Why do chefs fold?", "Watch now"]
    v1 = _post(
        _v1(stack.ranker_url, "ranker"), {"instances": [{"texts": texts, "caption": CAPTION}]}
    )
    assert v1.status_code == 200, v1.text
    pred = v1.json()["predictions"][0]
    win = np.array(pred["win_matrix"])
    assert win.shape == (4, 4) and np.allclose(win + win.T, 1.0)
    assert pred["chosen"] == int(np.argmax(pred["scores"]))
    v2 = _post(
        _v2(stack.ranker_url, "ranker"),
        {
            "inputs": [
                {"name": "texts", "datatype": "BYTES", "shape": [4], "data": texts},
                {"name": "caption", "datatype": "BYTES", "shape": [1], "data": [CAPTION]},
            ]
        },
    )
    assert v2.status_code == 200, v2.text
    outs = {o["name"]: o for o in v2.json()["outputs"]}
    assert outs["win_matrix"]["shape"] == [4, 4] and outs["chosen"]["data"] == [pred["chosen"]]
    assert np.allclose(outs["scores"]["data"], pred["scores"], atol=1e-5)


def test_several_candidates_per_category_are_sampled_not_copies(stack):
    # one per category is decoded greedily; asking for more must not return greedy copies
    body = {"caption": CAPTION, "categories": ["Humor"], "n_per_category": 4, "max_new_tokens": 16}
    resp = _post(_v1(stack.generator_url, "generator"), body)
    assert resp.status_code == 200, resp.text
    texts = [c["text"] for c in resp.json()["predictions"][0]["candidates"]]
    assert len(texts) == 4 and len(set(texts)) > 1


def test_generator_v1_and_v2(stack):
    v1 = _post(
        _v1(stack.generator_url, "generator"),
        {
            "instances": [
                {"caption": CAPTION, "categories": ["Humor", "Practical"], "n_per_category": 2}
            ]
        },
    )
    assert v1.status_code == 200, v1.text
    cands = v1.json()["predictions"][0]["candidates"]
    assert [c["category"] for c in cands] == ["Humor", "Humor", "Practical", "Practical"]
    v2 = _post(
        _v2(stack.generator_url, "generator"),
        {"inputs": [{"name": "caption", "datatype": "BYTES", "shape": [1], "data": [CAPTION]}]},
    )
    assert v2.status_code == 200, v2.text
    outs = {o["name"]: o for o in v2.json()["outputs"]}
    assert outs["category"]["shape"] == [8] and outs["guard_ok"]["datatype"] == "BOOL"


def test_push_by_caption_v1_v2_and_serving_log(stack):
    resp = _post(
        _v1(stack.url, "pushgen"), {"caption": CAPTION}, headers={"x-request-id": "req-log-1"}
    )
    assert resp.status_code == 200, resp.text
    push = resp.json()["predictions"][0]
    assert push["request_id"] == "req-log-1" and len(push["alternatives"]) == 8
    assert set(push["timings_ms"]) == {"feast", "generate", "rank", "total"}
    assert 0 < push["win_prob"] < 1  # mean P(the push beats each other guarded candidate)
    # the tiny generator writes TINY_PUSHES: two fail the guard, six pass, all differ
    alts = {a["category"]: a for a in push["alternatives"]}
    assert {c: a["text"] for c, a in alts.items()} == TINY_PUSHES
    assert {c for c, a in alts.items() if not a["guard_ok"]} == set(TINY_GUARD_FAILS)
    assert all(alts[c]["score"] is None and alts[c]["guard_reasons"] for c in TINY_GUARD_FAILS)
    guarded = [a for a in push["alternatives"] if a["guard_ok"]]
    scores = [a["score"] for a in guarded]
    assert len(set(scores)) > 1, scores  # the candidates do not all tie: selection is tested
    assert push["score"] == max(scores) and push["text"] in {a["text"] for a in guarded}
    ranked = _post(
        _v1(stack.ranker_url, "ranker"), {"texts": [a["text"] for a in guarded], "caption": CAPTION}
    ).json()["predictions"][0]
    assert push["text"] == guarded[ranked["chosen"]]["text"]  # the ranker's own choice
    v2 = _post(
        _v2(stack.url, "pushgen"),
        {"inputs": [{"name": "caption", "datatype": "BYTES", "shape": [1], "data": [CAPTION]}]},
    )
    assert v2.status_code == 200, v2.text
    assert {o["name"] for o in v2.json()["outputs"]} >= {
        "text",
        "category",
        "score",
        "alternative_texts",
    }
    valid, rejected = read_serving_log(stack.config.log_dir)
    mine = valid[valid.request_id == "req-log-1"]
    assert len(mine) == 8 and mine.selected.sum() == 1  # guard rejections are logged too
    assert set(mine[~mine.guard_ok.astype(bool)].category) == set(TINY_GUARD_FAILS)
    assert mine[mine.selected.astype(bool)].text.tolist() == [push["text"]]
    # what the monitor's checks read (docs/design.md, serving_log): the detected style per
    # candidate, latency per stage, epsilon and both model versions per request
    assert mine["style"].notna().all() and mine["epsilon"].notna().all()
    for col in ("latency_feast_ms", "latency_generate_ms", "latency_rank_ms", "latency_total_ms"):
        assert (mine[col] >= 0).all() and mine[col].nunique() == 1, col
    assert mine["generator_version"].notna().all() and mine["ranker_version"].notna().all()
    assert rejected.empty


def test_push_by_video_id_reads_the_caption_from_feast(stack, sim):
    video_id = str(sim.videos.video_id.iloc[3])
    push = push_for_video(stack.url, video_id)
    assert push["video_id"] == video_id and push["timings_ms"]["feast"] > 0
    assert sim.videos.title.iloc[3].split()[0] in push["caption"]
    v2 = _post(
        _v2(stack.url, "pushgen"),
        {"inputs": [{"name": "video_id", "datatype": "BYTES", "shape": [1], "data": [video_id]}]},
    )
    assert v2.status_code == 200, v2.text
    missing = _post(_v1(stack.url, "pushgen"), {"video_id": "no-such-video"})
    assert missing.status_code == 404 and "no-such-video" in missing.json()["error"]


def test_ranker_accepts_generator_output_like_the_inference_graph(stack):
    gen = _post(
        _v1(stack.generator_url, "generator"),
        {"caption": CAPTION, "categories": ["Humor", "Curiosity"]},
    )
    # the graph's mapPredictionsToInstances turns predictions into instances
    ranked = _post(_v1(stack.ranker_url, "ranker"), {"instances": gen.json()["predictions"]})
    n_ok = sum(c["guard_ok"] for c in gen.json()["predictions"][0]["candidates"])
    assert n_ok == 1  # Curiosity passes the guard, Humor does not
    assert ranked.status_code == 200 and len(ranked.json()["predictions"][0]["scores"]) == n_ok


def test_health_is_not_stalled_by_a_slow_generate(stack):
    # 8 instances x 16 candidates x 64 tokens: the slowest legal request (8 generate calls; the
    # tiny generator stops early at its end token, so one instance alone is over too soon)
    body = {"instances": [{"caption": CAPTION, "n_per_category": 2, "max_new_tokens": 64}] * 8}
    done = threading.Event()
    gen_time: list[float] = []

    def generate():
        t0 = time.perf_counter()
        _post(_v1(stack.generator_url, "generator"), body)
        gen_time.append(time.perf_counter() - t0)
        done.set()

    thread = threading.Thread(target=generate)
    thread.start()
    time.sleep(0.05)
    during = []
    while not done.is_set():
        t0 = time.perf_counter()
        assert httpx.get(f"{stack.generator_url}/v2/health/ready", timeout=5).status_code == 200
        during.append((time.perf_counter() - t0, done.is_set()))
        time.sleep(0.02)
    thread.join()
    in_flight = [lat for lat, finished in during if not finished]
    # were generate blocking the event loop, a health check would wait for the rest of it
    assert len(in_flight) >= 3, (
        f"only {len(in_flight)} health checks during a {gen_time[0]:.2f}s generate"
    )
    assert max(in_flight) < 0.5 * gen_time[0], (in_flight, gen_time)


def test_overloaded_generator_says_so_with_a_503(stack):
    body = {"caption": CAPTION, "n_per_category": 2, "max_new_tokens": 32}
    with ThreadPoolExecutor(10) as pool:
        answers = list(
            pool.map(lambda _: _post(_v1(stack.generator_url, "generator"), body), range(10))
        )
    codes = sorted(r.status_code for r in answers)
    assert set(codes) == {200, 503} and codes.count(200) >= 4, (
        codes
    )  # 4 may queue, the rest are refused
    busy = next(r for r in answers if r.status_code == 503)
    assert "busy" in busy.json()["error"]


# --- bad input: every one a 4xx with a message, never a 5xx; the servers keep serving --------

LONG = "x" * 5000
BAD_REQUESTS = [
    # (server, protocol, body or raw bytes, content type, words the message must contain)
    ("ranker", "v1", b"{not json", "application/json", "Unrecognized request format"),
    ("ranker", "v1", b'{"texts": ["a"]}', "text/plain", "Content-Type"),
    ("ranker", "v1", {"instances": [{}]}, None, "missing field 'texts'"),
    ("ranker", "v1", {"instances": [{"texts": "a b"}]}, None, "must be a list"),
    ("ranker", "v1", {"instances": [{"texts": []}]}, None, "K=0"),
    ("ranker", "v1", {"instances": [{"texts": ["a"] * 17}]}, None, "K=17"),
    ("ranker", "v1", {"instances": [{"texts": ["a", 5]}]}, None, "texts[1]"),
    ("ranker", "v1", {"instances": [{"texts": ["a", "  "]}]}, None, "is empty"),
    ("ranker", "v1", {"instances": [{"texts": ["a", LONG]}]}, None, "limit is 500"),
    ("ranker", "v1", {"instances": "texts"}, None, "'instances' must be a list"),
    ("ranker", "v1", [1, 2], None, "JSON object"),
    ("ranker", "v1", {"instances": [{"texts": ["a"], "colour": "red"}]}, None, "unknown field"),
    (
        "ranker",
        "v2",
        {"inputs": [{"name": "texts", "datatype": "BYTES", "shape": [3], "data": ["a", "b"]}]},
        None,
        "shape",
    ),
    (
        "ranker",
        "v2",
        {"inputs": [{"name": "texts", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}]},
        None,
        "datatype BYTES",
    ),
    (
        "ranker",
        "v2",
        {"inputs": [{"name": "texts", "datatype": "BYTES", "shape": [1, 2], "data": ["a", "b"]}]},
        None,
        "must have shape",
    ),
    (
        "ranker",
        "v2",
        {"inputs": [{"name": "words", "datatype": "BYTES", "shape": [1], "data": ["a"]}]},
        None,
        "unknown input",
    ),
    (
        "ranker",
        "v2",
        {"inputs": [{"name": "texts", "datatype": "BYTES", "data": ["a"]}]},
        None,
        "shape",
    ),
    ("generator", "v1", {"instances": [{}]}, None, "missing field 'caption'"),
    ("generator", "v1", {"caption": ""}, None, "'caption' is empty"),
    ("generator", "v1", {"caption": LONG}, None, "limit is 2000"),
    ("generator", "v1", {"caption": 42}, None, "must be a string"),
    ("generator", "v1", {"caption": "a", "categories": ["Sarcasm"]}, None, "unknown category"),
    ("generator", "v1", {"caption": "a", "categories": []}, None, "'categories' is empty"),
    ("generator", "v1", {"caption": "a", "n_per_category": 0}, None, "between 1 and 4"),
    ("generator", "v1", {"caption": "a", "n_per_category": "2"}, None, "must be an integer"),
    ("generator", "v1", {"caption": "a", "n_per_category": 3}, None, "limit is 16"),
    ("generator", "v1", {"caption": "a", "max_new_tokens": 10_000}, None, "between 1 and 64"),
    (
        "generator",
        "v2",
        {"inputs": [{"name": "caption", "datatype": "INT32", "shape": [1], "data": [1]}]},
        None,
        "datatype BYTES",
    ),
    ("pushgen", "v1", {"instances": [{}]}, None, "'video_id'"),
    ("pushgen", "v1", {"video_id": ["v1"]}, None, "must be a string"),
    ("pushgen", "v1", {"video_id": "v" * 500}, None, "limit is 128"),
    ("pushgen", "v1", {"video_id": "no-such-video"}, None, "not in the feature store"),  # 404
    (
        "pushgen",
        "v2",
        {"inputs": [{"name": "video_id", "datatype": "BYTES", "shape": [1], "data": ["nope"]}]},
        None,
        "not in the feature store",
    ),
    ("pushgen", "v1", {"caption": "a", "categories": ["Nope"]}, None, "unknown category"),
    ("pushgen", "v2", {"inputs": []}, None, "'video_id'"),
]


def _url_for(stack, server: str, protocol: str) -> str:
    base = {"ranker": stack.ranker_url, "generator": stack.generator_url, "pushgen": stack.url}[
        server
    ]
    return _v1(base, server) if protocol == "v1" else _v2(base, server)


@pytest.mark.parametrize("server,protocol,body,ctype,words", BAD_REQUESTS)
def test_bad_input_gets_a_4xx_naming_the_problem(stack, server, protocol, body, ctype, words):
    url = _url_for(stack, server, protocol)
    if isinstance(body, bytes):
        resp = httpx.post(url, content=body, headers={"Content-Type": ctype}, timeout=30)
    else:
        resp = httpx.post(url, json=body, timeout=30)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    assert words in resp.text, resp.text
    ok = _post(_v1(stack.ranker_url, "ranker"), {"texts": ["still", "serving"]})
    assert ok.status_code == 200


def test_oversized_body_is_a_413(stack):
    body = {"texts": ["x" * 400] * 3000}  # ~1.2 MB
    resp = _post(_v1(stack.ranker_url, "ranker"), body)
    assert resp.status_code == 413 and "limit" in resp.json()["error"]


def test_unknown_model_and_missing_routes_are_4xx(stack):
    missing = _post(_v1(stack.ranker_url, "nope"), {"texts": ["a"]})
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    for url in (_v1(stack.ranker_url, "ranker"), _v2(stack.ranker_url, "ranker")):
        resp = httpx.get(url)  # GET on a POST route
        assert resp.status_code == 405 and resp.headers["allow"] == "POST", resp.text
        assert "use POST" in resp.json()["error"]
    resp = httpx.get(f"{stack.ranker_url}/no/such/route")
    assert resp.status_code == 404 and set(resp.json()) == {"error"}


# --- load: a short soak against the ranker -------------------------------------------------


def _soak(stack, seconds: float, clients: int = 4) -> tuple[int, list[str], float, float]:
    proc = psutil.Process(stack.pids()["ranker"])
    texts = [f"candidate push number {i} about dumplings" for i in range(8)]
    url = _v1(stack.ranker_url, "ranker")

    def client(_: int) -> tuple[int, list[str]]:
        n, errors = 0, []
        with httpx.Client(timeout=30) as c:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                r = c.post(url, json={"texts": texts, "caption": CAPTION})
                n += 1
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:100]}")
        return n, errors

    for _ in range(20):  # warm-up: the first requests allocate torch's and the allocator's caches
        httpx.post(url, json={"texts": texts}, timeout=30)
    rss0 = proc.memory_info().rss
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    rss1 = proc.memory_info().rss
    total = sum(n for n, _ in results)
    errors = [e for _, errs in results for e in errs]
    return total, errors, rss0, rss1


@pytest.mark.slow  # the 60 s soak is slow too; the fast tier keeps the overload and hang tests
def test_soak_short(stack):
    total, errors, rss0, rss1 = _soak(stack, seconds=8)
    assert errors == [] and total > 20
    assert rss1 < 1.10 * rss0, f"ranker RSS grew {rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MiB"


@pytest.mark.slow
def test_soak_60s(stack):
    total, errors, rss0, rss1 = _soak(stack, seconds=60)
    assert errors == [] and total > 200
    assert rss1 < 1.10 * rss0, f"ranker RSS grew {rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MiB"


# --- faults --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def no_ranker_transformers(stack, tmp_path_factory):
    """Two transformers whose ranker URL has nothing behind it: strict and degrading."""
    dead = f"http://127.0.0.1:{free_port()}"
    procs, urls = [], {}
    log_dir = tmp_path_factory.mktemp("fault_log")
    for mode in ("strict", "degrade"):
        port = free_port()
        args = transformer_cmd(
            port, stack.generator_url, dead, log_dir / mode, *stack.generator_args
        )
        if mode == "degrade":
            args.append("--degrade-without-ranker")
        out = (log_dir / f"{mode}.out").open("wb")
        procs.append(subprocess.Popen(args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT))
        urls[mode] = f"http://127.0.0.1:{port}"
    try:
        for mode, url in urls.items():
            # live, not model-ready: the strict one is unready while its ranker is down
            wait_until_ok(f"{url}/v2/health/live", log_dir / f"{mode}.out")
        yield {**urls, "log_dir": log_dir}
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def test_ranker_down_is_a_503_with_a_clear_message(no_ranker_transformers):
    resp = _post(
        _v1(no_ranker_transformers["strict"], "pushgen"), {"caption": "a cat sleeps on a sofa"}
    )
    assert resp.status_code == 503 and "ranker" in resp.json()["error"]
    assert "unavailable" in resp.json()["error"]
    assert "127.0.0.1" not in resp.text and "http" not in resp.text  # no internal URL leaks
    ready = httpx.get(f"{no_ranker_transformers['strict']}/v2/models/pushgen/ready", timeout=10)
    assert ready.status_code == 503  # readiness reports the dead upstream


def test_ranker_down_degrades_when_configured(no_ranker_transformers):
    resp = _post(
        _v1(no_ranker_transformers["degrade"], "pushgen"), {"caption": "a cat sleeps on a sofa"}
    )
    assert resp.status_code == 200, resp.text
    push = resp.json()["predictions"][0]
    # the first category's candidate fails the guard: degraded mode serves the first *guarded*
    assert push["degraded"] is True and push["score"] is None
    assert push["text"] == TINY_PUSHES["Emotion"] != push["alternatives"][0]["text"]
    assert "ranker" in push["reason"] and "127.0.0.1" not in push["reason"]
    valid, _ = read_serving_log(no_ranker_transformers["log_dir"] / "degrade")
    mine = valid[valid.request_id == push["request_id"]]
    assert len(mine) == 8 and mine.degraded.astype(bool).all()
    assert set(mine[~mine.guard_ok.astype(bool)].category) == set(TINY_GUARD_FAILS)
    assert mine[mine.selected.astype(bool)].text.tolist() == [push["text"]]
    ready = httpx.get(f"{no_ranker_transformers['degrade']}/v2/models/pushgen/ready", timeout=10)
    assert ready.status_code == 200  # degrading, it can serve without the ranker


# --- the CLI, as a user calls it -----------------------------------------------------------


def test_cli_push_against_the_stack(stack, capsys):
    assert (
        main(
            ["push", "--caption", CAPTION, "--url", stack.url, "--categories", "Humor", "Curiosity"]
        )
        == 0
    )
    # Humor's candidate fails the guard, so the push is Curiosity's, with the ranker's score
    out = capsys.readouterr().out
    push = re.escape(f"[Curiosity] {TINY_PUSHES['Curiosity']}  score=") + r"-?\d+\.\d{3}\n"
    assert re.fullmatch(push, out), out
    assert main(["push", "--video-id", "no-such-video", "--url", stack.url]) == 2
    assert "404" in capsys.readouterr().err


def test_push_for_video_reports_server_errors(stack):
    from pushgen.core.errors import PushgenError

    with pytest.raises(PushgenError, match="400"):
        push_for_video(stack.url, "v" * 200)


# --- abuse and faults (issue #13): bounded cost, bounded queues, fast failure ---------------

KEY = "test-key-1234"


def _send_head(base: str, head: str, key: str | None = None) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    auth = f"x-api-key: {key}\r\n" if key else ""
    s.sendall(
        f"POST /v1/models/ranker:predict HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\n{auth}{head}\r\n".encode()
    )
    return s


def test_chunked_upload_is_refused_at_the_limit_without_reading_it(stack):
    # F1: the limit counts streamed bytes, so a chunked upload cannot slip past it
    proc = psutil.Process(stack.pids()["ranker"])
    rss0 = proc.memory_info().rss
    s = _send_head(stack.ranker_url, "Transfer-Encoding: chunked\r\n")
    chunk = b"[" * (1 << 20)
    sent, t0 = 0, time.perf_counter()
    while sent < 64 and not select.select([s], [], [], 0)[0]:
        try:
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            break
        sent += 1
    s.settimeout(5)
    answer = b""
    while b"}" not in answer:  # headers and body may come in separate segments
        try:
            part = s.recv(4096)
        except OSError:
            break
        if not part:
            break
        answer += part
    s.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"1048576-byte limit" in answer
    assert sent < 16 and time.perf_counter() - t0 < 5, sent
    assert proc.memory_info().rss - rss0 < 50 * 2**20


def test_chunked_body_under_the_limit_is_served(stack):
    body = b'{"texts": ["a chunked", "upload"], "caption": "%s"}' % CAPTION.encode()
    chunks = iter([body[:7], body[7:20], body[20:]])  # an iterator: httpx sends it chunked
    resp = httpx.post(_v1(stack.ranker_url, "ranker"), content=chunks, headers=JSON, timeout=30)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["predictions"][0]["scores"]) == 2


def _concurrent(url: str, body: dict, n: int) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(limits=limits, timeout=120) as client:
            return await asyncio.gather(*(client.post(url, json=body) for _ in range(n)))

    return asyncio.run(run())


def test_batching_ranker_answers_503_busy_past_its_bound(stack):
    # F2: with batching on (the default) the queue is bounded too: 64 wait, the rest are refused
    texts = [f"candidate push number {i} about dumplings" for i in range(8)]
    answers = _concurrent(_v1(stack.ranker_url, "ranker"), {"texts": texts}, 150)
    codes = Counter(r.status_code for r in answers)
    assert set(codes) == {200, 503} and codes[200] >= 64, codes
    busy = next(r for r in answers if r.status_code == 503)
    assert "busy" in busy.json()["error"] and busy.headers["retry-after"] == "1"


def test_ranker_refuses_more_pairs_than_one_k16_instance(stack):
    body = {"instances": [{"texts": ["a", "b", "c"] * 3}] * 4}  # 4 x 72 pairs = 288 > 240
    resp = _post(_v1(stack.ranker_url, "ranker"), body)
    assert resp.status_code == 400 and "288 candidate pairs" in resp.json()["error"]


def test_texts_are_cut_to_the_token_budget_before_pairing(models_dir):
    # F3: the heaviest legal request is cut before its 240 pairs are tokenised
    from pushgen.core.errors import ConfigError
    from pushgen.ranker.budget import cut_to_token_budget
    from pushgen.ranker.select import PairwiseRanker
    from serving.protocol import RankRequest
    from serving.ranker import score_requests, within_budget

    ranker = PairwiseRanker.from_pretrained(models_dir / "ranker", device="cpu")
    tok, budget = ranker.tokenizer, ranker.settings.max_length
    short = ["a short push", "another one"]
    assert cut_to_token_budget(short, tok, budget) == short  # within budget: untouched
    long_texts = [f"{i} " + "dumpling word " * 60 for i in range(16)]  # ~800 chars each
    cut = cut_to_token_budget(long_texts, tok, budget)
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in cut]
    assert max(lengths) <= budget and min(lengths) >= budget - 2, lengths
    assert all(long.startswith(c.split()[0]) for long, c in zip(long_texts, cut, strict=True))
    heavy = RankRequest(tuple(t[:500] for t in long_texts), "caption word " * 150)
    inside = within_budget(ranker, heavy)
    assert all(len(t) < 500 for t in inside.texts) and len(inside.caption) < 1000
    # what the model reads (the first max_length tokens of each pair) is unchanged by the cut
    np.testing.assert_allclose(
        score_requests(ranker, [heavy], "copeland")[0]["win_matrix"],
        score_requests(ranker, [inside], "copeland")[0]["win_matrix"],
        atol=1e-5,
    )
    with pytest.raises(ConfigError):
        cut_to_token_budget(short, tok, 0)


def test_request_id_is_validated_and_bounded(stack):
    # F4: a 4 MB header is refused before kserve reads it; odd characters are a 400
    huge = httpx.post(
        _v1(stack.url, "pushgen"),
        json={"caption": CAPTION},
        headers={"x-request-id": "r" * (4 << 20)},
        timeout=30,
    )
    assert huge.status_code == 431 and "limit" in huge.json()["error"]
    for bad in ("has space", "x" * 129, "semi;colon", "ü".encode()):
        resp = _post(_v1(stack.url, "pushgen"), {"caption": CAPTION}, headers={"x-request-id": bad})
        assert resp.status_code == 400 and "x-request-id" in resp.json()["error"], bad


def test_a_reused_request_id_is_a_409_and_logs_one_request(stack):
    url = _v1(stack.url, "pushgen")
    codes = [
        _post(url, {"caption": CAPTION}, headers={"x-request-id": "reuse-me.1"}).status_code
        for _ in range(3)
    ]
    assert codes == [200, 409, 409]
    again = _post(url, {"caption": CAPTION}, headers={"x-request-id": "reuse-me.1"})
    assert "already used" in again.json()["error"]
    two = _post(
        url,
        {"instances": [{"caption": CAPTION}, {"caption": "a cat sleeps"}]},
        headers={"x-request-id": "multi-7"},
    )
    ids = [p["request_id"] for p in two.json()["predictions"]]
    assert ids == ["multi-7.0", "multi-7.1"]
    fresh = {
        _post(url, {"caption": CAPTION}).json()["predictions"][0]["request_id"] for _ in range(2)
    }
    assert len(fresh) == 2
    valid, _ = read_serving_log(stack.config.log_dir)
    assert (valid.request_id == "reuse-me.1").sum() == 8  # one request's candidates, not 24
    assert (valid.request_id == "multi-7.0").sum() == 8 and (
        valid.request_id == "multi-7.1"
    ).sum() == 8


def test_errors_have_one_shape_on_v1_and_v2(stack):
    # F7: v2 schema errors are 400 {"error"}, not FastAPI's 422 {"detail"}; no Content-Type is
    # JSON (as tritonclient sends it, tests/test_serving_openai.py), a non-JSON one a 415
    v2 = _post(_v2(stack.ranker_url, "ranker"), {"inputs": [{"name": "texts", "data": ["a"]}]})
    assert v2.status_code == 400 and set(v2.json()) == {"error"}, v2.text
    assert "datatype" in v2.json()["error"] and "shape" in v2.json()["error"]
    for url in (_v1(stack.ranker_url, "ranker"), _v2(stack.ranker_url, "ranker")):
        resp = httpx.post(url, content=b'{"texts": ["a"]}', timeout=30)  # no Content-Type
        assert resp.status_code != 415, resp.text
        xml = {"Content-Type": "application/xml"}
        resp = httpx.post(url, content=b'{"texts": ["a"]}', headers=xml, timeout=30)
        assert resp.status_code == 415 and "Content-Type" in resp.json()["error"], resp.text


def test_transformer_admits_a_bounded_number_and_refuses_the_rest_at_once(stack):
    # F8: admission at the front door: 4 in flight, the others a 503 busy before any work
    answers = _concurrent(_v1(stack.url, "pushgen"), {"caption": CAPTION}, 16)
    codes = Counter(r.status_code for r in answers)
    assert set(codes) == {200, 503} and codes[200] >= 4, codes
    busy = next(r for r in answers if r.status_code == 503)
    assert "busy" in busy.json()["error"] and busy.headers["retry-after"] == "1"


@pytest.fixture(scope="module")
def keyed_pair(stack, models_dir, tmp_path_factory):
    """A ranker and a strict transformer of their own, both requiring an API key (from env).

    The ranker reads bodies for at most 2 s; the transformer gives the ranker 1 s a call and a
    request 6 s in all, and reaches the module's generator.
    """
    log_dir = tmp_path_factory.mktemp("keyed")
    env = {**os.environ, "PUSHGEN_API_KEY": KEY, "OMP_NUM_THREADS": "1"}
    rport, tport = free_port(), free_port()
    ranker_url, url = f"http://127.0.0.1:{rport}", f"http://127.0.0.1:{tport}"
    commands = {
        "ranker": [
            "-m",
            "serving.ranker",
            "--model-dir",
            str(models_dir / "ranker"),
            "--model-root",
            str(models_dir),
            "--port",
            str(rport),
            "--body-timeout-s",
            "2",
        ],
        "pushgen": [
            "-m",
            "serving.transformer",
            "--port",
            str(tport),
            "--generator-url",
            stack.generator_url,
            *stack.generator_args,
            "--ranker-url",
            ranker_url,
            "--ranker-timeout-s",
            "1",
            "--deadline-s",
            "6",
            "--log-dir",
            str(log_dir / "log"),
        ],
    }
    procs = {}
    for name, args in commands.items():
        out = (log_dir / f"{name}.out").open("wb")
        procs[name] = subprocess.Popen(
            [sys.executable, *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        for name, base in (("ranker", ranker_url), ("pushgen", url)):
            wait_until_ok(f"{base}/v2/models/{name}/ready", log_dir / f"{name}.out")
        yield {"ranker": ranker_url, "url": url, "procs": procs, "dir": log_dir}
    finally:
        for p in procs.values():  # all at once: each drains for up to its grace period
            p.send_signal(signal.SIGCONT)
            p.terminate()
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_api_key_is_required_when_set(keyed_pair):
    url, body = _v1(keyed_pair["ranker"], "ranker"), {"texts": ["a", "b"]}
    assert _post(url, body).status_code == 401
    wrong = _post(url, body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "API key" in wrong.json()["error"]
    assert _post(url, body, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert _post(url, body, headers={"x-api-key": KEY}).status_code == 200
    assert httpx.get(f"{keyed_pair['ranker']}/v2/health/ready").status_code == 200  # probes open
    # the transformer passes its key on to the ranker: a 200 with scores proves it
    push = _post(
        _v1(keyed_pair["url"], "pushgen"), {"caption": CAPTION}, headers={"x-api-key": KEY}
    )
    assert push.status_code == 200 and push.json()["predictions"][0]["score"] is not None


def test_slow_and_aborted_bodies_are_cut_off_without_tracebacks(keyed_pair):
    # F6: a body not complete in 2 s gets a 408 and its socket back; an abort logs no traceback
    log = keyed_pair["dir"] / "ranker.out"
    size0 = log.stat().st_size
    socks = [_send_head(keyed_pair["ranker"], "Content-Length: 1000\r\n", KEY) for _ in range(20)]
    for s in socks:
        s.sendall(b"{" * 500)
    t0 = time.perf_counter()
    answers = []
    for s in socks:
        s.settimeout(10)
        answers.append(s.recv(4096)[:12])
        s.close()
    assert answers == [b"HTTP/1.1 408"] * 20 and time.perf_counter() - t0 < 6
    for _ in range(5):  # aborted uploads: half a body, then the client hangs up
        s = _send_head(keyed_pair["ranker"], "Content-Length: 1000\r\n", KEY)
        s.sendall(b"{" * 500)
        s.close()
    time.sleep(0.5)
    assert httpx.get(f"{keyed_pair['ranker']}/v2/health/live").status_code == 200
    grown = log.read_text(errors="replace")[size0:]
    assert "Traceback" not in grown and len(grown) < 20_000, grown[-2000:]


def test_a_hung_ranker_fails_fast_and_readiness_says_so(keyed_pair):
    # F5: SIGSTOP the ranker: 503s within the deadline, then at once (circuit open, no
    # generation spent); readiness 503; after SIGCONT the transformer recovers by itself
    url, auth = _v1(keyed_pair["url"], "pushgen"), {"x-api-key": KEY}
    ranker = keyed_pair["procs"]["ranker"]
    ready = f"{keyed_pair['url']}/v2/models/pushgen/ready"
    ranker.send_signal(signal.SIGSTOP)
    try:
        times, answers = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            answers.append(_post(url, {"caption": CAPTION}, headers=auth))
            times.append(time.perf_counter() - t0)
        assert [r.status_code for r in answers] == [503] * 5, [r.text for r in answers]
        assert max(times) < 6 + 1, times  # never past the 6 s deadline
        assert max(times[3:]) < 0.5, times  # the circuit is open: failing fast
        for r in answers:
            assert "ranker" in r.json()["error"] and "127.0.0.1" not in r.text
        assert "failing fast" in answers[-1].json()["error"]
        assert httpx.get(ready, timeout=10).status_code == 503
    finally:
        ranker.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 30
    while httpx.get(ready, timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the transformer did not become ready again"
        time.sleep(0.5)
    assert _post(url, {"caption": CAPTION}, headers=auth).status_code == 200
