"""Serving without servers: request validation, storage-URI and safetensors rules, the serving log."""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from pushgen.core.errors import ConfigError
from serving.envelope import RANKER_V2, v1_instances, v2_instance
from serving.protocol import RequestLimits, generate_request, push_request, rank_request
from serving.serving_log import ServingLog, ServingLogConfig, read_serving_log
from serving.storage import StorageConfig, check_safe_weights, resolve_model_location

LIMITS = RequestLimits()


def test_generate_request_defaults_and_limits():
    req = generate_request({"caption": "  a cat  ", "categories": ["Humor"]}, LIMITS)
    assert req.caption == "a cat" and req.categories == ("Humor",) and req.n_per_category == 1
    all_cats = generate_request({"caption": "a cat"}, LIMITS)
    assert len(all_cats.categories) == 8
    with pytest.raises(InvalidInput, match="candidates; the limit is 16"):
        generate_request({"caption": "a cat", "n_per_category": 3}, LIMITS)
    with pytest.raises(InvalidInput, match="unknown category"):
        generate_request({"caption": "a cat", "categories": ["Sarcasm"]}, LIMITS)


def test_rank_request_accepts_generator_predictions():
    pred = {
        "candidates": [
            {"text": "a", "guard_ok": True},
            {"text": "b", "guard_ok": False},
            {"text": "c", "guard_ok": True},
        ],
        "caption": "cap",
    }
    req = rank_request(pred, LIMITS)
    assert req.texts == ("a", "c") and req.caption == "cap"


def test_push_request_needs_video_or_caption():
    assert push_request({"video_id": "v1"}, LIMITS).video_id == "v1"
    with pytest.raises(InvalidInput, match="'video_id'"):
        push_request({}, LIMITS)


def test_v1_bare_object_is_one_instance_and_raw_bytes_are_refused():
    assert v1_instances({"texts": ["a"]}, LIMITS) == [{"texts": ["a"]}]
    with pytest.raises(InvalidInput, match="Content-Type: application/json"):
        v1_instances(b"texts=a", LIMITS)
    with pytest.raises(InvalidInput, match="limit is 8"):
        v1_instances({"instances": [{}] * 9}, LIMITS)


def test_v2_tensors_are_checked_against_the_signature():
    good = InferRequest("ranker", [InferInput("texts", [2], "BYTES", ["a", "b"])])
    assert v2_instance(good, RANKER_V2) == {"texts": ["a", "b"]}
    wrong_shape = InferRequest("ranker", [InferInput("texts", [3], "BYTES", ["a", "b"])])
    with pytest.raises(InvalidInput, match="has 2 values but shape"):
        v2_instance(wrong_shape, RANKER_V2)
    two_d = InferRequest("ranker", [InferInput("texts", [1, 2], "BYTES", [["a", "b"]])])
    with pytest.raises(InvalidInput, match="must have shape"):
        v2_instance(two_d, RANKER_V2)
    wrong_type = InferRequest("ranker", [InferInput("texts", [2], "FP32", [1.0, 2.0])])
    with pytest.raises(InvalidInput, match="datatype BYTES"):
        v2_instance(wrong_type, RANKER_V2)


# --- storage ------------------------------------------------------------------------------


def test_local_paths_must_stay_inside_the_root(tmp_path):
    root = tmp_path / "models"
    (root / "ranker").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    cfg = StorageConfig(root=root)
    assert resolve_model_location("ranker", cfg) == (root / "ranker").resolve()
    with pytest.raises(ConfigError, match="outside the model root"):
        resolve_model_location("../secret", cfg)
    (root / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(ConfigError, match="outside the model root"):
        resolve_model_location("link", cfg)
    with pytest.raises(ConfigError, match="path-traversal"):
        resolve_model_location("s3://bucket/models/../../etc", cfg)
    with pytest.raises(ConfigError, match="unsupported storage URI"):
        resolve_model_location("http://example.com/model", cfg)


def test_pickle_checkpoints_are_refused(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert check_safe_weights(tmp_path) == [tmp_path / "model.safetensors"]
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="pickle checkpoint"):
        check_safe_weights(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no safetensors"):
        check_safe_weights(empty)


def test_ranker_loads_from_s3(tiny_encoder_dir, tmp_path, s3_env):
    """A ranker uploaded to a real S3 API (moto server) is fetched, validated and served in-process."""
    import asyncio

    from pushgen.ranker.inputs import RankerSettings
    from serving.ranker import RankerModel, RankerServeConfig

    RankerSettings(max_length=16).save(tiny_encoder_dir)
    s3 = boto3.client("s3", endpoint_url=s3_env)
    s3.create_bucket(Bucket="pushgen-models")
    for f in Path(tiny_encoder_dir).iterdir():
        s3.upload_file(str(f), "pushgen-models", f"v1/ranker/{f.name}")
    model = RankerModel(
        "ranker",
        "s3://pushgen-models/v1/ranker",
        RankerServeConfig(dynamic_batching=False),
        storage=StorageConfig(root=tmp_path, cache_dir=tmp_path / "cache"),
    )
    assert model.load() and model.ready
    assert (tmp_path / "cache" / "pushgen-models" / "v1" / "ranker" / "model.safetensors").exists()
    parsed = model.preprocess({"instances": [{"texts": ["a", "b", "c"]}]})
    out = asyncio.run(model.predict(parsed))
    assert len(out["predictions"][0]["scores"]) == 3


# --- serving log --------------------------------------------------------------------------


def _row(i: int) -> dict:
    return {
        "request_id": f"r{i // 2}",
        "video_id": "v1",
        "category": "Humor",
        "text": f"push {i}",
        "reward_score": 0.5,
        "selected": i % 2 == 0,
        "model_version": "g+r",
        "served_at": "2026-01-01T00:00:00+00:00",
    }


def test_serving_log_rotates_and_validates(tmp_path):
    log = ServingLog(ServingLogConfig(tmp_path, max_rows=4))
    log.write([_row(i) for i in range(6)])
    log.write([{**_row(6), "text": ""}])  # an empty text is rejected on read, not dropped
    log.close()
    files = sorted(tmp_path.glob("serving_log-*.jsonl"))
    assert [len(f.read_text().splitlines()) for f in files] == [4, 3]
    valid, rejected = read_serving_log(tmp_path)
    assert len(valid) == 6 and len(rejected) == 1
    assert rejected["reject_reason"].iloc[0] == "empty text"
    assert json.loads(files[0].read_text().splitlines()[0])["request_id"] == "r0"
    assert re.match(r"serving_log-\d{8}T\d{6}-[A-Za-z0-9.-]+-00001\.jsonl", files[0].name)


def test_generator_refuses_a_pickled_base_model(tmp_path):
    """A trained generator whose manifest names a base holding a pickle checkpoint is not loaded."""
    from serving.generator import GeneratorModel

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    (base / "pytorch_model.bin").write_bytes(b"not really a pickle")
    gen = tmp_path / "generator"
    gen.mkdir()
    (gen / "adapter_model.safetensors").write_bytes(b"x")
    (gen / "pushgen_generator.json").write_text(json.dumps({"base_model": str(base)}))
    model = GeneratorModel("generator", gen, storage=StorageConfig(root=tmp_path))
    with pytest.raises(ConfigError, match="pickle checkpoint"):
        model.load()
    assert not model.ready


def test_dtype_resolution():
    from pushgen.core.models import cpu_has_bf16_units, resolve_dtype

    assert resolve_dtype("float32", "cpu") == "float32"
    assert resolve_dtype("auto", "cpu") == ("bfloat16" if cpu_has_bf16_units() else "float32")
    with pytest.raises(ConfigError, match="dtype must be one of"):
        resolve_dtype("fp8", "cpu")
