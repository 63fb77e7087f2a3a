"""Real KServe ModelServers on 127.0.0.1 (tiny models), driven over HTTP with both protocols.

One LocalStack (generator, ranker, transformer as subprocesses) serves the whole module; the fault
tests start extra transformers pointing at a ranker that is not there.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from pushgen.cli import main
from serving.serving_log import read_serving_log
from serving.stack import LocalStack, StackConfig, free_port, push_for_video

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
    from pushgen.caption import TextCaptioner
    from pushgen.features import build_feature_store

    videos = sim.videos
    captions = TextCaptioner().caption_videos(videos)
    return build_feature_store(videos, captions, tmp_path_factory.mktemp("features"))


@pytest.fixture(scope="module")
def stack(models_dir, feature_repo, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("serving_log")
    config = StackConfig(log_dir=log_dir, env={"OMP_NUM_THREADS": "1"}, max_new_tokens=12)
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
    v2 = _post(_v2(stack.ranker_url, "ranker"),
               {"inputs": [{"name": "texts", "datatype": "BYTES", "shape": [4], "data": texts},
                           {"name": "caption", "datatype": "BYTES", "shape": [1], "data": [CAPTION]}]})  # fmt: skip
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
    v1 = _post(_v1(stack.generator_url, "generator"),
               {"instances": [{"caption": CAPTION, "categories": ["Humor", "Practical"], "n_per_category": 2}]})  # fmt: skip
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
    assert set(push["timings_ms"]) == {"feast", "generate", "rank"}
    guarded = [a for a in push["alternatives"] if a["guard_ok"]]
    if guarded:  # tiny random models: the guard may reject everything, which must not be served
        assert push["text"] in {a["text"] for a in guarded}
        assert push["score"] == max(a["score"] for a in guarded) or push["score"] is not None
    else:
        assert push["text"] is None and "guard" in push["reason"]
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
    assert len(mine) == 8 and mine.selected.sum() == (1 if push["text"] else 0)
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
    if n_ok:
        assert ranked.status_code == 200 and len(ranked.json()["predictions"][0]["scores"]) == n_ok
    else:
        assert ranked.status_code == 400 and "K=0" in ranked.json()["error"]


def test_health_is_not_stalled_by_a_slow_generate(stack):
    # 16 candidates x 64 tokens: the slowest legal request
    body = {"caption": CAPTION, "n_per_category": 2, "max_new_tokens": 64}
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
    ("ranker", "v2", {"inputs": [{"name": "texts", "datatype": "BYTES", "shape": [3], "data": ["a", "b"]}]}, None, "shape"),
    ("ranker", "v2", {"inputs": [{"name": "texts", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}]}, None, "datatype BYTES"),
    ("ranker", "v2", {"inputs": [{"name": "texts", "datatype": "BYTES", "shape": [1, 2], "data": ["a", "b"]}]}, None, "must have shape"),
    ("ranker", "v2", {"inputs": [{"name": "words", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}, None, "unknown input"),
    ("ranker", "v2", {"inputs": [{"name": "texts", "datatype": "BYTES", "data": ["a"]}]}, None, "shape"),
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
    ("generator", "v2", {"inputs": [{"name": "caption", "datatype": "INT32", "shape": [1], "data": [1]}]}, None, "datatype BYTES"),
    ("pushgen", "v1", {"instances": [{}]}, None, "'video_id'"),
    ("pushgen", "v1", {"video_id": ["v1"]}, None, "must be a string"),
    ("pushgen", "v1", {"video_id": "v" * 500}, None, "limit is 128"),
    ("pushgen", "v1", {"video_id": "no-such-video"}, None, "not in the feature store"),  # 404
    ("pushgen", "v2", {"inputs": [{"name": "video_id", "datatype": "BYTES", "shape": [1], "data": ["nope"]}]}, None, "not in the feature store"),
    ("pushgen", "v1", {"caption": "a", "categories": ["Nope"]}, None, "unknown category"),
    ("pushgen", "v2", {"inputs": []}, None, "'video_id'"),
]  # fmt: skip


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
    assert _post(_v1(stack.ranker_url, "nope"), {"texts": ["a"]}).status_code == 404
    resp = httpx.get(f"{stack.ranker_url}/v1/models/ranker:predict")  # GET on a POST route
    assert 400 <= resp.status_code < 500 and "error" in resp.json()


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
        args = [sys.executable, "-m", "serving.transformer", "--port", str(port),
                "--generator-url", stack.generator_url, "--ranker-url", dead,
                "--log-dir", str(log_dir / mode)]  # fmt: skip
        if mode == "degrade":
            args.append("--degrade-without-ranker")
        out = (log_dir / f"{mode}.out").open("wb")
        procs.append(subprocess.Popen(args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT))
        urls[mode] = f"http://127.0.0.1:{port}"
    try:
        for mode, url in urls.items():
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, (log_dir / f"{mode}.out").read_text()[-2000:]
                time.sleep(0.3)
        yield urls
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def test_ranker_down_is_a_503_with_a_clear_message(no_ranker_transformers):
    resp = _post(
        _v1(no_ranker_transformers["strict"], "pushgen"), {"caption": "a cat sleeps on a sofa"}
    )
    if resp.status_code == 200:  # every candidate failed the guard: the ranker was never needed
        assert resp.json()["predictions"][0]["text"] is None
        return
    assert resp.status_code == 503 and "ranker" in resp.json()["error"]
    assert "unavailable" in resp.json()["error"]


def test_ranker_down_degrades_when_configured(no_ranker_transformers):
    resp = _post(
        _v1(no_ranker_transformers["degrade"], "pushgen"), {"caption": "a cat sleeps on a sofa"}
    )
    assert resp.status_code == 200, resp.text
    push = resp.json()["predictions"][0]
    guarded = [a for a in push["alternatives"] if a["guard_ok"]]
    if guarded:
        assert (
            push["degraded"] is True
            and push["text"] == guarded[0]["text"]
            and push["score"] is None
        )
        assert "ranker" in push["reason"]


# --- the CLI, as a user calls it -----------------------------------------------------------


def test_cli_push_against_the_stack(stack, capsys):
    assert (
        main(
            ["push", "--caption", CAPTION, "--url", stack.url, "--categories", "Humor", "Curiosity"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("[") or out.startswith("no push:")
    assert main(["push", "--video-id", "no-such-video", "--url", stack.url]) == 2
    assert "404" in capsys.readouterr().err


def test_push_for_video_reports_server_errors(stack):
    from pushgen.errors import PushgenError

    with pytest.raises(PushgenError, match="400"):
        push_for_video(stack.url, "v" * 200)
