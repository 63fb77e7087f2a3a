"""Feast on a cluster: the pipeline's publish step fills the store the transformer reads.

A real Redis server (Debian's redis-server) is the online store every transformer replica shares,
moto's S3 server holds the registry beside the versions; the config is the one `pushgen deploy`
puts in the `pushgen-feature-store` ConfigMap, uploaded where the pipeline's `feature_repo` points.
The publish step's work (`pushgen.features.fresh.publish`, what the `publish_features` component
runs; tests/test_cluster.py runs the component itself through kfp's local runner before starting
the pods) fills it; the transformer then opens the ConfigMap's config as its pod mounts it and
serves a video's caption from Redis. No hand-filled route: what the step wrote is what serving
reads.
"""

import pytest

from serving.stack import free_port
from tests.servers import redis_available, start_redis

BUCKET = "feast-cluster"


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    why = redis_available()
    if why:
        pytest.skip(why)
    port = free_port()
    proc = start_redis(port, tmp_path_factory.mktemp("redis") / "redis.log")
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_publish_fills_the_store_the_transformer_reads(
    redis, s3_env, sim, tmp_path, monkeypatch, training_run
):
    import boto3

    from pushgen.core.store import ArtifactStore
    from pushgen.data.caption import TextCaptioner
    from pushgen.features.fresh import publish
    from serving.deploy import DeployConfig, feature_store_yaml
    from serving.transformer import PushgenTransformer, TransformerConfig

    boto3.client("s3", endpoint_url=s3_env).create_bucket(Bucket=BUCKET)
    cfg = DeployConfig(version_uri=f"s3://{BUCKET}/store/versions/v1", s3_endpoint=s3_env)
    config = feature_store_yaml(cfg)  # the ConfigMap's feature_store.yaml
    assert "type: redis" in config and f"s3://{BUCKET}/store/feast/registry.db" in config
    (tmp_path / "feature_store.yaml").write_text(config)
    feast_prefix = f"s3://{BUCKET}/store/feast"
    ArtifactStore.from_uri(feast_prefix).put_file(
        tmp_path / "feature_store.yaml", "feature_store.yaml"
    )
    # what the pods get from the pushgen-feast Secret and the deploy's env
    monkeypatch.setenv("PUSHGEN_FEAST_CONNECTION", redis)
    monkeypatch.setenv("FEAST_S3_ENDPOINT_URL", s3_env)

    videos = sim.videos.head(20)
    captions = TextCaptioner().caption_videos(videos)
    pushes = sim.pushes[sim.pushes["video_id"].isin(videos["video_id"])]
    counts = publish(videos, captions, pushes, feast_prefix)
    assert counts["materialized_video_caption"] == len(videos)

    mounted = tmp_path / "feature-repo"  # the ConfigMap volume: feature_store.yaml only
    mounted.mkdir()
    (mounted / "feature_store.yaml").write_text(config)
    model = PushgenTransformer(
        "pushgen",
        TransformerConfig(
            feature_repo=mounted,
            log=_log_config(tmp_path),
            # the release's tokenizer and template: the transformer builds the generator's prompts
            generator_dir=str(training_run.release / "generator"),
        ),
    )
    model.load()  # the registry on S3 has the feature service
    video = str(videos["video_id"].iloc[0])
    got = model.features.video(video)
    want = captions.set_index("video_id").loc[video, "caption"]
    assert got["caption"] == want and got["push_count"] >= 0


def _log_config(tmp_path):
    from serving.serving_log import ServingLogConfig

    return ServingLogConfig(log_dir=tmp_path / "log")


def test_the_feature_repo_ships_as_package_data():
    """An installed wheel has `feature_repo/feature_store.yaml` (render_repo copies it)."""
    import tomllib
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    data = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = set(data["package-data"]["feature_repo"])
    tracked = {
        p.name
        for p in (repo / "feature_repo").iterdir()
        if p.is_file() and p.suffix != ".py" and p.name != ".gitignore"
    }
    assert tracked <= shipped, tracked - shipped
    deps = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("feast[redis]==") for d in deps)  # the image has the Redis client
