"""The whole real-data path on a few hundred Upworthy-layout arms with tiny models: ingest (raw
packages CSV) -> clean without SVR/LVTR/HTR -> label -> SFT -> rankers -> selection replay ->
generated headlines -> release -> `pushgen serve`'s stack answering a caption, then the
published results and the README section. A rerun resumes (every stage done earlier)."""

from __future__ import annotations

import json
import random
import subprocess
from dataclasses import replace

import httpx
import numpy as np
import pandas as pd
import pytest

from pushgen.evidence.provenance import STALE_MARK, UPWORTHY_RELEVANT, provenance, stale_files
from pushgen.evidence.upworthy import STAGES, UpworthyRunConfig, tiny_config
from pushgen.evidence.upworthy_replay import Scorer
from pushgen.evidence.upworthy_report import (
    GENERATED_COLUMNS,
    UPWORTHY_END,
    UPWORTHY_START,
    publish,
    render_section,
)
from pushgen.evidence.upworthy_run import run_upworthy

SUBJECTS = "mom dad teacher nurse senator kid farmer doctor student veteran".split()
HOOKS = [
    "You Won't Believe What {s} Said",
    "This {s} Has A Message For You",
    "Why One {s} Changed Everything",
    "A {s} Explains The Problem In 2 Minutes",
    "What Happened When A {s} Spoke Up",
]


def synthetic_archive(n_stories: int = 40, seed: int = 0) -> pd.DataFrame:
    """Raw-packages layout: each story two tests of four arms; CTR depends on the hook."""
    rng = random.Random(seed)
    rows = []
    for s in range(n_stories):
        subject = SUBJECTS[s % len(SUBJECTS)] + f" {s}"
        lede = f"<p>A story about a {subject} and the town where it happened.</p> It matters."
        for t in range(2):
            for arm, hook in enumerate(rng.sample(HOOKS, 4)):
                ctr = 0.01 + 0.004 * HOOKS.index(hook)
                imp = rng.randint(2500, 4000)
                rows.append(
                    {
                        "created_at": "2014-03-01 10:00:00",
                        "clickability_test_id": f"t{s:03d}{t}",
                        "headline": hook.format(s=subject.title()),
                        "lede": lede,
                        "excerpt": "Things that matter. Pass 'em on.",
                        "eyecatcher_id": f"img{s}{t}",
                        "impressions": imp,
                        "clicks": int(imp * ctr * rng.uniform(0.8, 1.2)),
                        "test_week": 201410,
                        "slug": f"s{s}-{arm}",
                    }
                )
    return pd.DataFrame(rows)


@pytest.mark.timeout(900)
def test_real_data_path_end_to_end(tmp_path, monkeypatch, tiny_causal_lm_dir, tiny_encoder_dir):
    archive = tmp_path / "packages.csv"
    synthetic_archive().to_csv(archive, index=False)
    # the recipe the release serves is a setting: here the set scorer on the frozen encoder
    cfg = replace(
        tiny_config(str(tiny_causal_lm_dir), str(tiny_encoder_dir)),
        ranker_recipe=f"set:{tiny_encoder_dir.name}",
        categories=UpworthyRunConfig().categories,  # five of the eight styles, as the real run
    )
    log: list[str] = []
    results = run_upworthy(archive, tmp_path / "run", cfg, log=log.append)
    assert results["ingest"]["arms_valid"] == 320
    assert set(results["clean"]["not_applied"]) >= {"svr>=0.4", "lvtr<=0.5", "htr>=0.01"}
    assert results["sft"]["val_loss"], "the run's report carries the validation curve"
    figures = results["rankers"]["figures"]
    assert {"finetuned", f"probe:{tiny_encoder_dir.name}", cfg.ranker_recipe} <= set(figures)
    assert results["rankers"]["chosen"] == cfg.ranker_recipe
    sel = results["select"]
    assert (
        sel["groups"] > 0
        and sel["worst"]["mean_ctr"] <= sel["pick"]["mean_ctr"] <= sel["best"]["mean_ctr"]
    )
    gen = results["generate"]
    assert gen["stories"] == 6 and 0.0 <= gen["guard_rejection_rate"] <= 1.0
    assert any("[9/9] release" in line for line in log)
    # rerun: resumes, every stage done earlier
    log2: list[str] = []
    run_upworthy(archive, tmp_path / "run", cfg, log=log2.append)
    assert sum("done earlier" in line for line in log2) == 9

    # published files and the README section, all from results.json
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{UPWORTHY_START}\nPLACEHOLDER\n{UPWORTHY_END}\n\nrest\n")
    prov = provenance(["pushgen", "results", "--upworthy", str(archive)], UPWORTHY_RELEVANT)
    published = publish(tmp_path / "run", tmp_path / "docs", readme, n_side=3, provenance=prov)
    # each stage's commit is recorded (a resumed run may span commits) with the run's command
    stages = published["provenance"]["stages"]
    assert list(stages) == list(STAGES) and set(stages.values()) == {prov["commit"]}
    assert published["provenance"]["command"] == f"pushgen results --upworthy {archive}"
    # the section warns on top exactly when code the run depends on changed since a stage ran:
    # here when this checkout has uncommitted changes to it, and for a stage run at the root
    fresh = not stale_files(prov["commit"], UPWORTHY_RELEVANT)
    assert (STALE_MARK in render_section(published)) == (not fresh)
    root = subprocess.run(
        ["git", "rev-list", "--max-parents=0", "HEAD"], capture_output=True, text=True
    ).stdout.split()
    if root and stale_files(root[0], UPWORTHY_RELEVANT):  # not a shallow clone
        stages_then = {**stages, "sft": root[0]}
        old = {**published, "provenance": {**published["provenance"], "stages": stages_then}}
        assert render_section(old).split("\n")[2].startswith(f"> {STALE_MARK}")
    generated = pd.read_parquet(tmp_path / "docs" / "generated.parquet")
    assert tuple(generated.columns) == GENERATED_COLUMNS
    assert generated["clickability_test_id"].nunique() == 6
    text = readme.read_text()
    assert (
        "Selection on real clicks" in text and "PLACEHOLDER" not in text and text.endswith("rest\n")
    )
    assert "<table>" in (tmp_path / "docs" / "side_by_side.html").read_text()

    # served: the release deploys like any other; a lede in, a headline out
    from serving.stack import LocalStack, StackConfig, StackPorts, free_port

    ports = StackPorts(free_port(), free_port(), free_port())
    release = tmp_path / "run" / "release"
    assert json.loads((release / "release.json").read_text())["served_ranker"] == cfg.ranker_recipe
    assert json.loads((release / "ranker" / "frozen_ranker.json").read_text())["kind"] == "set"
    config = StackConfig(ports=ports, log_dir=tmp_path / "serving", max_new_tokens=6)
    # `pushgen serve --models run/release`: a path relative to where it runs
    monkeypatch.chdir(tmp_path)
    with LocalStack("run/release", None, config=config) as stack:
        lede = "A story about a nurse 3 and the town where it happened."
        resp = httpx.post(
            f"{stack.url}/v1/models/pushgen:predict",
            json={"instances": [{"caption": lede}]},
            timeout=120,
        )
        assert resp.status_code == 200, resp.text
        answer = resp.json()["predictions"][0]
        assert answer["text"] is None or isinstance(answer["text"], str)
        assert "candidates" in answer or "category" in answer
        # the ranker server itself answers with the set scorer's win matrix
        texts = ["Why One Nurse Changed Everything", "This Nurse Has A Message For You", "x"]
        ranked = httpx.post(
            f"{stack.ranker_url}/v1/models/ranker:predict",
            json={"instances": [{"texts": texts}]},
            timeout=60,
        )
        assert ranked.status_code == 200, ranked.text
        win = ranked.json()["predictions"][0]["win_matrix"]
        assert len(win) == 3 and all(
            abs(win[i][j] + win[j][i] - 1) < 1e-6 for i in range(3) for j in range(3)
        )
        # ... and it is the ranker the replay selected with: the same win matrix as the run's
        # own scorer (embeddings cached at fp16 there: 0.0013 apart; reading one layer, not three, is 0.006)
        offline = Scorer(tmp_path / "run", cfg.ranker_recipe).scores(texts)
        expected = 1.0 / (1.0 + np.exp(-(offline[:, None] - offline[None, :])))
        assert np.abs(np.asarray(win) - expected).max() < 0.004, (win, expected)
        # the transformer asks the generator for the styles it was trained on, no others
        trained = set(
            json.loads((release / "generator" / "pushgen_generator.json").read_text())["categories"]
        )
        assert {a["category"] for a in answer.get("alternatives", [])} <= trained
