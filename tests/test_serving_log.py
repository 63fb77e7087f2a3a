"""The serving log's windows: rotated by rows and by time, shipped as parquet to the artifact
store (a local directory, or moto's S3 server on 127.0.0.1 through boto3), kept when S3 is down."""

from __future__ import annotations

import os
import socket
import time

import boto3
import pytest

from pushgen.data.contracts import read_table
from serving.serving_log import (
    ServingLog,
    ServingLogConfig,
    load_serving_windows,
    read_serving_log,
    read_serving_windows,
)


def _s3():
    return boto3.client("s3", endpoint_url=os.environ["PUSHGEN_S3_ENDPOINT"])


def _rows(request_id: str, n: int = 3) -> list[dict]:
    return [
        {
            "request_id": request_id,
            "video_id": "v1",
            "category": "Suspense",
            "text": f"push {i}",
            "reward_score": 0.1 * i if i else None,
            "selected": i == 1,
            "model_version": "v1-abc",
            "served_at": "2026-12-03T00:00:00+00:00",
            "guard_ok": True,
            "guard_reasons": "",
            "degraded": False,
        }
        for i in range(n)
    ]


@pytest.fixture
def moto_s3(monkeypatch):
    """A moto S3 server of this test's own, not the session's `s3_endpoint` (conftest.py): the
    outage test stops it and starts it again on the same port, which would cut off the others."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:  # a fixed port, so a stopped server can come back on it
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PUSHGEN_S3_ENDPOINT": endpoint,
    }.items():
        monkeypatch.setenv(k, v)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="logs")
    yield server
    server.stop()


def test_windows_ship_to_s3_by_rows_and_by_time(tmp_path, moto_s3):
    log = ServingLog(
        ServingLogConfig(tmp_path / "log", max_rows=6, ship_to="s3://logs/srv/pod-0", window_s=0.5)
    )
    log.write(_rows("r1"))
    log.write(_rows("r2"))  # 6 rows: the file is full
    log.write(_rows("r3"))  # -> rotation by rows, the first window ships
    time.sleep(0.6)
    log.write(_rows("r4"))  # -> rotation by time
    log.close()  # the open window ships at shutdown
    assert log.unshipped() == []
    shipped, rejected = read_serving_windows("s3://logs/srv/pod-0")
    local, _ = read_serving_log(tmp_path / "log")
    assert rejected.empty and len(shipped) == len(local) == 12
    assert list(shipped["request_id"].drop_duplicates()) == ["r1", "r2", "r3", "r4"]
    keys = _s3().list_objects_v2(Bucket="logs", Prefix="srv/pod-0/windows/")
    assert len(keys["Contents"]) == 3  # three windows, three parquet files
    assert shipped["reward_score"].isna().sum() == 4  # rejected candidates keep their None


def test_windows_wait_while_s3_is_down_and_ship_when_it_is_back(tmp_path, moto_s3):
    moto_s3.stop()  # nothing listens on the endpoint now
    log = ServingLog(ServingLogConfig(tmp_path / "log", max_rows=3, ship_to="s3://logs/srv/p"))
    log._store.config.connect_timeout = 0.5
    log._store.config.max_attempts = 1
    log.write(_rows("r1"))
    log.write(_rows("r2"))  # rotation: the upload of r1's window fails, it stays queued
    log._shipping.result()
    assert [p.name for p in log.unshipped()] == [sorted((tmp_path / "log").glob("*.jsonl"))[0].name]
    assert len(read_serving_log(tmp_path / "log")[0]) == 6  # nothing lost locally
    moto_s3.start()  # same port
    _s3().create_bucket(Bucket="logs")
    log.close()
    assert log.unshipped() == []
    shipped, _ = read_serving_windows("s3://logs/srv/p")
    assert list(shipped["request_id"].drop_duplicates()) == ["r1", "r2"]


def test_a_local_store_holds_windows_the_pipeline_reads_as_one_table(tmp_path):
    log = ServingLog(
        ServingLogConfig(tmp_path / "log", max_rows=3, ship_to=str(tmp_path / "store"))
    )
    for rid in ("a", "b", "c"):
        log.write(_rows(rid))
    log.close()
    table = read_table(tmp_path / "store" / "windows", "serving_log")  # what the importer passes
    assert len(table) == 9 and set(table["request_id"]) == {"a", "b", "c"}


def test_pushgen_monitor_reads_the_shipped_windows_as_it_reads_the_table(tmp_path):
    import json

    from monitoring.logsim import StreamConfig, simulate_log
    from pushgen.cli.main import main
    from pushgen.data.simulator import SimConfig, simulate

    world = simulate(SimConfig(n_videos=30, seed=3)).world
    log_df, feedback = simulate_log(world, StreamConfig(n_requests=40, seed=1))
    log = ServingLog(ServingLogConfig(tmp_path / "log", max_rows=100, ship_to=str(tmp_path / "st")))
    for _, part in log_df.groupby("request_id", sort=False):
        log.write(json.loads(part.to_json(orient="records")))
    log.close()
    log_df.to_parquet(tmp_path / "log.parquet")
    feedback.to_parquet(tmp_path / "fb.parquet")
    (tmp_path / "cfg.json").write_text('{"n_boot": 20, "evidently": false}')
    summaries = []
    for source in (str(tmp_path / "st"), str(tmp_path / "log.parquet")):
        out = tmp_path / f"out{len(summaries)}"
        args = [
            "monitor",
            "--log",
            source,
            "--feedback",
            str(tmp_path / "fb.parquet"),
            "--out",
            str(out),
            "--config",
            str(tmp_path / "cfg.json"),
        ]
        assert main(args) == 0
        summary = json.loads((out / "summary.json").read_text())
        summaries.append({k: summary[k] for k in ("verdict", "counts", "window")})
    assert summaries[0] == summaries[1] and summaries[0]["counts"]


def test_every_pods_windows_share_one_prefix_and_read_back_by_time_range(tmp_path):
    """Replicas ship under one deployment prefix, the pod in each file name (a fixed URI for the
    scheduled monitor, whatever the revision or scale); a time range picks the rows served in it."""
    import pandas as pd

    store = str(tmp_path / "store" / "serving-log" / "pushgen" / "pushgen")
    now = pd.Timestamp.now(tz="UTC")
    for pod, ago in (("pushgen-predictor-00001-a", "1D"), ("pushgen-predictor-00002-b", "0s")):
        log = ServingLog(ServingLogConfig(tmp_path / pod, max_rows=3, ship_to=store, pod=pod))
        rows = [{**r, "served_at": (now - pd.Timedelta(ago)).isoformat()} for r in _rows(pod)]
        log.write(rows)
        log.close()
    names = sorted(p.name for p in (tmp_path / "store").rglob("*.parquet"))
    assert [n.split("-", 2)[2].rsplit("-", 1)[0] for n in names] == [
        "pushgen-predictor-00001-a",
        "pushgen-predictor-00002-b",
    ]
    every, _ = read_serving_windows(store)
    assert len(every) == 6
    hour, rejected = read_serving_windows(store, now - pd.Timedelta("1h"), now + pd.Timedelta("1h"))
    assert rejected.empty and set(hour["request_id"]) == {"pushgen-predictor-00002-b"}
    assert load_serving_windows(store, end=now - pd.Timedelta("2D")).empty
