"""Dirty serving logs: no crash, no silent coercion, duplicates set aside and counted.

Each test here failed before issue #27: the two crashes (a non-numeric score beside another
rejected row; a half-written last JSONL line), the coercions (an unparseable `guard_ok` read as
True, an unparseable `served_at` dropped uncounted, digit-only ids read from JSONL as integers so
that every feedback row was "unknown", a log with only the contract's 8 columns counting every
candidate as guarded) and duplicated rows merging into one request. The logs come from the
independent traffic of `bench/traffic.py`.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.traffic import CONTRACT, Traffic
from monitoring.config import MonitorConfig
from monitoring.monitor import evaluate
from monitoring.report import run_monitoring
from monitoring.requests import request_table
from pushgen.cli.main import main

CFG = MonitorConfig(evidently=False, n_boot=20, min_reference_requests=40, window_requests=60)


@pytest.fixture(scope="module")
def traffic():
    return Traffic(seed=1, n_videos=60)


@pytest.fixture(scope="module")
def window(traffic):
    return traffic.window(60, seed=1)


def _reasons(rejected: pd.DataFrame) -> dict[str, int]:
    return rejected["reject_reason"].value_counts().to_dict()


def test_non_numeric_score_beside_another_rejected_row_is_set_aside_not_a_crash(window, tmp_path):
    log, fb = window
    log = log.astype({"reward_score": object})
    log.loc[3, "reward_score"] = "high"  # was: ArrowInvalid writing rejected.parquet
    log.loc[5, "text"] = " "
    summary = run_monitoring(log, fb, None, tmp_path, CFG)
    aside = pd.read_parquet(tmp_path / "rejected.parquet")
    assert _reasons(aside) == {"non-numeric reward_score": 1, "empty text": 1}
    assert summary["counts"]["rejected_serving_log"] == 2


def test_half_written_last_jsonl_line_is_set_aside_and_counted(window, tmp_path, capsys):
    log, fb = window
    logdir = tmp_path / "log"
    logdir.mkdir()
    lines = [json.dumps(r) for r in log.to_dict("records")]
    (logdir / "serving_log-20261201T000000-00001.jsonl").write_text(
        "\n".join(lines) + '\n{"request_id": "1001000', encoding="utf-8"
    )
    fb.to_json(tmp_path / "fb.jsonl", orient="records", lines=True)
    out = tmp_path / "out"
    args = ["monitor", "--log", str(logdir), "--feedback", str(tmp_path / "fb.jsonl")]
    assert main([*args, "--out", str(out)]) == 0  # was: a ValueError traceback
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["rejected_serving_log_file"] == 1
    reasons = summary["counts"]["rejected_reasons"]
    assert [k for k in reasons if k.startswith("malformed JSON line")] and sum(
        reasons.values()
    ) == 1
    # digit-only ids, written as JSON strings, stay strings: every feedback row joins
    assert summary["counts"]["with_feedback"] == summary["counts"]["requests"] == 60
    assert "rejected_feedback" not in summary["counts"]


def test_digit_only_ids_read_as_numbers_still_join_their_feedback(window):
    log, fb = window
    as_numbers = log.assign(request_id=log["request_id"].astype(int))
    fb_numbers = fb.assign(request_id=fb["request_id"].astype(int))
    req, rejected, counts = request_table(as_numbers, fb_numbers)
    assert req["request_id"].map(type).eq(str).all()
    assert counts["with_feedback"] == len(req) and rejected.empty


def test_unparseable_guard_ok_and_served_at_are_set_aside_with_reasons(window):
    log, fb = window
    log = log.astype({"guard_ok": object})
    log.loc[2, "guard_ok"] = "maybe"  # was: read as True
    log.loc[10, "served_at"] = "yesterday-ish"  # was: the request vanished from the windows
    req, rejected, counts = request_table(log, fb)
    assert _reasons(rejected) == {"guard_ok is not a boolean": 1, "unparseable served_at": 1}
    assert counts["rejected_serving_log"] == 2
    assert req["served_at"].notna().all()


def test_duplicates_are_set_aside_and_reused_ids_rejected_with_their_reason(traffic):
    log, fb = traffic.window(60, fault="duplicates", seed=2)
    copies = int(log.duplicated().sum())
    assert copies > 0
    req, rejected, counts = request_table(log, fb)
    assert _reasons(rejected) == {"duplicate row": copies}
    assert len(req) == 60  # was: duplicated requests read as a generator writing twice
    assert (req["n_candidates"] == 8).all()
    # one id carrying two videos, or two times: the whole request is rejected, with why
    clean, _ = traffic.window(60, seed=3)
    ids = clean["request_id"].drop_duplicates()
    two_videos = clean["request_id"] == ids.iloc[0]
    two_times = clean["request_id"] == ids.iloc[1]
    clean.loc[two_videos & (clean["candidate_index"] == 0), "video_id"] = "vid-other"
    clean.loc[two_times & (clean["candidate_index"] == 1), "served_at"] = "2026-10-20T00:00:00"
    req, rejected, _ = request_table(clean, None)
    assert _reasons(rejected) == {
        "request_id reused: its rows carry different video_ids": 8,
        "request_id reused: its rows carry different served_at times": 8,
    }
    assert len(req) == 58


def test_a_log_with_only_the_contract_columns_says_which_columns_are_missing(traffic):
    log, fb = traffic.window(240, fault="contract_only", seed=4)
    assert list(log.columns) == list(CONTRACT)
    ref_log, ref_fb = traffic.window(480, seed=5, day=3)
    summary, _ = evaluate(log, fb, ref_log, ref_fb, MonitorConfig(evidently=False, n_boot=30))
    checks = {c["name"]: c for c in summary["checks"]}
    guard = checks["guard_reject_share"]  # was: 0% rejected, every candidate counted as guarded
    assert guard["level"] == "not evaluated" and guard["detail"].startswith(
        "column guard_ok missing"
    )
    assert "guard_ok" in summary["counts"]["missing_columns"]
    assert summary["verdict"] != "alert" and not summary["retrain"]
    assert summary["parts"]["inputs"] == "not evaluated"  # no topic, no caption columns


def test_a_log_with_no_readable_line_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "serving_log-20261201T000000-00001.jsonl"
    path.write_text('{"request_id": "1\n[1, 2]\n', encoding="utf-8")
    assert main(["monitor", "--log", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no readable serving-log row (2 set aside)" in err
