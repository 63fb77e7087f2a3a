"""`pushgen deploy --generator-runtime huggingface`: the generator InferenceService for KServe's
Hugging Face ServingRuntime (vLLM), checked against the SDK's CRD classes and the runtime's args."""

from __future__ import annotations

import json

import pytest

from pushgen.cli.main import main
from pushgen.core.store import ArtifactStore
from serving.deploy import load_manifest
from serving.deploy.llm_runtime import MODEL_FORMAT, RUNTIME, parse_runtime_args

BASE = "HuggingFaceTB/SmolLM2-1.7B-Instruct"


@pytest.fixture
def store(tmp_path):
    """A store with version v1: a LoRA generator (rank 8, tokenizer with a chat template)."""
    src = tmp_path / "src"
    gen, ranker = src / "generator", src / "ranker"
    for d in (gen, ranker, gen / "merged"):
        d.mkdir(parents=True)
    (ranker / "model.safetensors").write_bytes(b"0" * 64)
    (gen / "adapter_model.safetensors").write_bytes(b"0" * 64)
    (gen / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (gen / "tokenizer.json").write_text("{}")
    (gen / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    (gen / "pushgen_generator.json").write_text(json.dumps({"base_model": BASE}))
    (gen / "merged" / "config.json").write_text("{}")
    (gen / "merged" / "model.safetensors").write_bytes(b"0" * 64)
    store = ArtifactStore.from_uri(tmp_path / "store")
    store.register("v1", {"generator": gen, "ranker": ranker})
    return store


def _deploy(store, out, *extra: str) -> int:
    args = ["deploy", "--store", store.uri, "--version", "v1", "--out", str(out)]
    return main([*args, "--generator-runtime", "huggingface", "--hub-online", *extra])


def test_hf_runtime_generator_validates_and_parses_with_the_runtimes_args(store, tmp_path):
    out = tmp_path / "out"
    assert _deploy(store, out, "--gpu-toleration", "gpu=a100:NoSchedule") == 0
    isvc = load_manifest(out / "generator.yaml")  # field by field through the SDK's CRD classes
    pred = isvc.spec.predictor
    assert pred.containers is None and pred.model.runtime == RUNTIME
    assert pred.model.model_format.name == MODEL_FORMAT
    assert pred.model.storage_uri.endswith("/versions/v1/generator")
    assert pred.model.resources.limits["nvidia.com/gpu"] == "1"
    assert [(t.key, t.value, t.effect) for t in pred.tolerations] == [("gpu", "a100", "NoSchedule")]
    args = parse_runtime_args(pred.model.args)  # the runtime's own argument list (a cited copy)
    assert args.model_name == "generator" and args.backend == "vllm"
    assert args.model_id == BASE and args.tokenizer == "/mnt/models"
    assert args.enable_lora and args.lora_modules == ["v1=/mnt/models"]
    assert args.max_lora_rank == 8 and args.enable_prefix_caching
    assert args.generation_config == "vllm"
    # the transformer asks the LoRA module by the version's name, with the release's tokenizer
    transformer = load_manifest(out / "pushgen.yaml").spec.predictor.containers[0].args
    assert transformer[transformer.index("--generator-model") + 1] == "v1"
    assert transformer[transformer.index("--generator-dir") + 1].endswith("/versions/v1/generator")
    assert not (out / "graph.yaml").exists()  # vLLM answers OpenAI, not the graph's v1 step


def test_hf_runtime_merged_weights(store, tmp_path):
    out = tmp_path / "out"
    assert _deploy(store, out, "--merge") == 0
    model = load_manifest(out / "generator.yaml").spec.predictor.model
    assert model.storage_uri.endswith("/versions/v1/generator/merged")
    args = parse_runtime_args(model.args)
    assert not args.enable_lora and args.model_dir == "/mnt/models" and args.model_id is None
    transformer = load_manifest(out / "pushgen.yaml").spec.predictor.containers[0].args
    assert transformer[transformer.index("--generator-model") + 1] == "generator"


def test_runtime_parser_refuses_what_the_runtime_would():
    from pushgen.core.errors import ConfigError

    with pytest.raises(ConfigError, match="does not know"):
        parse_runtime_args(["--enable-lora", "--lora-rank=8"])
    with pytest.raises(ConfigError):
        parse_runtime_args(["--max-lora-rank=12"])  # not one of vLLM's MaxLoRARanks


def test_hf_runtime_bad_input_is_one_line_exit_2(store, tmp_path, capsys):
    cases = [
        (["--gpus", "0"], "needs a GPU"),
        (["--version", "v9"], "not found"),
    ]
    for extra, words in cases:
        out = tmp_path / "out"
        assert _deploy(store, out, *extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err
        assert not out.exists()
    args = ["deploy", "--store", store.uri, "--version", "v1", "--out", str(tmp_path / "o")]
    assert main([*args, "--merge"]) == 2
    assert "huggingface only" in capsys.readouterr().err


def test_runtimes_record_of_a_generator_dir(tmp_path):
    """The tiny generator: LoRA on a local base (vLLM cannot fetch it), no merged weights."""
    from pushgen.generator.runtimes import HF_RUNTIME, describe_dir
    from serving.tiny import build_tiny_models

    models = build_tiny_models(tmp_path / "m")
    record = describe_dir(models / "generator")
    hf = record[HF_RUNTIME]
    assert record["pushgen"]["ok"] and hf["tokenizer"] and hf["adapter"]["format"] == "peft-lora"
    assert not hf["ok"] and "hub model id" in " ".join(hf["lora_problems"])
    store = ArtifactStore.from_uri(tmp_path / "store")
    store.register(
        "v2",
        {"generator": models / "generator", "ranker": models / "ranker"},
        extra={"runtimes": record},
    )
    assert store.resolve("v2")["runtimes"] == json.loads(json.dumps(record))
    args = ["deploy", "--store", store.uri, "--version", "v2", "--out", str(tmp_path / "o")]
    assert main([*args, "--generator-runtime", "huggingface"]) == 2


def test_a_dora_adapter_is_refused_for_vllm(store, tmp_path, capsys):
    from pushgen.generator.runtimes import describe_dir

    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": 8, "use_dora": True})
    )
    (gen / "adapter_model.safetensors").write_bytes(b"0")
    (gen / "tokenizer.json").write_text("{}")
    (gen / "pushgen_generator.json").write_text(json.dumps({"base_model": BASE}))
    hf = describe_dir(gen)["kserve-huggingfaceserver"]
    assert not hf["ok"] and hf["lora_problems"] == ["vLLM does not support DoRA"]
