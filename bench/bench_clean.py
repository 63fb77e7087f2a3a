"""Benchmark `pushgen.data.clean.clean_pushes` against the same logic written in DuckDB SQL.

Both implementations apply the same contract checks, the paper's hard filter, the per-cluster
CTR quantile crop and the bounded confidence weight to the same synthetic push history, and must
agree on every kept push and its confidence (checked before timing is reported). Each timed run is
a fresh process, so peak RSS is that implementation's own (input table included).

    python -m bench.bench_clean                 # 1,000,000 pushes, best of 3 runs
    python -m bench.bench_clean --rows 5000000  # bigger

Targets (issue #3): 1M pushes in <= 10 s and <= 3 GB peak on 2 cores, and no slower than DuckDB.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TOPICS = ["sports", "food", "music", "news", "pets", "travel", "tech", "beauty", "games", "cars"]
WORDS = ["Paris", "Messi", "3 tips", "you", "won't believe", "today", "millions", "why", "cat"]


def synthetic_history(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pushes, videos) with realistic rate distributions and ~1% malformed rows of each kind."""
    rng = np.random.default_rng(seed)
    n_videos = max(rows // 20, 10)
    videos = pd.DataFrame(
        {"video_id": [f"v{i}" for i in range(n_videos)], "topic": rng.choice(TOPICS, n_videos)}
    )
    pv = rng.lognormal(7.5, 1.2, rows).astype(np.int64)
    ctr = rng.beta(2, 120, rows)
    clicks = rng.binomial(pv, ctr)
    words = np.array(WORDS, dtype=object)
    text = words[rng.integers(0, len(WORDS), rows)] + " " + words[rng.integers(0, len(WORDS), rows)]
    pushes = pd.DataFrame(
        {
            "push_id": [f"p{i}" for i in range(rows)],
            "video_id": [f"v{i}" for i in rng.integers(0, n_videos, rows)],
            "text": text,
            "sent_at": pd.Timestamp("2025-01-01")
            + pd.to_timedelta(rng.integers(0, 10**7, rows), "s"),
            "pv": pv,
            "clicks": clicks,
            "ctr": clicks / np.maximum(pv, 1),
            "svr": rng.beta(3, 7, rows),
            "lvtr": rng.beta(7, 4, rows),
            "htr": rng.beta(1, 300, rows),
        }
    )
    # the malformed rows every real export has: each kind goes through a different contract rule
    bad = rng.choice(rows, size=max(rows // 100, 6), replace=False)
    kinds = np.array_split(bad, 6)
    pushes.loc[kinds[0], "pv"] = -1
    pushes.loc[kinds[1], "clicks"] = pushes.loc[kinds[1], "pv"] + 1
    pushes.loc[kinds[2], "text"] = " "
    pushes.loc[kinds[3], "video_id"] = "v-unknown"
    pushes.loc[kinds[4], "ctr"] = 1.5
    pushes.loc[kinds[5], "push_id"] = "p0"  # duplicates of the first push
    return pushes, videos


# --- the same cleaning logic as one DuckDB SQL script ---

_RATE_RULES = "\n".join(
    f"        WHEN {c} IS NULL OR {c} < 0 OR {c} > 1 THEN '{c} not in [0, 1]'"
    for c in ("ctr", "svr", "lvtr", "htr")
)

DUCKDB_SQL = f"""
CREATE OR REPLACE TEMP TABLE staged AS
WITH numbered AS (
    SELECT *, row_number() OVER () AS _rn FROM {{pushes}}
), checked AS (
    SELECT n.*, v.topic AS _topic, v.video_id IS NOT NULL AS _known,
           row_number() OVER (PARTITION BY n.push_id ORDER BY n._rn) AS _dup
    FROM numbered n LEFT JOIN (SELECT DISTINCT ON (video_id) * FROM {{videos}}) v USING (video_id)
), reasons AS (
    SELECT *, CASE
        WHEN push_id IS NULL OR trim(CAST(push_id AS VARCHAR)) = '' THEN 'missing push_id'
        WHEN video_id IS NULL OR trim(CAST(video_id AS VARCHAR)) = '' THEN 'missing video_id'
        WHEN pv IS NULL THEN 'non-numeric pv'
        WHEN pv < 0 THEN 'negative pv'
        WHEN clicks IS NULL THEN 'non-numeric clicks'
        WHEN clicks < 0 THEN 'negative clicks'
        WHEN clicks > pv THEN 'clicks > pv'
{_RATE_RULES}
        WHEN text IS NULL OR trim(text) = '' THEN 'empty text'
        WHEN length(text) > 500 THEN 'text over 500 chars'
        WHEN NOT _known THEN 'unknown video_id'
        WHEN _dup > 1 THEN 'duplicate push_id'
        ELSE '' END AS _invalid
    FROM checked
), hard AS (
    SELECT *, concat_ws('; ',
        CASE WHEN NOT ctr > $min_ctr THEN 'ctr<=' || $min_ctr_s END,
        CASE WHEN NOT svr < $max_svr THEN 'svr>=' || $max_svr_s END,
        CASE WHEN NOT lvtr > $min_lvtr THEN 'lvtr<=' || $min_lvtr_s END,
        CASE WHEN NOT htr < $max_htr THEN 'htr>=' || $max_htr_s END,
        CASE WHEN NOT pv > $min_pv THEN 'pv<=' || $min_pv_s END) AS _hard
    FROM reasons
), soft AS (
    SELECT *,
        quantile_cont(ctr, $q_lo) OVER w AS _lo,
        quantile_cont(ctr, $q_hi) OVER w AS _hi,
        count(*) OVER w AS _size
    FROM hard WHERE _invalid = '' AND _hard = ''
    WINDOW w AS (PARTITION BY coalesce(_topic, '<unknown>'))
)
SELECT * EXCLUDE (_lo, _hi, _size, _hard),
    CASE WHEN _size < $min_size OR (ctr >= _lo AND ctr <= _hi) THEN ''
         ELSE 'soft' END AS _soft,
    0.3 + 0.35 * least(ctr, 0.1) / 0.1
        + 0.35 * pow(ln(least(greatest(pv, 1), 10000)) / ln(10000), 2) AS confidence
FROM soft
UNION ALL BY NAME
SELECT * EXCLUDE (_hard), 'hard: ' || _hard AS _soft, NULL AS confidence
FROM hard WHERE _invalid = '' AND _hard <> ''
UNION ALL BY NAME
SELECT * EXCLUDE (_hard), 'invalid: ' || _invalid AS _soft, NULL AS confidence
FROM hard WHERE _invalid <> '';
"""


def duckdb_clean(con, pushes_ref: str, videos_ref: str, cfg) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the cleaning SQL; returns (cleaned, removed) as pandas frames like `clean_pushes`."""
    params = {
        "min_ctr": cfg.min_ctr,
        "max_svr": cfg.max_svr,
        "min_lvtr": cfg.min_lvtr,
        "max_htr": cfg.max_htr,
        "min_pv": cfg.min_pv,
        "q_lo": cfg.quantile_low,
        "q_hi": cfg.quantile_high,
        "min_size": cfg.min_cluster_size,
    }
    params |= {f"{k}_s": f"{v:g}" for k, v in params.items() if k.startswith(("min", "max"))}
    params = {k: v for k, v in params.items() if k != "min_size_s"}
    con.execute(DUCKDB_SQL.format(pushes=pushes_ref, videos=videos_ref), params)
    drop = "EXCLUDE (_rn, _dup, _known, _invalid, _soft)"
    cleaned = con.sql(
        f"SELECT * {drop}, _topic AS cluster FROM staged WHERE _soft = '' ORDER BY _rn"
    ).df()
    removed = con.sql(f"SELECT * {drop}, _soft AS reject_reason FROM staged WHERE _soft <> ''").df()
    return cleaned, removed


# --- one timed run per fresh process, so peak RSS belongs to that implementation alone ---


def _run(impl: str, source: str, data_dir: str, queue) -> None:
    from pushgen.data.clean import CleanConfig, clean_pushes

    cfg = CleanConfig()
    pushes_path, videos_path = f"{data_dir}/pushes.parquet", f"{data_dir}/videos.parquet"
    videos = pd.read_parquet(videos_path)
    pushes = pd.read_parquet(pushes_path) if source == "memory" else None
    start = time.perf_counter()
    if impl == "pandas":
        result = clean_pushes(
            pd.read_parquet(pushes_path) if pushes is None else pushes, cfg, videos
        )
        cleaned, removed = result.cleaned, result.removed
    else:
        import duckdb

        con = duckdb.connect()
        con.register("videos_df", videos)
        if pushes is not None:
            con.register("pushes_df", pushes)
        ref = "pushes_df" if pushes is not None else f"read_parquet('{pushes_path}')"
        cleaned, removed = duckdb_clean(con, ref, "videos_df", cfg)
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    kept = cleaned.set_index("push_id")["confidence"].sort_index()
    queue.put((seconds, peak_gb, len(cleaned), len(removed), kept))


def timed(impl: str, source: str, data_dir: str) -> tuple[float, float, int, int, pd.Series]:
    """Run one implementation in a fresh process; (seconds, peak GB, kept, removed, confidences)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(impl, source, data_dir, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from bench.record import record

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="pushes in the history")
    parser.add_argument("--repeat", type=int, default=3, help="runs per implementation (best kept)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as data_dir:
        pushes, videos = synthetic_history(args.rows)
        pushes.to_parquet(Path(data_dir) / "pushes.parquet", index=False)
        videos.to_parquet(Path(data_dir) / "videos.parquet", index=False)
        del pushes
        jobs = [(impl, src) for src in ("memory", "parquet") for impl in ("pandas", "duckdb")]
        best: dict[tuple[str, str], tuple] = {}
        for impl, src in tqdm(jobs * args.repeat, desc="clean runs", disable=None):
            run = timed(impl, src, data_dir)
            if (impl, src) not in best or run[0] < best[impl, src][0]:
                best[impl, src] = run

    # both implementations must keep the same pushes with the same weights
    for src in ("memory", "parquet"):
        a, b = best["pandas", src][4], best["duckdb", src][4]
        if not (a.index.equals(b.index) and np.allclose(a.to_numpy(), b.to_numpy())):
            raise SystemExit(f"pandas and duckdb disagree on the kept pushes ({src})")

    table = Table(title=f"clean_pushes on {args.rows:,} pushes (best of {args.repeat})")
    for col in (
        "input",
        "implementation",
        "seconds",
        "peak RSS GB",
        "kept",
        "removed",
        "duckdb / pandas",
    ):
        table.add_column(col, justify="right")
    for (impl, src), (sec, gb, kept, removed, _) in best.items():
        ratio = best["duckdb", src][0] / sec
        table.add_row(
            src, impl, f"{sec:.2f}", f"{gb:.2f}", f"{kept:,}", f"{removed:,}", f"{ratio:.2f}x"
        )
    Console().print(table)
    for (impl, src), (sec, *_rest) in best.items():
        if impl == "pandas":
            record(
                "clean",
                f"{args.rows:,} pushes, pandas, {src}",
                sec,
                best["duckdb", src][0],
                "DuckDB SQL",
            )


if __name__ == "__main__":
    main()
