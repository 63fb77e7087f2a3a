"""Monitoring: style collapse and reward drift on simulated serving windows, with real Evidently."""

import json
import re

import pandas as pd
import pytest

from monitoring import style
from monitoring.config import MonitorConfig
from monitoring.report import run_monitoring
from monitoring.simulate_feedback import ServingSimConfig, reference_pushes, simulate_serving
from pushgen.cli import main
from pushgen.errors import ConfigError, DataContractError


def _window(sim, mode: str, seed: int, n: int = 240):
    return simulate_serving(sim.world, ServingSimConfig(n_requests=n, mode=mode, seed=seed))


@pytest.fixture(scope="module")
def reference(sim) -> pd.DataFrame:
    return reference_pushes(sim)


@pytest.fixture(scope="module")
def healthy(sim):
    return _window(sim, "healthy", seed=1)


@pytest.fixture(scope="module")
def earlier_window(sim) -> pd.DataFrame:
    """An earlier healthy serving-log window with its feedback: a reference with reward_score."""
    log, feedback = _window(sim, "healthy", seed=2)
    return log.merge(feedback, on="request_id", how="left")


def _check(summary: dict, name: str) -> dict:
    return next(c for c in summary["checks"] if c["name"] == name)


def test_stable_window_raises_no_alert_and_writes_report(healthy, reference, tmp_path):
    log, feedback = healthy
    summary = run_monitoring(log, feedback, reference, tmp_path)
    assert not summary["style_collapse"] and not summary["reward_drift"] and not summary["retrain"]
    assert _check(summary, "reward_rank_correlation")["evaluated"]
    assert summary["counts"]["selected_pushes"] == log["request_id"].nunique()
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["retrain"] is False and len(on_disk["checks"]) == len(summary["checks"])
    page = (tmp_path / "report.html").read_text()
    assert "pushgen monitor" in page and "Value Drift for column category" in page
    assert not (tmp_path / "rejected.parquet").exists()


def test_stable_window_against_earlier_window_checks_score_drift(healthy, earlier_window, tmp_path):
    log, feedback = healthy
    summary = run_monitoring(log, feedback, earlier_window, tmp_path)
    assert not summary["style_collapse"] and not summary["reward_drift"]
    score = _check(summary, "reward_score_drift")
    assert score["evaluated"] and not score["alert"]
    assert _check(summary, "reward_rank_correlation")["reference"] > 0.5


def test_collapsed_window_raises_style_collapse(sim, reference, tmp_path):
    log, feedback = _window(sim, "collapsed", seed=3)
    summary = run_monitoring(log, feedback, reference, tmp_path)
    assert summary["style_collapse"] and summary["retrain"]
    assert summary["retrain_targets"] == ["generator"]
    assert not summary["reward_drift"]
    for name in ("category_entropy", "top_category_share", "repeat_rate", "distinct_2"):
        assert _check(summary, name)["alert"], name
    assert _check(summary, "category_drift")["alert"]  # Evidently's own test agrees


def test_shuffled_scores_raise_reward_drift(sim, reference, earlier_window, tmp_path):
    log, feedback = _window(sim, "shuffled", seed=4)
    summary = run_monitoring(log, feedback, reference, tmp_path / "pushes")
    assert summary["reward_drift"] and not summary["style_collapse"]
    assert summary["retrain_targets"] == ["ranker"]
    corr = _check(summary, "reward_rank_correlation")
    assert corr["value"] < 0.1
    # against an earlier window the score distribution itself is also tested
    summary = run_monitoring(log, feedback, earlier_window, tmp_path / "window")
    assert summary["reward_drift"] and _check(summary, "reward_score_drift")["evaluated"]


def test_reward_correlation_per_time_window(sim, reference, tmp_path):
    # first half healthy, second half shuffled: only the latest window counts
    good, good_fb = _window(sim, "healthy", seed=5, n=120)
    bad, bad_fb = _window(sim, "shuffled", seed=6, n=120)
    bad = bad.assign(served_at=bad["served_at"] + pd.Timedelta(days=1))
    log, feedback = pd.concat([good, bad]), pd.concat([good_fb, bad_fb])
    summary = run_monitoring(log, feedback, reference, tmp_path, MonitorConfig(window="1D"))
    windows = [w for w in summary["reward_windows"] if w["n"]]
    assert len(windows) == 2 and windows[0]["value"] > 0.5
    assert summary["reward_drift"]


def test_too_few_rows_leave_reward_unevaluated(sim, reference, tmp_path):
    log, feedback = _window(sim, "shuffled", seed=7, n=10)
    summary = run_monitoring(log, feedback, reference, tmp_path)
    corr = _check(summary, "reward_rank_correlation")
    assert not corr["evaluated"] and not corr["alert"] and "need 30" in corr["detail"]


def test_bad_rows_are_counted_and_kept_aside(healthy, reference, tmp_path):
    log, feedback = healthy
    first = feedback["request_id"].iloc[0]
    bad_feedback = pd.concat(
        [
            feedback,
            pd.DataFrame(
                {
                    "request_id": ["ghost-1", "ghost-2", first],
                    "pv": [900, 800, 10],
                    "clicks": [9, 8, 50],
                }
            ),
        ],
        ignore_index=True,
    )
    bad_log = pd.concat([log, log.head(1).assign(request_id="r-bad", text="  ")], ignore_index=True)
    summary = run_monitoring(bad_log, bad_feedback, reference, tmp_path)
    assert summary["counts"]["rejected_feedback"] == 3
    assert summary["counts"]["rejected_serving_log"] == 1
    aside = pd.read_parquet(tmp_path / "rejected.parquet")
    reasons = dict(zip(aside["request_id"], aside["reject_reason"], strict=True))
    assert reasons["ghost-1"] == reasons["ghost-2"] == "unknown request_id"
    assert reasons[first] == "clicks > pv"
    assert reasons["r-bad"] == "empty text"
    assert set(aside["source"]) == {"feedback", "serving_log"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda log: log.drop(columns=["reward_score"]), "missing column(s) ['reward_score']"),
        (lambda log: log.head(0), "no rows"),
        (lambda log: log.assign(selected=False), "no valid row has selected=True"),
    ],
)
def test_unusable_log_is_a_clear_error(healthy, reference, tmp_path, change, message):
    log, feedback = healthy
    with pytest.raises(DataContractError, match=re.escape(message)):
        run_monitoring(change(log), feedback, reference, tmp_path)


def test_reference_without_category_is_a_clear_error(healthy, reference, tmp_path):
    log, feedback = healthy
    with pytest.raises(DataContractError, match="reference: missing column"):
        run_monitoring(log, feedback, reference.drop(columns=["category"]), tmp_path)


def test_config_rejects_bad_thresholds():
    with pytest.raises(ConfigError, match="max_top_category_share"):
        MonitorConfig(max_top_category_share=1.5)
    with pytest.raises(ConfigError, match="unknown monitor setting"):
        MonitorConfig.from_dict({"max_top_share": 0.4})


def test_style_measures_on_known_texts():
    assert style.distinct_n(["a b c", "a b c"], 2) == pytest.approx(0.5)
    assert style.repeat_rate(["Hi there!", "hi, there", "other"]) == pytest.approx(2 / 3)
    flat = style.category_concentration(["A", "B", "C", "D"])
    one = style.category_concentration(["A"] * 9 + ["B"], n_categories=4)
    assert flat["entropy"] == pytest.approx(1.0) and one["entropy"] < 0.3
    assert one["top_category"] == "A" and one["top_share"] == pytest.approx(0.9)
    ref_sim, cur_sim = style.mean_pairwise_similarity(
        ["red fox", "blue sky", "green tea"], ["red fox jumps", "red fox runs", "red fox"]
    )
    assert cur_sim > ref_sim


def test_cli_monitor_and_report(sim, reference, tmp_path, capsys):
    log, feedback = _window(sim, "collapsed", seed=8)
    paths = {}
    for name, df in (("log", log), ("feedback", feedback), ("reference", reference)):
        paths[name] = tmp_path / f"{name}.parquet"
        df.to_parquet(paths[name])
    out = tmp_path / "out"
    args = [
        "monitor",
        "--log",
        str(paths["log"]),
        "--feedback",
        str(paths["feedback"]),
        "--reference",
        str(paths["reference"]),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "style_collapse: ALERT" in printed and "reward_drift: ok" in printed
    assert (out / "report.html").exists() and (out / "summary.json").exists()
    assert main([*args, "--fail-on-alert"]) == 1
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "top_category_share" in capsys.readouterr().out


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nope.parquet"
    code = main(
        [
            "monitor",
            "--log",
            str(missing),
            "--reference",
            str(missing),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no such file" in err
    assert main(["report", str(tmp_path)]) == 2
    bad_cfg = tmp_path / "cfg.json"
    bad_cfg.write_text('{"min_rows": 1}')
    assert (
        main(
            [
                "monitor",
                "--log",
                str(missing),
                "--reference",
                str(missing),
                "--out",
                str(tmp_path / "o"),
                "--config",
                str(bad_cfg),
            ]
        )
        == 2
    )
    assert "min_rows must be at least 2" in capsys.readouterr().err


def test_monitor_component_compiles_and_runs_locally(sim, reference, tmp_path):
    from kfp import compiler, dsl, local

    from components.monitor import monitor

    log, feedback = _window(sim, "shuffled", seed=9, n=120)
    paths = {}
    for name, df in (("log", log), ("feedback", feedback), ("reference", reference)):
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
            config_json='{"min_rows": 20}',
        )
        return task.outputs["retrain"]

    compiler.Compiler().compile(monitor_only, str(tmp_path / "monitor.yaml"))
    assert "monitor" in (tmp_path / "monitor.yaml").read_text()
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    run = monitor_only(
        log_uri=paths["log"], feedback_uri=paths["feedback"], reference_uri=paths["reference"]
    )
    assert run.output is True
    summaries = list((tmp_path / "root").rglob("summary"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert summary["reward_drift"] and summary["config"]["min_rows"] == 20
    assert list((tmp_path / "root").rglob("report"))  # the HTML artifact


@pytest.mark.slow
def test_embedding_similarity_with_packaged_encoder_sees_collapse(sim, reference, tmp_path):
    from pushgen.models import default_encoder_path

    log, feedback = _window(sim, "collapsed", seed=10, n=150)
    cfg = MonitorConfig(similarity_encoder=str(default_encoder_path()), text_sample_size=150)
    summary = run_monitoring(log, feedback, reference, tmp_path, cfg)
    sim_check = _check(summary, "pairwise_similarity")
    assert "all-MiniLM" in sim_check["detail"] or "minilm" in sim_check["detail"].lower()
    assert sim_check["value"] > sim_check["reference"] + 0.1 and sim_check["alert"]
