"""The real transformer explores and logs every candidate, score, choice and propensity.

A local stack (tiny generator and ranker ModelServers, real Feast) plus one more transformer
process with `--explore-epsilon 0.5`; its serving log must carry what the monitor needs, and the
monitor must read it without losing a request or a feedback row.
"""

import subprocess
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from monitoring.requests import request_table
from serving.explore import ALL_REJECTED, DEGRADED, SERVED
from serving.serving_log import read_serving_log
from serving.stack import LocalStack, StackConfig, free_port
from tests.servers import transformer_cmd, wait_until_ok

REPO = Path(__file__).resolve().parents[1]
CAPTIONS = [
    "A chef in Rome folds 5 kinds of dumplings for her grandmother",
    "Maya Chen repairs a bicycle in Oslo in 12 minutes",
    "a cat sleeps on a sofa",
    "Leo Park and a surfboard in Lisbon: how to wax it in 7 minutes",
]


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    from serving.tiny import build_tiny_models

    models = build_tiny_models(tmp_path_factory.mktemp("models"))
    log_dir = tmp_path_factory.mktemp("stack_log")
    cfg = StackConfig(log_dir=log_dir, env={"OMP_NUM_THREADS": "1"}, max_new_tokens=12)
    with LocalStack(models, None, config=cfg) as stack:
        port, explore_log = free_port(), tmp_path_factory.mktemp("explore_log")
        args = transformer_cmd(
            port,
            stack.generator_url,
            stack.ranker_url,
            explore_log,
            *stack.generator_args,
            "--explore-epsilon",
            "0.5",
        )
        out = (explore_log / "server.out").open("wb")
        proc = subprocess.Popen(args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ok(f"{url}/v2/health/ready", explore_log / "server.out")
            yield url, explore_log
        finally:
            proc.terminate()
            proc.wait(10)


@pytest.mark.slow
def test_transformer_logs_candidates_choice_and_propensity(explorer):
    url, log_dir = explorer
    answers = []
    for i in range(24):
        resp = httpx.post(
            f"{url}/v1/models/pushgen:predict",
            json={"instances": [{"caption": CAPTIONS[i % len(CAPTIONS)]}]},
            headers={"x-request-id": f"explore-{i}"},
            timeout=120,
        )
        assert resp.status_code == 200, resp.text
        answers.append(resp.json()["predictions"][0])
    log, rejected = read_serving_log(log_dir)
    assert rejected.empty or set(rejected["reject_reason"]) <= {"empty text"}
    for a in answers:
        rows = log[log["request_id"] == a["request_id"]].sort_values("candidate_index")
        assert len(rows) == len(a["alternatives"]) == rows["n_candidates"].iloc[0]
        ok = rows["guard_ok"].astype(bool)
        assert (
            rows.loc[~ok, "reward_score"].isna().all()
            and rows.loc[ok, "reward_score"].notna().all()
        )
        if a["text"] is None:
            assert (rows["status"] == ALL_REJECTED).all() and not rows["selected"].any()
            continue
        chosen = rows[rows["selected"]]
        assert len(chosen) == 1 and chosen["text"].iloc[0] == a["text"]
        assert chosen["propensity"].iloc[0] == pytest.approx(a["propensity"])
        props = rows.loc[ok, "propensity"].to_numpy(float)
        assert props.sum() == pytest.approx(1.0) and (rows["epsilon"] == 0.5).all()
        k = int(ok.sum())
        top = rows.loc[ok, "reward_score"].idxmax()
        assert rows.loc[top, "propensity"] == pytest.approx(0.5 + 0.5 / k)
        if not a["explored"]:
            assert chosen.index[0] == top
        assert rows["status"].iloc[0] in (SERVED, DEGRADED)
    # the monitor reads every request and accepts feedback for each one, served or not
    feedback = pd.DataFrame(
        {
            "request_id": [a["request_id"] for a in answers],
            "pv": [100 if a["text"] else 0 for a in answers],
            "clicks": [3 if a["text"] else 0 for a in answers],
        }
    )
    req, aside, counts = request_table(log, feedback)
    assert counts["requests"] == len(answers) and aside.empty
    assert counts["with_feedback"] == len(answers)
    explored = np.mean([a["explored"] for a in answers if a["text"]])
    assert 0.0 < explored < 1.0  # epsilon 0.5 over the served requests
