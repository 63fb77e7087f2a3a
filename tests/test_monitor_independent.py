"""The monitor on traffic it did not simulate (bench/traffic.py shares no code with logsim).

Fast tier: a small reference, one window of each fault of issue #27's table and a few healthy
windows at 240 requests, each judged right. The full table (100 healthy windows and 5 seeds per
fault at 240 and 1,000 requests; `python -m bench.detection`) is the slow test, and its results
file (docs/results/monitor_detection.json) is what the README's table comes from.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd
import pytest

from bench.detection import judge_window, main
from bench.traffic import FAULTS, Traffic
from monitoring.calibrate import calibrate
from monitoring.config import MonitorConfig
from monitoring.requests import request_table


@pytest.fixture(scope="module")
def setup():
    traffic = Traffic(seed=0, n_videos=200)
    ref_log, ref_fb = traffic.week(requests_per_day=800, days=4)
    reference, _, _ = request_table(ref_log, ref_fb)
    cfg = MonitorConfig(n_boot=80)
    return traffic, calibrate(reference.assign(mature=True), 240, 80), cfg


def test_the_traffic_generator_shares_no_code_with_logsim():
    source = Path("bench/traffic.py").read_text()
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not any(m.startswith("monitoring") for m in imported)
    assert "logsim" not in source.replace("monitoring/logsim.py", "")


@pytest.mark.parametrize("fault", [f for f in FAULTS if f != "healthy"])
def test_each_fault_is_judged_right(setup, fault):
    traffic, cal, cfg = setup
    row = judge_window(traffic, 240, fault, 0, cal, cfg)
    assert row["right"], row


def test_healthy_windows_with_daily_rhythm_raise_no_alert(setup):
    traffic, cal, cfg = setup
    rows = [judge_window(traffic, 240, "healthy", seed, cal, cfg) for seed in range(6)]
    assert all(r["right"] for r in rows), [r for r in rows if not r["right"]]


@pytest.mark.slow
def test_full_detection_table(tmp_path):
    assert main(["--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "monitor_detection.json").read_text())
    assert doc["all_right"], [r for r in doc["rows"] if r["right"] < r["windows"]]
    assert all(rate <= 0.02 for rate in doc["false_alarm_rate"].values())


def test_readme_detection_section_is_rendered_from_the_results_file():
    from bench.detection import read_section, render_section

    doc = json.loads(Path("docs/results/monitor_detection.json").read_text())
    assert read_section() == render_section(doc), "run `python -m bench.detection --readme-only`"
    assert doc["all_right"] and all(rate <= 0.02 for rate in doc["false_alarm_rate"].values())


def test_clicks_not_yet_mature_are_not_judged_and_the_banner_says_so(setup, tmp_path, capsys):
    from monitoring.report import headline
    from pushgen.cli.main import main

    traffic, _, _ = setup
    ref_log, ref_fb = traffic.window(720, seed=11, day=2)
    log, fb = traffic.window(240, seed=12, day=9)
    end = pd.to_datetime(log["served_at"], format="ISO8601").max()
    paths = {}
    for name, df in (("log", log), ("fb", fb), ("ref", ref_log), ("ref_fb", ref_fb)):
        paths[name] = str(tmp_path / f"{name}.parquet")
        df.to_parquet(paths[name])
    out = tmp_path / "out"
    args = ["monitor", "--log", paths["log"], "--feedback", paths["fb"], "--out", str(out)]
    args += ["--reference", paths["ref"], "--reference-feedback", paths["ref_fb"]]
    assert main([*args, "--as-of", str(end), "--feedback-delay-h", "24"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    ctr = next(c for c in summary["checks"] if c["name"] == "chosen_ctr")
    assert ctr["level"] == "not evaluated" and "mature feedback" in ctr["detail"]
    assert summary["feedback"]["mature_share"] == 0.0
    assert "chosen_ctr (0 of" in headline(summary) and not summary["retrain"]
    assert "retrain: no" in capsys.readouterr().out
