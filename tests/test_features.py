"""The Feast store: definitions apply, materialised captions come back online, unknown videos are
reported, and a training frame gets point-in-time push history without leakage or TTL drops."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pushgen.core.errors import DataContractError, PushgenError
from pushgen.data.caption import TextCaptioner
from pushgen.features.feast_store import (
    VideoNotFoundError,
    build_feature_store,
    get_historical_features,
    get_online_video_features,
    push_stats_frame,
    training_entities,
)


@pytest.fixture(scope="module")
def world(sim):
    videos = sim.videos.head(30)
    pushes = sim.pushes[sim.pushes["video_id"].isin(videos["video_id"])]
    pushes = pushes.assign(category=pushes["true_category"])  # stands in for the labeller here
    return videos, TextCaptioner().caption_videos(videos), pushes


@pytest.fixture(scope="module")
def store_dir(world, tmp_path_factory):
    videos, captions, pushes = world
    return build_feature_store(videos, captions, tmp_path_factory.mktemp("features"), pushes)


def test_online_features_return_materialised_captions_and_history(world, store_dir):
    videos, captions, pushes = world
    ids = list(videos["video_id"].iloc[:3])
    online = get_online_video_features(store_dir, ids)
    assert list(online) == ids
    for vid in ids:
        caption = captions.set_index("video_id").loc[vid, "caption"]
        mine = pushes[pushes["video_id"] == vid]
        row = online[vid]
        assert row["caption"] == caption and row["captioner"] == TextCaptioner.captioner_id
        assert row["topic"] == videos.set_index("video_id").loc[vid, "topic"]
        assert row["push_count"] == len(mine)
        assert row["mean_ctr"] == pytest.approx(mine["ctr"].mean())
        assert row["best_ctr"] == pytest.approx(mine["ctr"].max())
        assert row["best_category"] == mine.loc[mine["ctr"].idxmax(), "category"]


def test_unknown_videos_are_reported(store_dir):
    with pytest.raises(VideoNotFoundError, match="nope") as err:
        get_online_video_features(store_dir, ["v000000", "nope"])
    assert err.value.missing == ["nope"] and isinstance(err.value, PushgenError)
    assert list(get_online_video_features(store_dir, ["v000000", "nope"], missing="omit")) == [
        "v000000"
    ]


def test_training_frame_gets_point_in_time_history(world, store_dir):
    _, captions, pushes = world
    entities = training_entities(pushes)
    frame = get_historical_features(store_dir, entities)
    assert len(frame) == len(pushes)  # ttl=0: no training row dropped
    assert list(frame["push_id"]) == list(pushes["push_id"])  # order kept
    assert (
        frame["caption"] == frame["video_id"].map(captions.set_index("video_id")["caption"])
    ).all()
    # stats cover the pushes sent strictly before each push: its own CTR never leaks in
    earlier = pushes.apply(
        lambda p: pushes[(pushes.video_id == p.video_id) & (pushes.sent_at < p.sent_at)], axis=1
    )
    expected_count = [len(e) for e in earlier]
    assert frame["push_count"].tolist() == expected_count
    first = frame["push_count"] == 0
    assert first.sum() == pushes["video_id"].nunique()  # each video's first push has no history
    assert frame.loc[first, "best_ctr"].isna().all()
    expected_best = [e["ctr"].max() for e in earlier if len(e)]
    assert frame.loc[~first, "best_ctr"].tolist() == pytest.approx(expected_best)

    # years later, still no drop (a finite TTL would null or drop these rows)
    late = entities.head(3).assign(event_timestamp=pd.Timestamp("2031-01-01", tz="UTC"))
    late_frame = get_historical_features(store_dir, late)
    assert late_frame["caption"].notna().all() and late_frame["push_count"].notna().all()
    # dated before the video existed, or an unknown video: kept, with null features
    early = pd.DataFrame(
        {"video_id": ["v000000", "ghost"], "event_timestamp": pd.Timestamp("2020-01-01", tz="UTC")}
    )
    early_frame = get_historical_features(store_dir, early)
    assert list(early_frame["video_id"]) == ["v000000", "ghost"]
    assert early_frame["caption"].isna().all()


def test_push_stats_reject_bad_rows(world):
    _, _, pushes = world
    bad = pushes.head(4).astype({"sent_at": object})
    bad.loc[bad.index[0], "clicks"] = -1
    bad.loc[bad.index[1], "sent_at"] = "not a date"
    stats, rejected = push_stats_frame(bad)
    assert (stats["push_count"] > 0).sum() + len(rejected) == 4  # plus one 'no pushes yet' row
    assert "sent" not in rejected
    assert sorted(rejected["reject_reason"]) == ["negative clicks", "unparseable sent_at"]


def test_bad_inputs_fail_clearly(world, tmp_path):
    videos, captions, _ = world
    with pytest.raises(PushgenError, match="not a feature repo"):
        get_online_video_features(tmp_path, ["v000000"])
    orphan = captions.assign(video_id="ghost")
    with pytest.raises(DataContractError, match="no valid caption rows"):
        build_feature_store(videos, orphan, tmp_path / "f")


def test_cli_features(world, tmp_path, capsys):
    from pushgen.cli.main import main
    from pushgen.data.contracts import write_table

    videos, captions, pushes = world
    for name, table in (("videos", videos), ("captions", captions), ("pushes", pushes)):
        write_table(table, tmp_path / f"{name}.parquet")
    repo = tmp_path / "features"
    assert (
        main(
            [
                "features",
                "apply",
                "--dir",
                str(repo),
                "--videos",
                str(tmp_path / "videos.parquet"),
                "--captions",
                str(tmp_path / "captions.parquet"),
            ]
        )
        == 0
    )
    assert main(["features", "materialize", "--dir", str(repo)]) == 0
    capsys.readouterr()
    assert main(["features", "get", "--dir", str(repo), "v000001"]) == 0
    row = json.loads(capsys.readouterr().out)["v000001"]
    assert row["caption"].startswith(videos.set_index("video_id").loc["v000001", "title"])
    assert row["push_count"] == 0  # applied without pushes: no history yet
    assert main(["features", "get", "--dir", str(repo), "ghost"]) == 2
    assert "no features for 1 video id(s): ghost" in capsys.readouterr().err
