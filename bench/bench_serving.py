"""Load benchmark of the local KServe stack: requests/s and p50/p95/p99 latency, per stage.

Three parts, each against real ModelServers on 127.0.0.1 with concurrent HTTP clients:
1. ranker alone, K=8 candidates (56 pairs per request), dynamic batching OFF (the naive baseline:
   one forward pass per request) vs ON (concurrent requests share a forward pass), at 1 and at
   `--clients` concurrent clients. Target: p50 <= 150 ms at 1 client on 2 CPU cores.
2. the full chain (transformer -> generator -> ranker; Feast when `--feature-repo` is given), K=8,
   with the server-side per-stage times (feast, generate, rank) from each answer.
3. the ranker's pairs scored one at a time in-process vs in one batch (why "all pairs in one batch").

    python -m bench.bench_serving                  # packaged SmolLM2 + MiniLM, ~3 minutes on 2 cores
    python -m bench.bench_serving --tiny           # tiny random models (plumbing only)
    python -m bench.bench_serving --seconds 30 --clients 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parents[1]
CAPTION = "A chef in Rome shows how to fold five kinds of dumplings for her grandmother's birthday"
TEXTS = [
    "You won't believe what this chef does with dumplings",
    "This grandmother's birthday surprise will melt your heart",
    "Fold dumplings like a pro: a chef shows you how",
    "Dumpling fail or dumpling genius? Watch and laugh",
    "Why do chefs in Rome fold dumplings this way?",
    "Watch now: the dumpling trick everyone is trying today",
    "Everyone is talking about this dumpling video",
    "You, yes you, can fold these dumplings tonight",
]


def percentiles(lat_ms: list[float]) -> dict[str, float]:
    arr = np.asarray(lat_ms)
    return {f"p{q}": float(np.percentile(arr, q)) for q in (50, 95, 99)} if len(arr) else {}


def load(url: str, body: dict, clients: int, seconds: float, desc: str) -> dict[str, Any]:
    """`clients` threads POST `body` for `seconds`; latencies, errors and server-side timings."""
    lat: list[float] = []
    stages: list[dict] = []
    errors: list[str] = []
    bar = tqdm(total=None, desc=desc, unit="req", disable=None, leave=False)

    def client(_: int) -> None:
        with httpx.Client(timeout=300) as c:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                t0 = time.perf_counter()
                r = c.post(url, json=body)
                lat.append((time.perf_counter() - t0) * 1000)
                bar.update(1)
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:120]}")
                else:
                    pred = r.json()["predictions"][0]
                    if "timings_ms" in pred:
                        stages.append(pred["timings_ms"])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - t0
    bar.close()
    return {
        "n": len(lat),
        "rps": len(lat) / wall,
        **percentiles(lat),
        "errors": len(errors),
        "stages": stages,
        "first_error": errors[0] if errors else "",
    }


def start_server(module: str, args: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    from serving.stack import free_port

    port = free_port()
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--port", str(port), *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{module} exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{module} not ready in 300 s:\n{log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench_ranker(
    models: Path, work: Path, clients: int, seconds: float, dtypes: list[str]
) -> list[dict]:
    """Ranker servers: fp32 without batching is the naive baseline; then batching, then bf16."""
    rows = []
    body = {"instances": [{"texts": TEXTS, "caption": CAPTION}]}
    for dtype in dtypes:
        for batching in (False, True):
            extra = ["--dtype", dtype] + ([] if batching else ["--no-batching"])
            log = work / f"ranker-{dtype}-{batching}.log"
            proc, url = start_server(
                "serving.ranker", ["--model-dir", str(models / "ranker"), *extra], log
            )
            try:
                for _ in range(10):  # warm-up
                    httpx.post(f"{url}/v1/models/ranker:predict", json=body, timeout=60)
                for c in (1, clients):
                    what = f"ranker K=8 {dtype}, batching {'on' if batching else 'off'}"
                    res = load(f"{url}/v1/models/ranker:predict", body, c, seconds, what)
                    rows.append({"what": what, "group": "server", "clients": c, **res})
            finally:
                stop(proc)
    return rows


def bf16_agreement(ranker_dir: Path, n_sets: int = 40, k: int = 8) -> str:
    """bf16 vs fp32 on K=8 sets of simulated pushes: same choice, and the true CTR of each choice.

    The simulator knows every text's click probability, so a flipped choice can be judged: if the
    picks' mean true CTR is the same, the flips are between candidates the ranker cannot tell apart.
    """
    import copy

    import torch

    from pushgen.data.simulator import SimConfig, simulate, true_ctr
    from pushgen.ranker.select import PairwiseRanker
    from serving.ranker import RankRequest, score_requests

    sim = simulate(SimConfig(n_videos=150, seed=3))
    groups = [(v, tuple(g.text.head(k))) for v, g in sim.pushes.groupby("video_id") if len(g) >= k]
    groups = groups[:n_sets]
    fp32 = PairwiseRanker.from_pretrained(ranker_dir, device="cpu")
    model = copy.deepcopy(fp32.model).to(torch.bfloat16)
    bf16 = PairwiseRanker(model, fp32.tokenizer, fp32.settings, "cpu")
    reqs = [RankRequest(t) for _, t in groups]
    a = score_requests(fp32, reqs, "copeland")
    b = score_requests(bf16, reqs, "copeland")
    same = sum(x["chosen"] == y["chosen"] for x, y in zip(a, b, strict=True))
    diff = max(
        float(np.abs(np.array(x["win_matrix"]) - np.array(y["win_matrix"])).max())
        for x, y in zip(a, b, strict=True)
    )
    margin = float(np.median([np.abs(np.array(x["win_matrix"]) - 0.5).mean() for x in a]))

    def ctr(results: list[dict]) -> float:
        return float(
            np.mean(
                [
                    true_ctr(sim.world, v, t[r["chosen"]])
                    for (v, t), r in zip(groups, results, strict=True)
                ]
            )
        )

    rand = float(np.mean([np.mean([true_ctr(sim.world, v, x) for x in t]) for v, t in groups]))
    best = float(np.mean([max(true_ctr(sim.world, v, x) for x in t) for v, t in groups]))
    return (
        f"bf16 vs fp32 ranker ({ranker_dir}) over {len(groups)} sets of K={k} simulated pushes: "
        f"same choice in {same}/{len(groups)}, max |dW| {diff:.4f}, median mean |W-0.5| {margin:.4f}; "
        f"true CTR of the pick: fp32 {ctr(a):.4%}, bf16 {ctr(b):.4%}, random {rand:.4%}, best {best:.4%}"
    )


def bench_chain(
    models: Path,
    work: Path,
    clients: int,
    seconds: float,
    feature_repo: str | None,
    video_id: str | None,
) -> list[dict]:
    from serving.stack import LocalStack, StackConfig

    rows = []
    body = {"video_id": video_id} if video_id else {"caption": CAPTION}
    with LocalStack(models, feature_repo, config=StackConfig(log_dir=work / "chain")) as stack:
        url = f"{stack.url}/v1/models/pushgen:predict"
        httpx.post(url, json=body, timeout=300)  # warm-up
        for c in (1, clients):
            res = load(url, body, c, seconds, f"chain c={c}")
            rows.append(
                {
                    "what": "pushgen chain K=8" + (" (Feast)" if video_id else " (caption)"),
                    "clients": c,
                    **res,
                }
            )
    return rows


def bench_pairs_in_process(models: Path, reps: int = 5) -> list[dict]:
    from pushgen.ranker.select import PairwiseRanker
    from serving.ranker import RankRequest

    ranker = PairwiseRanker.from_pretrained(models / "ranker", device="cpu")
    req = RankRequest(tuple(TEXTS), CAPTION)
    a, b = ranker.pair_inputs(req.texts, req.caption)
    ranker.score_pairs(a, b)  # warm-up

    def one_batch() -> None:
        ranker.score_pairs(a, b)

    def one_by_one() -> None:
        for x, y in zip(a, b, strict=True):
            ranker.score_pairs([x], [y])

    rows = []
    for name, fn in (("56 pairs one at a time", one_by_one), ("56 pairs in one batch", one_batch)):
        times, cpu = [], []
        for _ in range(reps):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        # CPU ms summed over threads: unlike wall time, it barely moves when other jobs share the cores
        rows.append(
            {
                "what": f"ranker in-process: {name}",
                "group": "in-process",
                "clients": 1,
                "n": reps,
                "rps": 1000 / statistics.median(times),
                **percentiles(times),
                "errors": 0,
                "stages": [],
                "note": f"cpu {statistics.median(cpu):.0f} ms",
            }
        )
    return rows


def build_bench_feature_repo(out: Path) -> tuple[str, str]:
    """A Feast repo (SQLite online store) with 50 simulated videos; returns (repo, a video id)."""
    from pushgen.data.caption import TextCaptioner
    from pushgen.data.simulator import SimConfig, simulate
    from pushgen.features.feast_store import build_feature_store

    videos = simulate(SimConfig(n_videos=50, seed=1)).videos
    repo = build_feature_store(videos, TextCaptioner().caption_videos(videos), out)
    return str(repo), str(videos.video_id.iloc[0])


def stage_summary(stages: list[dict], note: str = "") -> str:
    if not stages:
        return note
    return " ".join(
        f"{k}={statistics.median(s[k] for s in stages):.0f}" for k in ("feast", "generate", "rank")
    )


def print_table(rows: list[dict], title: str) -> None:
    table = Table(title=title)
    for col in (
        "what",
        "clients",
        "requests",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "median stage ms / note",
        "vs baseline",
    ):
        table.add_column(col, justify="left" if col == "what" else "right")
    base = {}
    for r in rows:
        key = (r.get("group", r["what"]), r["clients"])
        base.setdefault(key, r)
        ratio = r["rps"] / base[key]["rps"] if base[key]["rps"] else float("nan")
        table.add_row(
            r["what"],
            str(r["clients"]),
            str(r["n"]),
            f"{r['rps']:.2f}",
            f"{r.get('p50', 0):.0f}",
            f"{r.get('p95', 0):.0f}",
            f"{r.get('p99', 0):.0f}",
            str(r["errors"]),
            stage_summary(r["stages"], r.get("note", "")),
            f"{ratio:.2f}x",
        )
    Console(width=200).print(table)
    from bench.record import record

    for r in rows:  # seconds per request at p50; the baseline is the group's first row
        first = base[(r.get("group", r["what"]), r["clients"])]
        if r is not first and r.get("p50") and first.get("p50"):
            record(
                "serving",
                f"{r['what']}, {r['clients']} clients",
                r["p50"] / 1e3,
                first["p50"] / 1e3,
                first["what"],
            )
    for r in rows:
        if r.get("first_error"):
            print(f"first error of '{r['what']}' at {r['clients']} clients: {r['first_error']}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="load benchmark of the local KServe stack")
    p.add_argument("--models", default=None, help="dir with generator/ + ranker/; default: build")
    p.add_argument("--tiny", action="store_true", help="tiny random models, not SmolLM2 + MiniLM")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients")
    p.add_argument("--seconds", type=float, default=10.0, help="per ranker measurement")
    p.add_argument("--chain-seconds", type=float, default=30.0, help="per chain measurement")
    p.add_argument("--feature-repo", default=None, help="Feast repo: measure the chain by video_id")
    p.add_argument("--video-id", default=None, help="a video id materialised in --feature-repo")
    p.add_argument("--no-feast", action="store_true", help="send captions, skip the Feast lookup")
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], help="ranker dtypes")
    p.add_argument("--agreement-ranker", default=None, help="trained ranker dir for the bf16 check")
    p.add_argument("--skip-ranker", action="store_true")
    p.add_argument("--skip-chain", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    if args.models:
        models = Path(args.models)
    else:
        from serving.tiny import build_default_models, build_tiny_models

        print("building served models ...", flush=True)
        models = (build_tiny_models if args.tiny else build_default_models)(work / "models")
    print(f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()}, models: {models}")
    if not args.skip_ranker:
        rows = bench_pairs_in_process(models)
        rows += bench_ranker(models, work, args.clients, args.seconds, args.dtypes)
        print_table(rows, "ranker (K=8 candidates = 56 pairs); baseline = first row of each group")
        agreement_dir = Path(args.agreement_ranker) if args.agreement_ranker else models / "ranker"
        print(bf16_agreement(agreement_dir))
    if not args.skip_chain:
        repo, video_id = args.feature_repo, args.video_id
        if repo is None and not args.no_feast:
            repo, video_id = build_bench_feature_repo(work / "features")
        chain = bench_chain(models, work, args.clients, args.chain_seconds, repo, video_id)
        print_table(chain, "pushgen chain: transformer -> generator -> ranker (stage medians)")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
