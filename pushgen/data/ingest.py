"""Load the pipeline's source tables: simulate a push world, or ingest real tables, validated.

With an empty location it runs `pushgen.data.simulator` (a world with known ground truth); otherwise it
reads `videos`, `pushes` and `ab_tests` (parquet, csv or jsonl) from a local directory or an
`s3://bucket/prefix` through `pushgen.core.store`. Every table is checked against its data contract;
rejected rows go to `rejected.parquet` with their reason and table, and are counted.

    load_source("", "runs/data", n_videos=30)          # simulate
    load_source("s3://lake/pushes/2026-11", "runs/data")  # ingest
    load_source("upworthy_ab.parquet", "runs/data")      # one file in the Upworthy archive layout

A single local `.parquet`/`.csv` file is read as an A/B archive in the Upworthy layout
(`pushgen.data.upworthy`): stories become items, headlines pushes, arms A/B tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pushgen.core.errors import DataContractError
from pushgen.core.store import ArtifactStore, hash_paths, is_remote, sha256_file
from pushgen.data.contracts import read_table, validate, write_table
from pushgen.data.upworthy import ingest_upworthy, is_upworthy_file

TABLES = ("videos", "pushes", "ab_tests")
SUFFIXES = (".parquet", ".csv", ".jsonl")


def load_source(data_location: str, out_dir: str, n_videos: int = 200, seed: int = 0) -> dict:
    """Write validated `videos/pushes/ab_tests.parquet`, `rejected.parquet`, `world.json` to out_dir.

    Returns {"simulated", "rows": {table: n}, "rejected": {table: n}, "source_data_hash"}. `world.json` holds the
    simulator's world, or `{}` for real data (it has no ground truth).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if is_upworthy_file(data_location.strip()):
        return ingest_upworthy(data_location.strip(), out)
    if data_location.strip():
        raw = _read_tables(data_location.strip(), out / "raw")
        # Real data has no ground truth; a simulated world written earlier travels with its tables.
        world_file = out / "raw" / "world.json"
        (out / "world.json").write_text(world_file.read_text() if world_file.exists() else "{}")
    else:
        raw = _simulate(out / "sim", n_videos, seed)
        world_file = out / "sim" / "world.json"
        (out / "world.json").write_text(world_file.read_text() if world_file.exists() else "{}")
    report: dict = {"simulated": not data_location.strip(), "rows": {}, "rejected": {}}
    # Videos first: pushes and A/B arms must point at a known, valid video.
    valid_videos, bad_videos = validate("videos", raw["videos"])
    asides = [bad_videos.assign(table="videos")]
    write_table(valid_videos, out / "videos.parquet")
    report["rows"]["videos"], report["rejected"]["videos"] = len(valid_videos), len(bad_videos)
    for name in ("pushes", "ab_tests"):
        valid, bad = validate(name, raw[name], known_video_ids=valid_videos["video_id"])
        write_table(valid, out / f"{name}.parquet")
        asides.append(bad.assign(table=name))
        report["rows"][name], report["rejected"][name] = len(valid), len(bad)
    bad_rows = [a.astype(str) for a in asides if len(a)]
    aside = pd.concat(bad_rows, ignore_index=True) if bad_rows else pd.DataFrame()
    if aside.empty:
        aside = pd.DataFrame({"table": pd.Series(dtype=str), "reject_reason": pd.Series(dtype=str)})
    write_table(aside.assign(step="ingest"), out / "rejected.parquet")
    # The release manifest records what data a model was trained on: the hash of the valid tables.
    report["source_data_hash"] = hash_paths([out / f"{n}.parquet" for n in TABLES])
    (out / "ingest_report.json").write_text(json.dumps(report, indent=2))
    return report


def _simulate(out_dir: Path, n_videos: int, seed: int) -> dict:
    """Run the push-world simulator and write its tables (and world) to out_dir."""
    from pushgen.data.simulator import SimConfig, simulate, write_simulation

    sim = simulate(SimConfig(n_videos=n_videos, seed=seed))
    write_simulation(sim, out_dir)
    return {"videos": sim.videos, "pushes": sim.pushes, "ab_tests": sim.ab_tests}


def _read_tables(location: str, scratch: Path) -> dict:
    """Read the three tables from a directory or S3 prefix; a clear error names what is missing."""
    store = ArtifactStore.from_uri(location)
    if not is_remote(location) and not Path(store.uri).is_dir():
        raise DataContractError(f"data location {location} does not exist or is not a directory")
    tables = {}
    for name in TABLES:
        key = next((f"{name}{s}" for s in SUFFIXES if store.exists(f"{name}{s}")), None)
        if key is None:
            raise DataContractError(
                f"{location}: no {name} table (looked for {', '.join(name + s for s in SUFFIXES)})"
            )
        local = store.get_file(key, Path(scratch) / key)
        tables[name] = read_table(local, name)
    if store.exists("world.json"):
        store.get_file("world.json", Path(scratch) / "world.json")
    return tables


def content_hash(data_location: str, n_videos: int = 200, seed: int = 0) -> str:
    """sha256 over the bytes of the source tables at `data_location` (what caching keys on).

    New data written to the same URI gives a new hash, so a pipeline whose ingest step takes
    this hash as a parameter reads it again instead of serving the old tables from the cache.
    An empty location means "simulate": the hash is of the simulator settings. Files are read
    through `pushgen.core.store` (local directory or S3), the first matching suffix per table, as
    `load_source` reads them.
    """
    import hashlib
    import tempfile

    location = data_location.strip()
    if not location:
        return hashlib.sha256(f"simulate:n_videos={n_videos}:seed={seed}".encode()).hexdigest()
    if is_upworthy_file(location):
        return hashlib.sha256(f"upworthy\0{sha256_file(location)}".encode()).hexdigest()
    store = ArtifactStore.from_uri(location)
    if not is_remote(location) and not Path(store.uri).is_dir():
        raise DataContractError(f"data location {location} does not exist or is not a directory")
    h = hashlib.sha256()
    with tempfile.TemporaryDirectory() as tmp:
        for name in (*TABLES, "world"):
            suffixes = (".json",) if name == "world" else SUFFIXES
            key = next((f"{name}{s}" for s in suffixes if store.exists(f"{name}{s}")), None)
            if key is None:
                if name == "world":
                    continue
                raise DataContractError(f"{location}: no {name} table")
            local = store.get_file(key, Path(tmp) / key)
            h.update(f"{key}\0".encode())
            h.update(sha256_file(local).encode())
    return h.hexdigest()
