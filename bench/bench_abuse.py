"""Abuse and fault soak of the local KServe stack: what attacks and faults cost the servers.

Starts the real stack (generator, ranker, pushgen transformer; tiny models by default) on
127.0.0.1 and runs, each bounded in count and time, the attacks of issue #13: malformed requests,
a 256 MiB chunked upload, slow half-sent bodies, the heaviest legal ranker input, a 4 MB
`x-request-id`, reused request ids, 300 concurrent ranker requests, a hung ranker (SIGSTOP) and
overload at 2x the saturating load. It prints one table: attack -> status codes, worst latency
(and the bound it must stay under), RSS growth of the attacked server, growth of the server logs
+ serving log, and whether the target was met. Loopback only; nothing leaves the machine.

    python -m bench.bench_abuse                 # tiny models, ~3 minutes on 2 busy cores
    python -m bench.bench_abuse --models DIR    # a directory with generator/ and ranker/
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import signal
import socket
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from bench.record import record

CAPTION = "A chef in Rome shows how to fold five kinds of dumplings for her grandmother's birthday"
TYPICAL = [
    "You won't believe what this chef does with dumplings",
    "This grandmother's birthday surprise will melt your heart",
    "Fold dumplings like a pro: a chef shows you how",
    "Why do chefs in Rome fold dumplings this way?",
    "Watch now: five dumplings, one kitchen",
    "Everyone is talking about these dumplings",
    "This is for you, dumpling lovers",
    "The funniest folding fail you'll see today",
]
JSON = {"Content-Type": "application/json"}


@dataclass
class Row:
    """One attack's outcome."""

    attack: str
    codes: Counter = field(default_factory=Counter)
    worst_s: float = 0.0
    bound_s: float | None = None  # no request may take longer than this
    rss_mib: float = 0.0
    log_kib: float = 0.0
    serving_rows: int = 0
    note: str = ""
    ok: bool = True

    def add(self, code: int | str, seconds: float) -> None:
        self.codes[code] += 1
        self.worst_s = max(self.worst_s, seconds)


def _rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def _log_bytes(log_dir: Path) -> int:
    """Bytes of the servers' own logs (stdout/stderr), not the serving log."""
    return sum(p.stat().st_size for p in (log_dir / "servers").glob("*.log"))


def _serving_rows(log_dir: Path) -> int:
    return sum(sum(1 for _ in p.open("rb")) for p in log_dir.glob("serving_log-*.jsonl"))


def _url(base: str, name: str) -> str:
    return f"{base}/v1/models/{name}:predict"


class Bench:
    """The stack under attack, and the measuring around each attack."""

    def __init__(self, stack: Any, log_dir: Path):
        self.stack, self.log_dir = stack, log_dir
        self.rows: list[Row] = []

    def measure(self, attack: str, server: str, fn: Callable[[Row], None]) -> Row:
        row = Row(attack)
        pid = self.stack.pids()[server]
        rss0, log0, rows0 = _rss(pid), _log_bytes(self.log_dir), _serving_rows(self.log_dir)
        print(f"  {attack} ...", flush=True)
        fn(row)
        row.rss_mib = (_rss(pid) - rss0) / 2**20
        row.log_kib = (_log_bytes(self.log_dir) - log0) / 1024
        row.serving_rows = _serving_rows(self.log_dir) - rows0
        if any(isinstance(c, int) and c >= 500 and c != 503 for c in row.codes):
            row.ok = False
        if row.bound_s is not None and row.worst_s > row.bound_s:
            row.ok = False
        self.rows.append(row)
        return row


def _host_port(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def _status_of(data: bytes) -> int | str:
    if data.startswith(b"HTTP/1.1 "):
        return int(data[9:12])
    return "closed"


def chunked_upload(row: Row, base: str, total_mib: int, limit_s: float = 60.0) -> int:
    """Send a chunked body of `total_mib` MiB until the server answers or closes; MiB sent."""
    host, port = _host_port(base)
    t0 = time.perf_counter()
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(
        b"POST /v1/models/ranker:predict HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"[" * (1 << 20)
    sent, answer = 0, b""
    while sent < total_mib and time.perf_counter() - t0 < limit_s:
        if select.select([s], [], [], 0)[0]:
            break
        try:
            s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except OSError:
            break
        sent += 1
    try:
        s.settimeout(5)
        answer = s.recv(4096)
    except OSError:
        pass
    s.close()
    row.add(_status_of(answer), time.perf_counter() - t0)
    return sent


def slow_bodies(row: Row, base: str, n: int, limit_s: float) -> None:
    """`n` uploads that send half their declared body and stall; time until each is answered."""
    host, port = _host_port(base)
    socks, t0 = {}, time.perf_counter()
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(
            b"POST /v1/models/ranker:predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + b"{" * 500
        )
        socks[s.fileno()] = s
    while socks and time.perf_counter() - t0 < limit_s:
        ready, _, _ = select.select(list(socks.values()), [], [], 0.5)
        for s in ready:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            row.add(_status_of(data), time.perf_counter() - t0)
            socks.pop(s.fileno()).close()
    for s in socks.values():  # still held open by the server at the end: a failure
        row.add("held open", time.perf_counter() - t0)
        s.close()


async def _concurrent(
    url: str, body: dict, n: int, timeout_s: float
) -> list[tuple[int | str, float]]:
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as client:

        async def one() -> tuple[int | str, float]:
            t0 = time.perf_counter()
            try:
                r = await client.post(url, json=body)
                return r.status_code, time.perf_counter() - t0
            except httpx.HTTPError as exc:
                return type(exc).__name__, time.perf_counter() - t0

        return await asyncio.gather(*(one() for _ in range(n)))


def _timed_post(url: str, row: Row | None = None, **kw: Any) -> tuple[httpx.Response, float]:
    t0 = time.perf_counter()
    r = httpx.post(url, timeout=kw.pop("timeout", 60), **kw)
    dt = time.perf_counter() - t0
    if row is not None:
        row.add(r.status_code, dt)
    return r, dt


def goodput(url: str, clients: int, seconds: float, row: Row | None = None) -> float:
    """Successful pushes per second from `clients` closed-loop clients that retry at once on 503."""
    ok: Counter = Counter()

    def client(i: int) -> None:
        end = time.monotonic() + seconds
        with httpx.Client(timeout=60) as c:
            while time.monotonic() < end:
                t0 = time.perf_counter()
                r = c.post(url, json={"caption": f"{CAPTION} ({i})"})
                ok[r.status_code] += 1
                if row is not None:
                    row.add(r.status_code, time.perf_counter() - t0)

    from concurrent.futures import ThreadPoolExecutor

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return ok[200] / (time.perf_counter() - t0)


def open_loop(url: str, rate: float, seconds: float, row: Row) -> float:
    """Offer `rate` pushes/s for `seconds` (each its own request, no retry); successes per second."""

    ok: Counter = Counter()  # this call's answers (`row` sums over calls)

    async def run() -> float:
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=100)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:

            async def one(i: int) -> None:
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, json={"caption": f"{CAPTION} ({i})"})
                    row.add(r.status_code, time.perf_counter() - t0)
                    ok[r.status_code] += 1
                except httpx.HTTPError as exc:
                    row.add(type(exc).__name__, time.perf_counter() - t0)

            start, tasks, i = time.perf_counter(), [], 0
            while (now := time.perf_counter() - start) < seconds:
                while i < rate * now:
                    tasks.append(asyncio.create_task(one(i)))
                    i += 1
                await asyncio.sleep(0.005)
            await asyncio.gather(*tasks)
            return ok[200] / (time.perf_counter() - start)

    return asyncio.run(run())


BAD = [
    ("ranker", {"instances": [{"texts": []}]}, JSON),
    ("ranker", {"instances": [{"texts": ["a"] * 17}]}, JSON),
    ("ranker", {"instances": [{"texts": ["x" * 5000]}]}, JSON),
    ("ranker", {"instances": [{"texts": ["a", "b"]}] * 9}, JSON),
    ("ranker", {"texts": ["a", "b"]}, {}),  # no Content-Type
    ("ranker", {"texts": ["a", "b"]}, {"Content-Type": "text/plain"}),
    ("generator", {"caption": "x" * 5000}, JSON),
    ("generator", {"caption": "a", "n_per_category": 99}, JSON),
    ("pushgen", {"video_id": ["v1"]}, JSON),
    ("pushgen", {"caption": "a", "categories": ["Nope"]}, JSON),
]


def run(models: Path, work: Path, goodput_s: float) -> list[Row]:
    from serving.stack import LocalStack, StackConfig

    log_dir = work / "log"
    config = StackConfig(log_dir=log_dir, env={"OMP_NUM_THREADS": "1"}, max_new_tokens=12)
    with LocalStack(models, None, config=config) as stack:
        b = Bench(stack, log_dir)
        rank, push = _url(stack.ranker_url, "ranker"), _url(stack.url, "pushgen")
        bases = {"ranker": stack.ranker_url, "generator": stack.generator_url, "pushgen": stack.url}
        for _ in range(5):  # warm-up
            httpx.post(rank, json={"texts": TYPICAL, "caption": CAPTION}, timeout=60)
            httpx.post(push, json={"caption": CAPTION}, timeout=60)

        def malformed(row: Row) -> None:
            for _ in range(10):
                for server, body, headers in BAD:
                    import json as _json

                    _timed_post(
                        _url(bases[server], server), row, content=_json.dumps(body), headers=headers
                    )
                t0 = time.perf_counter()
                row.add(httpx.get(rank, timeout=10).status_code, time.perf_counter() - t0)
                v2 = f"{stack.ranker_url}/v2/models/ranker/infer"
                _timed_post(v2, row, json={"inputs": [{"name": "texts", "data": ["a"]}]})
            row.bound_s = 2.0

        b.measure("malformed x230 (all servers)", "ranker", malformed)

        def chunked(row: Row) -> None:
            sent = chunked_upload(row, stack.ranker_url, 256)
            row.note = f"server stopped reading after {sent} MiB"
            row.bound_s = 5.0

        b.measure("chunked 256 MiB upload -> ranker", "ranker", chunked)

        def declared(row: Row) -> None:
            headers = {**JSON, "Content-Length": str(256 << 20)}
            host, port = _host_port(stack.ranker_url)
            t0 = time.perf_counter()
            with socket.create_connection((host, port), timeout=10) as s:
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                s.sendall(
                    f"POST /v1/models/ranker:predict HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode()
                )
                row.add(_status_of(s.recv(4096)), time.perf_counter() - t0)
            row.bound_s = 1.0

        b.measure("declared 256 MiB Content-Length -> ranker", "ranker", declared)

        def slow(row: Row) -> None:
            slow_bodies(row, stack.ranker_url, 200, limit_s=40)
            row.bound_s = 10.0 + 5.0  # body timeout + slack
            row.note = "half-sent bodies; body timeout 10 s"

        b.measure("200 slow half-sent bodies -> ranker", "ranker", slow)

        heavy = {"texts": HEAVY_TEXTS, "caption": HEAVY_CAPTION}
        typical = {"texts": TYPICAL, "caption": CAPTION}

        def heavy_input(row: Row) -> None:
            typ = [_timed_post(rank, None, json=typical)[1] for _ in range(7)]
            hvy = [_timed_post(rank, row, json=heavy)[1] for _ in range(7)]
            for code, dt in asyncio.run(_concurrent(rank, heavy, 8, 60)):
                row.add(code, dt)
            ratio = statistics.median(hvy) / statistics.median(typ)
            row.note = (
                f"median heavy {statistics.median(hvy) * 1000:.0f} ms vs typical K=8 "
                f"{statistics.median(typ) * 1000:.0f} ms: {ratio:.1f}x (target <= 5x)"
            )
            row.ok = ratio <= 5.0
            row.bound_s = 10.0

        b.measure("heaviest legal input (K=16 x 500 ch) -> ranker", "ranker", heavy_input)

        def big_header(row: Row) -> None:
            for _ in range(5):
                _timed_post(
                    push, row, json={"caption": CAPTION}, headers={"x-request-id": "r" * (4 << 20)}
                )
            _timed_post(push, row, json={"caption": CAPTION}, headers={"x-request-id": "bad id!"})
            row.bound_s = 2.0

        b.measure("4 MB x-request-id x5 -> pushgen", "pushgen", big_header)

        def reused(row: Row) -> None:
            for _ in range(24):
                _timed_post(
                    push, row, json={"caption": CAPTION}, headers={"x-request-id": "abuse-reused-1"}
                )
            from serving.serving_log import read_serving_log

            valid, _ = read_serving_log(log_dir)
            ids = valid[valid.request_id == "abuse-reused-1"]
            row.note = f"{len(ids)} log rows under the id (one request's candidates)"
            row.ok = row.codes[200] == 1 and row.codes[409] == 23

        b.measure("one x-request-id reused x24 -> pushgen", "pushgen", reused)

        def flood(row: Row) -> None:
            for code, dt in asyncio.run(_concurrent(rank, typical, 300, 120)):
                row.add(code, dt)
            row.ok = row.ok and row.codes[503] > 0
            row.note = "batching on; bound 64 waiting"
            row.bound_s = 30.0

        b.measure("300 concurrent -> ranker (batching)", "ranker", flood)

        def hung(row: Row) -> None:
            pid = stack.pids()["ranker"]
            os.kill(pid, signal.SIGSTOP)
            try:
                ready, times = [], []
                for _ in range(8):
                    times.append(_timed_post(push, row, json={"caption": CAPTION})[1])
                    r = httpx.get(f"{stack.url}/v2/models/pushgen/ready", timeout=10)
                    ready.append(r.status_code)
                row.note = f"readiness during: {dict(Counter(ready))}"
            finally:
                os.kill(pid, signal.SIGCONT)
            t0 = time.perf_counter()
            while httpx.get(f"{stack.url}/v2/models/pushgen/ready", timeout=10).status_code != 200:
                time.sleep(0.5)
                if time.perf_counter() - t0 > 30:
                    break
            row.note += f"; latencies {', '.join(f'{t:.2f}' for t in times)} s; ready again {time.perf_counter() - t0:.1f} s after SIGCONT"
            row.bound_s = 45.0  # the request deadline

        b.measure("ranker hung (SIGSTOP) x8 -> pushgen", "pushgen", hung)

        rates: dict[int, float] = {}

        def overload(row: Row) -> None:
            # peak: the best closed-loop goodput; then twice that rate offered open-loop, the way
            # independent users arrive (a refused request is lost, not retried). The two
            # alternate over 3 rounds, so drifting background load hits both alike.
            rates.update({c: goodput(push, c, goodput_s) for c in (1, 2, 4)})
            peak_c = max(rates, key=lambda c: rates[c])
            peaks, overs = [], []
            for _ in range(3):
                peaks.append(goodput(push, peak_c, goodput_s))
                overs.append(open_loop(push, 2 * peaks[-1], goodput_s, row))
            ratio = sum(overs) / sum(peaks)
            rounds = "; ".join(f"{p:.1f} -> {o:.1f}" for p, o in zip(peaks, overs, strict=True))
            row.note = (
                f"closed loop by clients: {', '.join(f'{c}: {r:.1f}' for c, r in rates.items())}/s; "
                f"rounds peak -> goodput at 2x offered: {rounds}; "
                f"sum {ratio:.0%} of peak (target >= 90%)"
            )
            row.ok = ratio >= 0.9
            row.bound_s = 45.0  # the request deadline

        b.measure("overload: 2x the saturating rate -> pushgen", "pushgen", overload)

        def no_backoff(row: Row) -> None:
            peak = max(rates.values())
            over = goodput(push, 12, goodput_s, row)
            row.note = (
                f"12 closed-loop clients retrying at once on 503: goodput {over:.1f}/s = "
                f"{over / peak:.0%} of peak (informative: the clients share the 2 cores)"
            )
            row.bound_s = 45.0

        b.measure("overload: 12 clients, no backoff -> pushgen", "pushgen", no_backoff)
        return b.rows


HEAVY_TEXTS = [f"{i} " + "word " * 99 for i in range(16)]  # 16 x ~500 chars: the most K allows
HEAVY_CAPTION = "caption " * 249  # ~2,000 chars: the most a caption may have


def budget_baseline(models: Path, repeats: int = 3) -> Table:
    """In-process: the heaviest legal ranker request with and without the token budget cut."""
    import torch

    from pushgen.ranker.select import PairwiseRanker
    from serving.protocol import RankRequest
    from serving.ranker import score_requests

    torch.set_num_threads(1)
    ranker = PairwiseRanker.from_pretrained(models / "ranker", device="cpu")
    heavy = RankRequest(tuple(HEAVY_TEXTS), HEAVY_CAPTION)
    typical = RankRequest(tuple(TYPICAL), CAPTION)

    def best(fn: Callable[[], Any]) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times) * 1000

    def naive(req: RankRequest) -> None:  # the old path: every pair of uncut texts tokenised
        ranker.score_pairs(*ranker.pair_inputs(req.texts, req.caption))

    typ = best(lambda: score_requests(ranker, [typical], "copeland"))
    rows = [
        ("typical: K=8, short texts, caption", best(lambda: naive(typical)), typ),
        (
            "heaviest legal: K=16 x 500 ch, 2,000-ch caption",
            best(lambda: naive(heavy)),
            best(lambda: score_requests(ranker, [heavy], "copeland")),
        ),
    ]
    table = Table(
        title="ranker, one request in-process (1 thread): cost of the heaviest legal input"
    )
    for col in ("request", "no budget (naive) ms", "token budget ms", "x typical (budget)"):
        table.add_column(col)
    for name, a, b in rows:
        table.add_row(name, f"{a:.0f}", f"{b:.0f}", f"{b / typ:.1f}")
        record("abuse", f"ranker {name}, token budget", b / 1000, a / 1000, "no budget")
    return table


def print_table(rows: list[Row]) -> None:
    table = Table(title="abuse and faults (tiny models, loopback)")
    cols = (
        "attack",
        "status codes",
        "worst s",
        "bound s",
        "RSS +MiB",
        "server log +KiB",
        "serving log +rows",
        "met",
        "note",
    )
    for col in cols:
        table.add_column(col)
    for r in rows:
        codes = ", ".join(f"{k}x{v}" for k, v in sorted(r.codes.items(), key=lambda kv: str(kv[0])))
        table.add_row(
            r.attack,
            codes,
            f"{r.worst_s:.2f}",
            "" if r.bound_s is None else f"{r.bound_s:g}",
            f"{r.rss_mib:+.0f}",
            f"{r.log_kib:+.0f}",
            f"{r.serving_rows:+d}",
            "yes" if r.ok else "NO",
            r.note,
        )
    Console(width=250).print(table)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="abuse and fault soak of the local KServe stack")
    p.add_argument("--models", default=None, help="dir with generator/ + ranker/; default: tiny")
    p.add_argument("--goodput-seconds", type=float, default=6.0, help="per goodput measurement")
    args = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = Path(tempfile.mkdtemp(prefix="bench_abuse_"))
    if args.models:
        models = Path(args.models)
    else:
        from serving.tiny import build_tiny_models

        print("building tiny served models ...", flush=True)
        models = build_tiny_models(work / "models")
    print(f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()}, models: {models}")
    t0 = time.perf_counter()
    Console(width=200).print(budget_baseline(models))
    rows = run(models, work, args.goodput_seconds)
    print_table(rows)
    for r in rows:
        bound = "no bound" if r.bound_s is None else f"bound {r.bound_s:g} s"
        met = "met" if r.ok else "MISSED"
        record("abuse", f"{r.attack}: worst request ({bound}, {met})", r.worst_s)
    print(
        f"{sum(not r.ok for r in rows)} targets missed; {time.perf_counter() - t0:.0f} s; "
        f"load average at the end: {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
