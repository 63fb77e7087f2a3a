"""The generator over the OpenAI completions protocol, third-party Open Inference Protocol clients
(tritonclient's HTTP client) against every model, and batch generation against the served push.

One LocalStack of tiny models (no Feast: captions are sent directly) serves the module.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pytest

from pushgen.cli.main import main
from serving.stack import LocalStack, StackConfig

CAPTIONS = {
    "v1": "a cat naps on a sofa",
    "v2": "a chef in Rome folds dumplings",
    "v3": "kids run in the city at night",
    "v4": "a dog surfs a big wave",
}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    from serving.tiny import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def stack(models_dir, tmp_path_factory):
    cfg = StackConfig(
        log_dir=tmp_path_factory.mktemp("log"),
        env={"OMP_NUM_THREADS": "1"},
        max_new_tokens=24,
        explore_epsilon=0.0,
    )
    with LocalStack(models_dir, None, config=cfg) as s:
        yield s


def _push(stack, caption: str, **fields) -> dict:
    body = {"instances": [{"caption": caption, **fields}]}
    resp = httpx.post(f"{stack.url}/v1/models/pushgen:predict", json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()["predictions"][0]


def test_openai_completions_equal_the_direct_generation(stack):
    """K prompts in one request give what the generator's own v1 path gives, greedy and seeded."""
    from pushgen.generator.generate import CategoryPrompts

    prompts = CategoryPrompts.from_pretrained(stack.models + "/generator")
    cats = ["Humor", "Emotion", "Practical"]
    models = httpx.get(f"{stack.generator_url}/openai/v1/models", timeout=10).json()
    names = [m["id"] for m in models["data"]]
    assert names[0] == "generator" and names[1].startswith("generator-")  # the release's version
    for n, temperature in ((1, 0.0), (2, 0.8)):
        body = {
            "model": names[1],
            "prompt": prompts.prompt_ids(CAPTIONS["v1"], cats),
            "n": n,
            "max_tokens": 24,
            "temperature": temperature,
            "top_p": 0.95,
            "seed": 0,
        }
        resp = httpx.post(f"{stack.generator_url}/openai/v1/completions", json=body, timeout=60)
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        assert answer["object"] == "text_completion" and answer["model"] == names[1]
        assert [c["index"] for c in answer["choices"]] == list(range(len(cats) * n))
        direct = httpx.post(
            f"{stack.generator_url}/v1/models/generator:predict",
            json={"caption": CAPTIONS["v1"], "categories": cats, "n_per_category": n},
            timeout=60,
        ).json()["predictions"][0]["candidates"]
        from pushgen.generator.prompts import clean_generation

        assert [clean_generation(c["text"]) for c in answer["choices"]] == [
            c["text"] for c in direct
        ]


def test_openai_bad_requests_are_400_with_one_line(stack):
    url = f"{stack.generator_url}/openai/v1/completions"
    cases = [
        ({"model": "generator", "prompt": [1, 2], "logprobs": 2}, "unsupported"),
        ({"model": "generator", "prompt": [1, 2], "stream": True}, "stream"),
        ({"model": "generator", "prompt": [[1, 2]] * 17}, "limit is 16"),
        ({"model": "generator", "prompt": [10**9]}, "vocabulary"),
        ({"model": "generator", "prompt": [1], "max_tokens": 0}, "max_tokens"),
        ({"prompt": [1]}, "model"),
    ]
    for body, words in cases:
        resp = httpx.post(url, json=body, timeout=30)
        assert resp.status_code == 400 and words in resp.json()["error"], (body, resp.text)
    resp = httpx.post(url, json={"model": "nope", "prompt": [1]}, timeout=30)
    assert resp.status_code == 404


def test_the_transformer_serves_the_same_push_over_openai(stack):
    """The push the transformer serves is the ranker's pick among the generator's own candidates."""
    answer = _push(stack, CAPTIONS["v2"])
    direct = httpx.post(
        f"{stack.generator_url}/v1/models/generator:predict",
        json={"caption": CAPTIONS["v2"]},
        timeout=60,
    ).json()["predictions"][0]
    assert [a["text"] for a in answer["alternatives"]] == [c["text"] for c in direct["candidates"]]
    assert answer["model_version"].startswith(direct["model_version"] + "+")
    assert answer["text"] is not None and answer["timings_ms"]["generate"] > 0


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_http_infer_on_every_model(stack, binary):
    """tritonclient sends no Content-Type (and, with binary_data, the binary tensor extension)."""
    import tritonclient.http as th

    cases = [
        ("ranker", stack.ranker_url, {"texts": [b"a b", b"c d"], "caption": [b"a cat"]}, "scores"),
        (
            "generator",
            stack.generator_url,
            {"caption": [b"a cat"], "categories": [b"Humor"]},
            "text",
        ),
        ("pushgen", stack.url, {"caption": [b"a cat naps"]}, "text"),
    ]
    for name, url, tensors, output in cases:
        client = th.InferenceServerClient(url=url.removeprefix("http://"))
        assert client.is_model_ready(name)
        inputs = []
        for tensor, values in tensors.items():
            item = th.InferInput(tensor, [len(values)], "BYTES")
            item.set_data_from_numpy(np.array(values, dtype=object), binary_data=binary)
            inputs.append(item)
        result = client.infer(name, inputs)
        assert result.as_numpy(output).shape[0] >= 1
        requested = [th.InferRequestedOutput(output, binary_data=True)]
        again = client.infer(name, inputs, outputs=requested)
        assert again.as_numpy(output).tolist() == result.as_numpy(output).tolist()


def _items(path):
    rows = [*CAPTIONS.items(), ("v5", "  "), ("v6", "the old red sofa")]
    pd.DataFrame(rows, columns=["video_id", "caption"]).to_parquet(path)
    return path


@pytest.mark.slow  # 100 s: two kfp local runs; the fast tier's batch coverage is the CLI test below
def test_batch_generate_pipeline_2_shards_retry_and_equal_to_push(
    stack, models_dir, tmp_path, monkeypatch
):
    from pipelines.batch_generate import run_local
    from serving.batch import FAIL_ENV

    items = _items(tmp_path / "items.parquet")
    out = tmp_path / "out"
    params = {"items": str(items), "models": str(models_dir), "out_uri": str(out), "shards": 2}
    monkeypatch.setenv(FAIL_ENV, "1")  # shard 1 breaks on purpose: the run fails, shard 0 stays
    with pytest.raises(RuntimeError):
        run_local(params, tmp_path / "kfp")
    assert (out / "shards" / "shard-00000-of-00002.parquet").exists()
    assert not (out / "shards" / "shard-00001-of-00002.parquet").exists()
    first = (out / "shards" / "shard-00000-of-00002.parquet").stat().st_mtime_ns
    monkeypatch.delenv(FAIL_ENV)
    summary = run_local(params, tmp_path / "kfp")  # the rerun redoes shard 1 only
    assert (out / "shards" / "shard-00000-of-00002.parquet").stat().st_mtime_ns == first
    assert summary["items"] == 5 and summary["set_aside"] == 1 and len(summary["shards"]) == 2
    pushes = pd.read_parquet(out / "pushes.parquet")
    cands = pd.read_parquet(out / "candidates.parquet")
    assert sorted(pushes["video_id"]) == ["v1", "v2", "v3", "v4", "v6"]  # none lost, none doubled
    assert not cands.duplicated(["video_id", "candidate"]).any()
    assert summary["candidates"] == len(cands) == 5 * 8
    assert summary["guard_rejections"] == int((~cands["guard_ok"]).sum())
    assert sum(summary["category_mix"].values()) == summary["pushes"]
    set_aside = pd.read_parquet(out / "set_aside.parquet")
    assert set_aside["reason"].tolist() == ["empty caption"]
    for row in pushes.itertuples():  # what `pushgen push` serves for the same caption and seed
        served = _push(stack, row.caption)
        assert (row.text, row.category) == (served["text"], served["category"]), row
        mine = cands[cands["video_id"] == row.video_id].sort_values("candidate")
        assert mine["text"].tolist() == [a["text"] for a in served["alternatives"]]


def test_generate_batch_cli_and_bad_input_exit_2(models_dir, tmp_path, capsys):
    items = _items(tmp_path / "items.parquet")
    out = tmp_path / "cli"
    args = ["generate-batch", "--items", str(items), "--model", str(models_dir)]
    assert main([*args, "--out", str(out), "--shards", "2"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["items"] == 5 and summary["pushes"] + summary["no_push"] == 5
    pd.DataFrame({"video_id": ["v1"], "title": ["x"]}).to_parquet(tmp_path / "bad.parquet")
    cases = [
        (["--items", str(tmp_path / "bad.parquet"), "--model", str(models_dir)], "caption"),
        (["--items", str(items), "--model", str(tmp_path / "nope")], "unknown release"),
        (["--items", str(items), "--model", str(models_dir), "--shards", "0"], "at least 1"),
    ]
    capsys.readouterr()
    for extra, words in cases:
        assert main(["generate-batch", *extra, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err
        assert not (tmp_path / "o").exists()


def test_readme_benchmark_block_is_the_results_file():
    """README's generation-benchmark table is rendered from docs/results/openai_bench.json."""
    from pathlib import Path

    from bench.bench_openai import README_END, README_START, render_readme

    repo = Path(__file__).resolve().parents[1]
    figures = json.loads((repo / "docs" / "results" / "openai_bench.json").read_text())
    text = (repo / "README.md").read_text()
    block = text[text.index(README_START) : text.index(README_END) + len(README_END)]
    assert block == render_readme(figures), "run python -m bench.bench_openai --readme README.md"


def test_batch_generate_compiles_with_a_retried_step_per_shard(tmp_path):
    """The fast tier's check of the pipeline itself (the local run is in the slow tier)."""
    import yaml

    from pipelines.batch_generate import compile_pipeline

    path = compile_pipeline(tmp_path / "batch.yaml", gpus=1)
    spec = next(d for d in yaml.safe_load_all(path.read_text()) if d and "root" in d)
    text = path.read_text()
    assert "parameterIterator" in text  # dsl.ParallelFor over the shards
    assert "maxRetryCount: 2" in text
    assert "nvidia.com/gpu" in text
    assert set(spec["root"]["inputDefinitions"]["parameters"]) >= {"items", "shards", "out_uri"}
