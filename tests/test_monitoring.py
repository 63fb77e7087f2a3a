"""Monitoring on log-shaped streams: exploration, calibrated bands, every fault told apart, report."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from monitoring.calibrate import calibrate, judge, verdict
from monitoring.config import MonitorConfig
from monitoring.logsim import FAULTS, StreamConfig, simulate_log, stream
from monitoring.power import EXPECTED
from monitoring.report import run_monitoring
from monitoring.requests import request_table
from monitoring.sample_size import required_n, windows_needed
from monitoring.signals import SIGNALS
from pipelines.training import run_in_process
from pushgen.cli.main import main
from pushgen.core.errors import ConfigError, DataContractError
from pushgen.data.contracts import CONTRACTS, validate
from serving.explore import ALL_REJECTED, DEGRADED, SERVED, choose, log_rows

N = 240  # requests per window in these tests


@pytest.fixture(scope="module")
def world(sim):
    return sim.world


@pytest.fixture(scope="module")
def reference(world):
    """A healthy reference stream (log and feedback)."""
    return simulate_log(world, StreamConfig(n_requests=1500, seed=1))


@pytest.fixture(scope="module")
def calibration(reference):
    req, _, _ = request_table(*reference)
    return calibrate(req, N, n_boot=80, seed=0)


def _window(world, fault: str, seed: int, n: int = N, start: str = "2026-11-01T00:00:00+00:00"):
    return simulate_log(world, StreamConfig(n_requests=n, fault=fault, seed=seed, start=start))


LATER = "2026-12-01T00:00:00+00:00"  # after every stream the tests build


def _monitor(log, feedback, reference, tmp_path, cfg: MonitorConfig) -> dict:
    """run_monitoring against the healthy reference window (pushes and their feedback)."""
    return run_monitoring(
        log, feedback, reference[0], tmp_path, cfg, reference_feedback=reference[1]
    )


def test_choose_explores_epsilon_uniformly_with_propensities():
    rng = np.random.default_rng(0)
    scores, ok = [0.1, None, 2.0, 1.0], [True, False, True, True]
    draws = [choose(scores, ok, 0.2, rng) for _ in range(4000)]
    props = draws[0].propensities
    assert props[1] is None and math.isclose(sum(p for p in props if p), 1.0)
    assert props[2] == pytest.approx(0.8 + 0.2 / 3) and props[0] == pytest.approx(0.2 / 3)
    explored = np.mean([d.explored for d in draws])
    assert abs(explored - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 4000)
    served = pd.Series([d.index for d in draws]).value_counts(normalize=True)
    assert 1 not in served.index and served[2] == pytest.approx(props[2], abs=0.03)
    assert all(d.index == 2 for d in draws if not d.explored)
    nothing = choose([None, None], [False, False], 0.05, rng)
    assert nothing.status == ALL_REJECTED and nothing.index is None and nothing.propensity is None
    degraded = choose([None, None, None], [False, True, True], 0.05, rng, degraded=True)
    assert degraded.status == DEGRADED and degraded.index == 1 and degraded.propensity == 1.0
    with pytest.raises(ValueError, match="epsilon"):
        choose([1.0], [True], 1.5)


def test_stream_has_the_server_log_schema_and_feedback_for_every_request(world):
    log, feedback = _window(world, "caption_outage", seed=3)
    assert set(CONTRACTS["serving_log"].columns) <= set(log.columns)
    valid, rejected = validate("serving_log", log)
    assert rejected.empty and len(valid) == len(log)
    # the columns are exactly what the transformer writes (serving.explore.log_rows)
    choice = choose([1.0], [True], 0.0)
    cand = [{"category": "Humor", "text": "x", "score": 1.0, "guard_ok": True}]
    cand[0] |= {"style": "Humor", "win_prob": None}  # what the transformer adds per candidate
    extra = {f"latency_{k}_ms": 1.0 for k in ("feast", "generate", "rank")}
    extra |= {"generator_version": "g", "ranker_version": "r"}
    server_row = log_rows(
        "r",
        "v",
        cand,
        choice,
        epsilon=0.05,
        model_version="m",
        served_at="t",
        caption="c",
        extra=extra,
    )[0]
    assert set(log.columns) == set(server_row)
    per_request = log.groupby("request_id")
    assert (per_request.size() == len(world.categories)).all()
    assert (per_request["selected"].sum() <= 1).all()
    assert log.loc[~log["guard_ok"], "reward_score"].isna().all()  # guard Nones, as served
    assert set(feedback["request_id"]) == set(log["request_id"])
    statuses = per_request["status"].first()
    assert {SERVED, ALL_REJECTED} <= set(statuses)


def test_degraded_and_all_rejected_requests_are_counted_and_keep_their_feedback(world):
    log, feedback = simulate_log(
        world, StreamConfig(n_requests=N, fault="caption_outage", degraded_rate=0.1, seed=4)
    )
    req, rejected, counts = request_table(log, feedback)
    assert rejected.empty  # no feedback row lost as "unknown request_id"
    assert counts["requests"] == log["request_id"].nunique() == len(req)
    assert counts["degraded"] > 0 and counts["all_rejected"] > 0
    assert counts["served"] + counts["degraded"] + counts["all_rejected"] == counts["requests"]
    assert req.loc[req["status"] == DEGRADED, "pv"].gt(0).all()
    assert req.loc[req["status"] == ALL_REJECTED, "pv"].eq(0).all()
    assert counts["with_feedback"] == len(req)


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_raises_its_alert_and_blames_its_part(world, calibration, fault):
    req, _, _ = request_table(*_window(world, fault, seed=100 + FAULTS.index(fault)))
    v = verdict(judge(req, calibration))
    if fault == "healthy":
        assert v["verdict"] != "alert" and v["blamed"] is None, v
    else:
        assert v["verdict"] == "alert" and v["blamed"] == EXPECTED[fault], v


def test_bands_are_calibrated_per_window_size(reference):
    req, _, _ = request_table(*reference)
    small, large = calibrate(req, 100, n_boot=60), calibrate(req, 1000, n_boot=60)
    band = "chosen_ctr"  # its floor is 30% of the reference CTR, whatever the window size
    width = {n: c.bands[band].center - c.bands[band].alert_lo for n, c in ((1, small), (2, large))}
    assert width[1] >= width[2] > 0  # more requests: never a wider healthy band
    for c in (small, large):  # ... but never narrower than the floor: floors do not shrink
        assert c.bands[band].center - c.bands[band].alert_lo >= 0.3 * c.bands[band].center - 1e-12
    assert small.bands[band].warn_lo > small.bands[band].alert_lo
    floored = small.bands["caption_empty_share"]  # healthy: 0 empty captions, floor 2 points
    assert floored.alert_hi == pytest.approx(floored.center + 0.02)
    assert {s.name for s in SIGNALS} == set(small.bands)


def test_sample_size_rule():
    assert required_n(1.0, 0.5, 0.01) > required_n(1.0, 1.0, 0.01) > 1
    assert required_n(1.0, 0.5, 0.001) > required_n(1.0, 0.5, 0.01)
    assert windows_needed(1.0) == 1 and windows_needed(0.5) == 5 and windows_needed(0) is None


def test_a_handful_of_requests_is_not_evaluated_and_says_what_it_needs(world, reference, tmp_path):
    log, feedback = _window(world, "full_collapse", seed=5, n=6)
    summary = _monitor(
        log, feedback, reference, tmp_path, MonitorConfig(evidently=False, n_boot=30)
    )
    assert summary["verdict"] == "not evaluated" and not summary["retrain"]
    assert re.search(r"judged from \d+ requests", summary["reason"])
    assert all(c["level"] == "not evaluated" for c in summary["checks"])
    assert all("needs" in c["detail"] for c in summary["checks"])
    assert "NOT EVALUATED" in (tmp_path / "report.html").read_text()


def _stream_log(world, fault: str, windows: int = 3):
    healthy = stream(world, StreamConfig(n_requests=N, seed=700), windows - 1)
    parts = [*healthy, _window(world, fault, seed=800, start=LATER)]
    return (
        pd.concat([p[0] for p in parts], ignore_index=True),
        pd.concat([p[1] for p in parts], ignore_index=True),
    )


def test_report_banner_agrees_with_rows_and_charts_every_signal(world, reference, tmp_path):
    log, feedback = _stream_log(world, "random_ranker")
    summary = _monitor(log, feedback, reference, tmp_path, MonitorConfig(n_boot=60))
    assert summary["verdict"] == "alert" and summary["blamed"] == "ranker"
    assert summary["reward_drift"] and not summary["style_collapse"]
    assert summary["retrain_targets"] == ["ranker"]
    assert len(summary["history"]) == 3
    page = (tmp_path / "report.html").read_text()
    assert "ALERT: look at the ranker" in page
    alerting = [c["name"] for c in summary["checks"] if c["level"] == "alert"]
    assert alerting and all(
        c["part"] == "ranker" for c in summary["checks"] if c["level"] == "alert"
    )
    assert page.count("<svg") == len(SIGNALS)
    assert "Evidence (context, never an alert)" in page and "Evidently" in page
    assert re.search(r"served \d+\.\d%", page)  # shares, not counts
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["verdict"] == "alert" and len(on_disk["checks"]) == len(SIGNALS)


def test_healthy_report_is_ok_with_no_alert_row(world, reference, tmp_path):
    log, feedback = _stream_log(world, "healthy")
    summary = _monitor(
        log, feedback, reference, tmp_path, MonitorConfig(evidently=False, n_boot=60)
    )
    assert summary["verdict"] in ("ok", "warn") and not summary["retrain"]
    page = (tmp_path / "report.html").read_text()
    assert "ALERT" not in page and ">alert</td>" not in page


def test_without_reference_the_earlier_windows_are_the_reference(world, tmp_path):
    parts = stream(world, StreamConfig(n_requests=N, seed=900), 4)
    bad = _window(world, "full_collapse", seed=999, start=LATER)
    log = pd.concat([p[0] for p in parts] + [bad[0]], ignore_index=True)
    fb = pd.concat([p[1] for p in parts] + [bad[1]], ignore_index=True)
    summary = run_monitoring(log, fb, None, tmp_path, MonitorConfig(evidently=False, n_boot=40))
    assert (
        summary["reference"]["requests"] == 4 * N
        and "earlier windows" in summary["reference"]["source"]
    )
    assert summary["verdict"] == "alert" and summary["blamed"] == "generator"


def test_bad_rows_are_counted_and_kept_aside(world, reference, tmp_path):
    log, feedback = _window(world, "healthy", seed=6, n=60)
    first = feedback["request_id"].iloc[0]
    extra = pd.DataFrame(
        {"request_id": ["ghost-1", "ghost-2", first], "pv": [900, 800, 10], "clicks": [9, 8, 50]}
    )
    bad_log = pd.concat([log, log.head(1).assign(request_id="r-bad", text="  ")], ignore_index=True)
    summary = _monitor(
        bad_log,
        pd.concat([feedback, extra], ignore_index=True),
        reference,
        tmp_path,
        MonitorConfig(evidently=False, n_boot=20),
    )
    assert summary["counts"]["rejected_feedback"] == 3
    assert summary["counts"]["rejected_serving_log"] == 1
    aside = pd.read_parquet(tmp_path / "rejected.parquet")
    reasons = dict(zip(aside["request_id"], aside["reject_reason"], strict=True))
    assert reasons["ghost-1"] == reasons["ghost-2"] == "unknown request_id"
    assert reasons[first] == "clicks > pv"
    assert reasons["r-bad"] == "empty text"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda log: log.drop(columns=["reward_score"]), "missing column(s) ['reward_score']"),
        (lambda log: log.head(0), "no rows"),
    ],
)
def test_unusable_log_is_a_clear_error(world, tmp_path, change, message):
    log, feedback = _window(world, "healthy", seed=7, n=20)
    with pytest.raises(DataContractError, match=re.escape(message)):
        run_monitoring(change(log), feedback, None, tmp_path)


def test_config_rejects_bad_settings():
    with pytest.raises(ConfigError, match="false_alarm_rate"):
        MonitorConfig(false_alarm_rate=1.5)
    with pytest.raises(ConfigError, match="unknown monitor setting"):
        MonitorConfig.from_dict({"min_rows": 4})
    with pytest.raises(ConfigError, match="fault must be one of"):
        StreamConfig(fault="meteor").check()


def test_cli_monitor_and_report(world, reference, tmp_path, capsys):
    log, feedback = _stream_log(world, "topic_shift")
    paths = {}
    frames = (("log", log), ("feedback", feedback), ("ref", reference[0]), ("ref_fb", reference[1]))
    for name, df in frames:
        paths[name] = str(tmp_path / f"{name}.parquet")
        df.to_parquet(paths[name])
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"n_boot": 40, "evidently": false}')
    out = tmp_path / "out"
    args = [
        "monitor",
        "--log",
        paths["log"],
        "--feedback",
        paths["feedback"],
        "--reference",
        paths["ref"],
        "--reference-feedback",
        paths["ref_fb"],
        "--out",
        str(out),
        "--config",
        str(cfg),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "ALERT: look at the inputs" in printed and "topic_mix_js" in printed
    assert main([*args, "--fail-on-alert"]) == 1
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "topic_mix_js" in capsys.readouterr().out


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    missing = str(tmp_path / "nope.parquet")
    assert main(["monitor", "--log", missing, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err
    assert main(["monitor", "--out", str(tmp_path / "o")]) == 2
    assert "needs --log" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    bad_cfg = tmp_path / "cfg.json"
    bad_cfg.write_text('{"min_rows": 1}')
    assert (
        main(["monitor", "--log", missing, "--out", str(tmp_path / "o"), "--config", str(bad_cfg)])
        == 2
    )
    assert "unknown monitor setting" in capsys.readouterr().err


def test_monitor_component_compiles_and_runs_locally(world, tmp_path):
    from kfp import compiler, dsl

    from components.monitor import monitor

    parts = stream(world, StreamConfig(n_requests=120, seed=950), 4)
    bad = _window(world, "partial_collapse", seed=990, n=120, start=LATER)
    log = pd.concat([p[0] for p in parts] + [bad[0]], ignore_index=True)
    fb = pd.concat([p[1] for p in parts] + [bad[1]], ignore_index=True)
    paths = {}
    history = pd.DataFrame({"category": ["Humor"], "text": ["an old push"], "ctr": [0.05]})
    for name, df in (("log", log), ("feedback", fb), ("reference", history)):
        paths[name] = str(tmp_path / f"{name}.parquet")
        df.to_parquet(paths[name])

    @dsl.pipeline(name="monitor-only")
    def monitor_only(log_uri: str, feedback_uri: str, reference_uri: str) -> bool:
        imports = {
            name: dsl.importer(artifact_uri=uri, artifact_class=dsl.Dataset, reimport=False)
            for name, uri in (("log", log_uri), ("fb", feedback_uri), ("ref", reference_uri))
        }
        task = monitor(
            serving_log=imports["log"].output,
            feedback=imports["fb"].output,
            reference=imports["ref"].output,
            config_json='{"window_requests": 120, "n_boot": 40, "evidently": false}',
        )
        return task.outputs["retrain"]

    compiler.Compiler().compile(monitor_only, str(tmp_path / "monitor.yaml"))
    assert "monitor" in (tmp_path / "monitor.yaml").read_text()
    # historical pushes carry no candidates: the log's earlier windows are the reference
    uris = {"log_uri": paths["log"], "feedback_uri": paths["feedback"]}
    run = run_in_process(
        monitor_only, {**uris, "reference_uri": paths["reference"]}, tmp_path / "root"
    )
    assert run.output is True
    summaries = list((tmp_path / "root").rglob("summary"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert summary["style_collapse"] and summary["blamed"] == "generator"
    assert list((tmp_path / "root").rglob("report"))  # the HTML artifact


@pytest.mark.slow
def test_detection_table_command(tmp_path, capsys):
    from monitoring.power import main as power_main

    argv = [
        "--windows",
        "2",
        "--healthy-windows",
        "3",
        "--sizes",
        "240",
        "--reference",
        "1000",
        "--boot",
        "40",
        "--out",
        str(tmp_path),
    ]
    assert power_main(argv) == 0
    rows = json.loads((tmp_path / "detection.json").read_text())
    assert {r["fault"] for r in rows} == {"healthy", *EXPECTED}
    assert "| full_collapse | 240 |" in capsys.readouterr().out


@pytest.mark.slow
def test_report_renders_in_headless_chromium(world, reference, tmp_path):
    from monitoring.render import find_chromium, screenshot

    try:
        find_chromium()
    except ConfigError:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    log, feedback = _stream_log(world, "ranker_invented")
    summary = _monitor(
        log, feedback, reference, tmp_path, MonitorConfig(evidently=False, n_boot=30)
    )
    png = screenshot(summary["report_html"], tmp_path / "r.png", 800, 600, palette=False)
    from PIL import Image

    img = Image.open(png)
    assert img.size == (800, 600)
    colors = img.convert("RGB").getcolors(1 << 20)
    assert any(c[1] == (0xC0, 0x39, 0x2B) for c in colors)  # the red alert banner is drawn


def test_demo_monitor_stage_says_not_evaluated_on_a_handful_of_requests(world, tmp_path, capsys):
    from pushgen.cli.demo import DemoConfig, monitor, shipped_log
    from serving.serving_log import ServingLog, ServingLogConfig

    log, _ = _window(world, "healthy", seed=11, n=6)
    # as the demo's transformer does: JSONL locally, the closed window shipped to the store
    writer = ServingLog(ServingLogConfig(tmp_path / "serving", ship_to=str(shipped_log(tmp_path))))
    writer.write(log.to_dict("records"))
    writer.close()
    summary = monitor(DemoConfig(out=str(tmp_path), reference_requests=600), tmp_path, world)
    assert summary["verdict"] == "not evaluated" and not summary["retrain"]
    assert not summary["style_collapse"] and not summary["reward_drift"]
    assert "NOT EVALUATED" in capsys.readouterr().out
    feedback = pd.read_parquet(tmp_path / "serving" / "feedback.parquet")
    assert sorted(feedback["request_id"]) == sorted(log["request_id"].unique())
