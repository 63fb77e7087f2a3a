"""The pipeline's materialize step: fresh features into Feast (SQLite), training captions back
through get_historical_features, pushes without a caption set aside."""

import pytest

from pushgen.data.caption import TextCaptioner
from pushgen.features.feast_store import get_online_video_features
from pushgen.features.fresh import ab_test_captions, materialize_and_read


@pytest.mark.slow  # Feast apply + materialise + historical read: ~15-40 s on 2 shared cores
def test_materialize_then_read_training_captions(sim, tmp_path):
    videos = sim.videos.head(20)
    pushes = sim.pushes[sim.pushes["video_id"].isin(videos["video_id"])]
    captions = TextCaptioner().caption_videos(videos.iloc[:15])  # 5 videos left uncaptioned
    counts, read, rejected = materialize_and_read(videos, captions, pushes, pushes, tmp_path / "r")
    # online: the new videos' captions are served
    online = get_online_video_features(tmp_path / "r", captions["video_id"].head(3))
    assert set(online) == set(captions["video_id"].head(3))
    # offline: the captions SFT trains on are the ones Feast holds
    want = captions.set_index("video_id")["caption"]
    assert len(read) and (read["caption"] == read["video_id"].map(want)).all()
    uncaptioned = set(videos["video_id"].iloc[15:])
    assert set(rejected["video_id"]) == uncaptioned & set(pushes["video_id"])
    assert (rejected["reject_reason"].str.contains("no caption in Feast")).all()
    assert counts["training_pushes"] == len(pushes)
    assert counts["training_pushes_without_caption"] == len(rejected)
    # the reward step's context: the A/B tests' videos' captions, as Feast holds them now
    ab = sim.ab_tests[sim.ab_tests["video_id"].isin(videos["video_id"])]
    ab_read, ab_rejected = ab_test_captions(tmp_path / "r", ab)
    assert len(ab_read) and (ab_read["caption"] == ab_read["video_id"].map(want)).all()
    assert set(ab_rejected["video_id"]) == uncaptioned & set(ab["video_id"])
    assert set(ab_read["video_id"]) | set(ab_rejected["video_id"]) == set(ab["video_id"])
