"""`pushgen demo` end to end on tiny models: pipeline, Feast, three ModelServers, report.

The fast tests run the demo's stages after the pipeline (features, serving, monitoring) on the
session's `training_run` (tests/conftest.py), the one whole pipeline run of the fast tier; the
slow ones run `run_demo` whole, its own pipeline and the loop's pass included.
"""

import json

import pytest

from pushgen.cli.demo import DemoConfig, build_features, monitor, run_demo, serve_new_videos


@pytest.fixture(scope="module")
def demo(training_run):
    """The demo's stages 3-5, as `run_demo` runs them, over the shared pipeline run's release."""
    run, out = training_run, training_run.out
    repo = build_features(out, run.release)
    served = serve_new_videos(run.demo, out, run.release, repo, run.world, run.new_ids)
    monitor(run.demo, out, run.world)
    return out, {"release": str(run.release), "served": served.to_dict("records")}


@pytest.fixture(scope="module")
def whole_demo(tmp_path_factory, tiny_demo):
    """`run_demo` whole, the loop's pass included (slow tests only)."""
    out = tmp_path_factory.mktemp("whole_demo")
    return out, run_demo(tiny_demo(out, loop=True))


def test_demo_serves_every_new_video_and_writes_the_report(demo):
    out, result = demo
    assert [r["video_id"] for r in result["served"]] == ["v000037", "v000038", "v000039"]
    assert (out / "pipeline" / "store" / "LATEST").exists()
    assert (out / "features" / "feature_store.yaml").exists()
    report = out / "monitor" / "report.html"
    assert report.exists() and report.stat().st_size > 10_000
    monitor = json.loads((out / "monitor" / "summary.json").read_text())
    assert {"style_collapse", "reward_drift", "retrain", "retrain_reason"} <= set(monitor)
    # the push's score is a probability a reader understands, not a Copeland count
    assert all(r["win_prob"] is None or 0 <= r["win_prob"] <= 1 for r in result["served"])


def test_new_videos_had_no_training_pushes(demo):
    import pandas as pd

    out, _ = demo
    pushes = pd.read_parquet(out / "train_data" / "pushes.parquet")
    assert not pushes.video_id.isin(["v000037", "v000038", "v000039"]).any()
    log = pd.concat(pd.read_json(p, lines=True) for p in (out / "serving").glob("*.jsonl"))
    assert set(log.video_id) == {"v000037", "v000038", "v000039"}
    # the transformer shipped the same rows to the store when it stopped; feedback beside them
    shipped = out / "pipeline" / "store" / "serving-log" / "local"
    windows = pd.concat(pd.read_parquet(p) for p in (shipped / "windows").glob("*.parquet"))
    assert len(windows) == len(log) and set(windows.request_id) == set(log.request_id)
    feedback = pd.read_parquet(shipped / "feedback" / "demo.parquet")
    assert set(feedback.request_id) == set(log.request_id)


@pytest.mark.slow
def test_demo_ends_with_one_pass_of_the_loop(whole_demo):
    from pushgen.core.store import ArtifactStore

    out, _ = whole_demo
    store = ArtifactStore.from_uri(out / "pipeline" / "store")
    versions = store.versions()
    assert len(versions) == 2  # the first release and the loop's retrained candidate
    retrained = store.resolve(versions[-1]) if store.resolve(versions[-1]).get("gate") else None
    assert retrained and retrained["gate"]["parts"] == ["ranker"]
    assert retrained["status"] in ("promoted", "rejected")


@pytest.mark.slow
def test_the_demo_times_its_stages_and_announces_the_recorded_time(whole_demo, tmp_path, capsys):
    from pushgen.cli.demo import announce_duration

    out, result = whole_demo
    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["release"] == result["release"]
    timing = json.loads((out / "timing.json").read_text())
    stages = {"data", "pipeline", "features", "serving", "monitoring", "loop"}
    assert set(timing["stages"]) == stages
    assert timing["total_s"] >= sum(timing["stages"].values()) - 0.5 > 0  # each rounded to 0.1 s
    recorded = tmp_path / "demo_timing.json"
    recorded.write_text(json.dumps({**timing, "total_s": 780.0}))
    cfg = DemoConfig(**timing["settings"])
    assert announce_duration(cfg, recorded) == 780.0
    assert "This demo takes about 13 minutes" in capsys.readouterr().out
    assert announce_duration(DemoConfig(sft_steps=999), recorded) is None  # other settings
    assert announce_duration(cfg, tmp_path / "absent.json") is None
