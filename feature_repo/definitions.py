"""Feast definitions: what pushgen knows about a video, for training and for serving.

Two feature views over parquet files that `pushgen.features.feast_store.write_feature_data` writes under
`<repo>/data/` (paths are relative to the repo, so any run directory can host a copy):

- `video_caption`: the caption the generator writes from, the video's topic, and which captioner
  wrote it; keyed by `video_id`, timestamped at publication.
- `push_stats`: the video's push history as of each push (count, mean and best CTR, style of the
  best push), one row per push, so a training row sees only the pushes sent before it.

`video_serving` bundles both for the KServe transformer's online lookup by `video_id`.

    pushgen features apply --dir runs/x/features   # or: feast -c feature_repo apply
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

# The one entity: a video, joined on `video_id` (the id every pushgen table carries).
video = Entity(
    name="video",
    join_keys=["video_id"],
    value_type=ValueType.STRING,
    description="A video pushes are written for",
)

# One row per captioned video; `event_timestamp` is the publication time, so a training row
# for a push (sent after publication) always finds its caption.
video_caption_source = FileSource(
    name="video_caption_source",
    path="data/video_caption.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

# ttl=0: a caption does not expire. A finite TTL would make get_historical_features drop
# training rows whose push came later than the TTL after publication.
video_caption = FeatureView(
    name="video_caption",
    entities=[video],
    ttl=timedelta(0),
    schema=[
        Field(name="caption", dtype=String, description="dense caption the generator reads"),
        Field(name="topic", dtype=String, description="the video's topic"),
        Field(name="captioner", dtype=String, description="model id that wrote the caption"),
    ],
    source=video_caption_source,
    online=True,
    tags={"owner": "data-steps"},
)

# One row per push, in send order: stats of the video's pushes up to and including that push.
push_stats_source = FileSource(
    name="push_stats_source",
    path="data/push_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

# ttl=0 again: a video's history stays its history, however old its last push.
push_stats = FeatureView(
    name="push_stats",
    entities=[video],
    ttl=timedelta(0),
    schema=[
        Field(name="push_count", dtype=Int64, description="pushes sent for the video so far"),
        Field(name="mean_ctr", dtype=Float64, description="mean CTR of those pushes"),
        Field(name="best_ctr", dtype=Float64, description="best CTR among them"),
        Field(
            name="best_category",
            dtype=String,
            description="style of the best push ('' if unlabelled)",
        ),
    ],
    source=push_stats_source,
    online=True,
    tags={"owner": "data-steps"},
)

# What serving reads in one online call, and what training joins point-in-time.
video_serving = FeatureService(
    name="video_serving",
    features=[video_caption, push_stats],
    description="caption, topic and push history of a video",
)

# Everything `pushgen.features.feast_store.apply_repo` registers (feast's CLI finds them by scanning).
OBJECTS = [video, video_caption_source, video_caption, push_stats_source, push_stats, video_serving]
