"""The quality gate and the carry-over of one part: decisions, the store's status, tiny models."""

import json
import shutil

import pandas as pd
import pytest

from pushgen.core.errors import ConfigError
from pushgen.core.store import ArtifactStore, publish_release
from pushgen.loop.carry import carry_over, plan_parts, split_version_uri
from pushgen.loop.gate import (
    GateConfig,
    GateInputs,
    compare,
    decision_markdown,
    decision_metrics,
    parse_parts,
    run_gate,
)


def _scores(cand: dict, prod: dict, part: str = "ranker") -> dict:
    return {part: {"candidate": cand, "production": prod}}


def test_compare_allows_regression_within_tolerance_only():
    cfg = GateConfig(accuracy_tolerance=0.03, ece_tolerance=0.05)
    ok = compare(_scores({"accuracy": 0.70, "ece": 0.12}, {"accuracy": 0.72, "ece": 0.10}), cfg)
    assert [c["ok"] for c in ok] == [True, True]
    worse = compare(_scores({"accuracy": 0.68, "ece": 0.16}, {"accuracy": 0.72, "ece": 0.10}), cfg)
    assert [(c["metric"], c["ok"]) for c in worse] == [("accuracy", False), ("ece", False)]
    assert worse[0]["delta"] == pytest.approx(-0.04)
    # a figure that cannot be measured (no true CTR on real data) is not gated
    gen = compare(
        _scores({"controllability": 0.9, "uplift": None}, {"controllability": 0.8}, "generator"),
        cfg,
    )
    assert [c["metric"] for c in gen] == ["controllability"]


def test_parse_parts():
    assert parse_parts("both") == ("generator", "ranker")
    assert parse_parts("ranker") == ("ranker",)
    assert parse_parts("ranker, generator") == ("generator", "ranker")
    for bad in ("", "rankr", "both,critic"):
        with pytest.raises(ConfigError, match="generator, ranker or both"):
            parse_parts(bad)


@pytest.fixture(scope="module")
def release_parts(tiny_causal_lm_dir, tiny_encoder_dir, sim_dir, tmp_path_factory):
    """A generator dir, a ranker dir and the tables the gate reads (tiny random models)."""
    from pushgen.ranker.inputs import RankerSettings

    root = tmp_path_factory.mktemp("gate")
    ranker = root / "ranker"
    shutil.copytree(tiny_encoder_dir, ranker)
    RankerSettings("pairwise", 32, False, "tiny").save(ranker)
    videos = pd.read_parquet(sim_dir / "videos.parquet")
    captions = root / "captions.parquet"
    videos.assign(caption=videos["title"]).loc[:, ["video_id", "caption"]].to_parquet(captions)
    tables = {"videos": str(sim_dir / "videos.parquet"), "captions": str(captions)}
    return {"generator": tiny_causal_lm_dir, "ranker": ranker, "tables": tables, "root": root}


def _publish(store, parts, version, gate=None):
    reports = {"evaluation.json": str(parts["root"] / "eval.json")}
    (parts["root"] / "eval.json").write_text("{}")
    return publish_release(
        str(store),
        version,
        str(parts["generator"]),
        str(parts["ranker"]),
        parts["tables"],
        reports,
        {"ranker.val_accuracy": 0.6, "generator.val_loss": 1.5},
        "hash-" + version,
        gate=gate,
    )


def _inputs(parts, sim_dir, store, which=("generator", "ranker")):
    return GateInputs(
        generator_dir=str(parts["generator"]),
        ranker_dir=str(parts["ranker"]),
        captions=parts["tables"]["captions"],
        pushes=str(sim_dir / "pushes.parquet"),
        ab_tests=str(sim_dir / "ab_tests.parquet"),
        world=str(sim_dir / "world.json"),
        store_uri=str(store),
        parts=which,
    )


def test_first_version_passes(release_parts, sim_dir, tmp_path):
    decision = run_gate(_inputs(release_parts, sim_dir, tmp_path / "empty"), GateConfig())
    assert decision["promote"] and decision["production_version"] is None
    assert "first version" in decision["reason"]
    assert "PROMOTED" in decision_markdown(decision)


def test_gate_compares_on_the_same_data_and_a_rejected_candidate_is_never_latest(
    release_parts, sim_dir, tiny_encoder_dir, tmp_path
):
    store = tmp_path / "store"
    _publish(store, release_parts, "v1")
    cfg = GateConfig(n_videos=4, max_new_tokens=8, encoder=str(tiny_encoder_dir))
    same = run_gate(_inputs(release_parts, sim_dir, store), cfg)
    # the candidate is the production models themselves: every figure equal, promoted
    assert same["production_version"] == "v1" and same["promote"], same["reason"]
    metrics = {c["metric"]: c for c in same["checks"]}
    assert set(metrics) == {"controllability", "uplift", "accuracy", "ece"}
    assert all(c["delta"] == pytest.approx(0.0) for c in same["checks"])
    assert same["scores"]["ranker"]["candidate"]["pairs"] > 0
    assert same["scores"]["generator"]["candidate"]["videos"] == 4

    # a negative tolerance demands a gain no equal model can show: rejected
    strict = GateConfig(**{**cfg.__dict__, "accuracy_tolerance": -0.5})
    rejected = run_gate(_inputs(release_parts, sim_dir, store, ("ranker",)), strict)
    assert not rejected["promote"] and "ranker accuracy" in rejected["reason"]
    assert {c["part"] for c in rejected["checks"]} == {"ranker"}  # only the retrained part
    assert decision_metrics(rejected)["gate.promote"] == 0.0
    made = _publish(store, release_parts, "v2", gate=rejected)
    assert made["status"] == "rejected"
    s = ArtifactStore.from_uri(store)
    assert s.resolve("latest")["version"] == "v1"  # production unchanged
    assert s.versions() == ["v1", "v2"]  # the rejected candidate is kept
    assert s.resolve("v2")["gate"]["promote"] is False
    made = _publish(store, release_parts, "v3", gate=same)
    assert made["status"] == "promoted" and s.resolve("latest")["version"] == "v3"


def test_plan_and_carry_over(release_parts, tmp_path):
    store = tmp_path / "store"
    with pytest.raises(ConfigError, match="cannot carry over the generator: no production"):
        plan_parts("ranker", str(store))
    assert plan_parts("both", str(store)) == {"generator_from": "", "ranker_from": ""}
    made = _publish(store, release_parts, "v1")
    plan = plan_parts("ranker", str(store))
    assert plan == {"generator_from": made["uri"], "ranker_from": ""}
    assert split_version_uri(made["uri"]) == (str(store.resolve()), "v1")
    out = tmp_path / "carried"
    figures = carry_over(plan["generator_from"], "generator", out)
    assert figures == {"val_loss": 1.5, "carried_over": 1.0}
    assert json.loads((out / "config.json").read_text()) == json.loads(
        (release_parts["generator"] / "config.json").read_text()
    )
    with pytest.raises(ConfigError, match="not a release URI"):
        carry_over(str(store), "generator", out)


def test_cli_gate_first_version_and_bad_input(release_parts, sim_dir, tmp_path, capsys):
    from pushgen.cli.main import main as cli

    base = ["pipeline", "gate", "--generator", str(release_parts["generator"])]
    base += ["--ranker", str(release_parts["ranker"]), "--data", str(sim_dir)]
    empty = ["--store", str(tmp_path / "empty")]
    assert cli([*base, *empty, "--captions", release_parts["tables"]["captions"]]) == 0
    assert "PROMOTED" in capsys.readouterr().out  # documented: the first version passes
    for argv, says in (
        ([*base, *empty, "--require-production"], "no production version in"),
        ([*base, *empty, "--production", "v9"], "version 'v9' not found"),
        ([*base, *empty, "--parts", "critic"], "generator, ranker or both"),
        ([*base[:-1], str(tmp_path), *empty], "no pushes.parquet"),
    ):
        assert cli(argv) == 2, argv
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
