"""The Feast feature store of a run: write feature data, apply, materialise, read online/offline.

A run's store is a directory holding a copy of `feature_repo/` (its `feature_store.yaml` uses
paths relative to the repo, and `definitions.py`) plus `data/` with the parquet sources, the file
registry and the SQLite online store. So any run directory works, and feast's own CLI works on it
too (`feast -c runs/x/features feature-views list`).

    paths = write_feature_data("runs/x/features", videos, captions, pushes)
    store = apply_repo("runs/x/features")
    materialize(store)
    get_online_video_features(store, ["v000001"])        # serving: caption, topic, push stats
    get_historical_features(store, training_entities(pushes))   # training: point-in-time join

CLI: `pushgen features apply --dir D --videos V --captions C [--pushes P]` writes the data and
applies; `pushgen features materialize --dir D` loads the online store.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pushgen.core.errors import DataContractError, PushgenError
from pushgen.data.contracts import validate, write_table

REPO_DIR = Path(__file__).resolve().parents[2] / "feature_repo"
SERVICE = "video_serving"
CAPTION_FILE = "data/video_caption.parquet"
STATS_FILE = "data/push_stats.parquet"
FEATURES = ("caption", "topic", "captioner", "push_count", "mean_ctr", "best_ctr", "best_category")


class VideoNotFoundError(PushgenError):
    """The online store has no features for these video ids (serving answers 404)."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        super().__init__(
            f"no features for {len(missing)} video id(s): {shown} "
            "(not captioned, not materialised, or unknown)"
        )


def _utc(values) -> pd.Series:
    """Timestamps as tz-aware UTC (naive ones are taken to be UTC already)."""
    ts = pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(ts):
        ts = pd.to_datetime(ts, errors="coerce", format="mixed")  # mixed: strings, one per row
    return ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")


def video_caption_frame(
    videos: pd.DataFrame, captions: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(`video_caption` rows, rejected caption rows): caption + topic per video at publication."""
    videos_ok, _ = validate("videos", videos)
    caps_ok, rejected = validate("captions", captions, known_video_ids=videos_ok["video_id"])
    frame = caps_ok[["video_id", "caption", "captioner", "created_at"]].merge(
        videos_ok[["video_id", "topic", "published_at"]], on="video_id", how="left"
    )
    frame["event_timestamp"] = _utc(frame["published_at"].fillna(frame["created_at"]))
    frame["created"] = _utc(frame["created_at"])
    bad_time = frame["event_timestamp"].isna()
    if bad_time.any():
        rejected = pd.concat(
            [rejected, caps_ok[bad_time.to_numpy()].assign(reject_reason="no usable timestamp")]
        )
    frame = frame[~bad_time]
    frame = frame.assign(topic=frame["topic"].astype("string").fillna(""))
    cols = ["video_id", "caption", "topic", "captioner", "event_timestamp", "created"]
    return frame[cols].reset_index(drop=True), rejected


def push_stats_frame(
    pushes: pd.DataFrame, known_video_ids=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(`push_stats` rows, rejected push rows): running history stats per video, one row per push.

    Row k of a video holds the count, mean and best CTR of its first k pushes (send order) and the
    `category` of the best one ('' when pushes are not labelled), timestamped at the k-th push.
    """
    valid, rejected = validate("pushes", pushes, known_video_ids=known_video_ids)
    valid = valid.assign(sent=_utc(valid["sent_at"]).to_numpy())
    no_time = valid["sent"].isna()
    unparsed = valid[no_time].drop(columns="sent").assign(reject_reason="unparseable sent_at")
    rejected = pd.concat([df for df in (rejected, unparsed) if len(df)] or [rejected])
    valid = valid[~no_time].sort_values(["video_id", "sent", "push_id"], kind="stable")
    ctr = pd.to_numeric(valid["ctr"]).astype(float)
    by_video = ctr.groupby(valid["video_id"], sort=False)
    count = by_video.cumcount() + 1
    best = by_video.cummax()
    category = valid["category"].astype("string") if "category" in valid.columns else None
    if category is not None:
        # the category of the running best: set where a push reaches the best so far, carried on
        at_best = category.where(ctr.to_numpy() >= best.to_numpy())
        best_category = at_best.groupby(valid["video_id"], sort=False).ffill().fillna("")
    else:
        best_category = pd.Series("", index=valid.index)
    frame = pd.DataFrame(
        {
            "video_id": valid["video_id"].to_numpy(),
            "push_count": count.to_numpy(np.int64),
            "mean_ctr": (by_video.cumsum() / count).to_numpy(),
            "best_ctr": best.to_numpy(),
            "best_category": best_category.astype(str).to_numpy(),
            "event_timestamp": valid["sent"].to_numpy(),
        }
    )
    frame["event_timestamp"] = _utc(frame["event_timestamp"])
    # several pushes of one video at the same instant: the last row (all of them counted) wins
    frame = frame.drop_duplicates(["video_id", "event_timestamp"], keep="last")
    frame = pd.concat([_no_history_rows(valid["video_id"].unique()), frame], ignore_index=True)
    frame["created"] = frame["event_timestamp"]
    return frame, rejected


def _no_history_rows(video_ids) -> pd.DataFrame:
    """One 'no pushes yet' row per video at the epoch.

    Feast's file store drops an entity row whose every feature row is newer than it (it filters
    after the join), so a training row for a video's first push would vanish; this row makes it
    read push_count 0 instead. For serving, a video without pushes reads 0, not null.
    """
    n = len(video_ids)
    return pd.DataFrame(
        {
            "video_id": np.asarray(video_ids, dtype=object),
            "push_count": np.zeros(n, dtype=np.int64),
            "mean_ctr": np.full(n, np.nan),
            "best_ctr": np.full(n, np.nan),
            "best_category": np.full(n, "", dtype=object),
            "event_timestamp": pd.Series(pd.Timestamp(0, tz="UTC"), index=range(n)),
        }
    )


def render_repo(repo_dir: str | Path) -> Path:
    """Copy `feature_repo/` (definitions; the config unless `repo_dir` has its own) into
    `repo_dir`; returns it.

    A `feature_store.yaml` already there is kept: it is the store serving reads (on a cluster the
    `pushgen-feature-store` ConfigMap's: Redis online store, registry on S3), and materialising
    through the local SQLite config instead would fill a store no transformer reads.
    """
    repo = Path(repo_dir)
    (repo / "data").mkdir(parents=True, exist_ok=True)
    for name in ("feature_store.yaml", "definitions.py", ".feastignore"):
        if name != "feature_store.yaml" or not (repo / name).exists():
            shutil.copyfile(REPO_DIR / name, repo / name)
    return repo


def write_feature_data(
    repo_dir: str | Path,
    videos: pd.DataFrame,
    captions: pd.DataFrame,
    pushes: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Render the repo into `repo_dir` and write its parquet sources; returns paths and counts.

    Without `pushes`, the stats source is written empty (serving then returns null stats).
    """
    repo = render_repo(repo_dir)
    caption_rows, rejected_caps = video_caption_frame(videos, captions)
    if caption_rows.empty:
        raise DataContractError("no valid caption rows: nothing to serve (see rejected rows)")
    if pushes is not None:
        stats_rows, rejected_pushes = push_stats_frame(pushes, videos["video_id"])
    else:
        stats_rows, rejected_pushes = push_stats_frame_empty(), pd.DataFrame()
    # captioned videos without any push still read "0 pushes" online
    quiet = caption_rows.loc[~caption_rows["video_id"].isin(stats_rows["video_id"]), "video_id"]
    if len(quiet):
        extra = _no_history_rows(quiet.to_numpy())
        stats_rows = pd.concat([stats_rows, extra.assign(created=extra["event_timestamp"])])
    rejected = pd.concat(
        [rejected_caps.assign(table="captions"), rejected_pushes.assign(table="pushes")],
        ignore_index=True,
    )
    return {
        "repo": repo,
        "video_caption": write_table(caption_rows, repo / CAPTION_FILE),
        "push_stats": write_table(stats_rows, repo / STATS_FILE),
        "rejected": rejected,
        "counts": {
            "videos_with_caption": len(caption_rows),
            "push_stats_rows": len(stats_rows),
            "rejected_captions": len(rejected_caps),
            "rejected_pushes": len(rejected_pushes),
        },
    }


def push_stats_frame_empty() -> pd.DataFrame:
    """A `push_stats` source with the right columns and types and no rows."""
    ts = pd.Series([], dtype="datetime64[ns, UTC]")
    return pd.DataFrame(
        {
            "video_id": pd.Series([], dtype=object),
            "push_count": pd.Series([], dtype=np.int64),
            "mean_ctr": pd.Series([], dtype=float),
            "best_ctr": pd.Series([], dtype=float),
            "best_category": pd.Series([], dtype=object),
            "event_timestamp": ts,
            "created": ts,
        }
    )


def _definitions():
    """The objects of `feature_repo/definitions.py`, imported from the repo file itself."""
    spec = importlib.util.spec_from_file_location(
        "pushgen_feature_definitions", REPO_DIR / "definitions.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.OBJECTS


def open_store(repo_dir: str | Path):
    """A FeatureStore over a rendered repo directory (clear error if it is not one)."""
    from feast import FeatureStore

    repo = Path(repo_dir)
    if not (repo / "feature_store.yaml").exists():
        raise PushgenError(
            f"{repo} is not a feature repo (no feature_store.yaml): run `pushgen features apply`"
        )
    return FeatureStore(repo_path=str(repo))


def check_serving_features(store) -> None:
    """Fail now, naming the cause, if the store's registry lacks the serving feature service."""
    try:
        store.get_feature_service(SERVICE)
    except Exception as exc:  # feast raises FeatureServiceNotFoundException or registry errors
        raise PushgenError(
            f"feature store {store.repo_path}: no feature service {SERVICE!r} in its registry "
            f"({type(exc).__name__}); run the materialise step (`pushgen features apply` and "
            "`materialize`) against this store first"
        ) from None


def apply_repo(repo_dir: str | Path):
    """Register the definitions in the repo's registry (like `feast apply`); returns the store."""
    repo = Path(repo_dir)
    if not (repo / CAPTION_FILE).exists():
        raise PushgenError(f"no feature data in {repo}/data: write it first (write_feature_data)")
    store = open_store(render_repo(repo))
    store.apply(_definitions())
    return store


def materialize(store_or_repo) -> dict[str, int]:
    """Load every feature row into the online store (latest per video wins); returns row counts."""
    store = _store(store_or_repo)
    repo = Path(store.repo_path)
    caption_ts = pd.read_parquet(repo / CAPTION_FILE, columns=["event_timestamp"])[
        "event_timestamp"
    ]
    stats_ts = pd.read_parquet(repo / STATS_FILE, columns=["event_timestamp"])["event_timestamp"]
    stamps = pd.concat([caption_ts, stats_ts]).dropna()
    if stamps.empty:
        raise DataContractError(f"{repo}: the feature sources have no rows to materialise")
    # explicit bounds: with ttl=0, materialize_incremental would start at 'now' and load nothing
    start = stamps.min().to_pydatetime() - timedelta(seconds=1)
    end = stamps.max().to_pydatetime() + timedelta(seconds=1)
    store.materialize(start_date=start, end_date=end)
    return {"video_caption": len(caption_ts), "push_stats": len(stats_ts)}


def build_feature_store(
    videos: pd.DataFrame,
    captions: pd.DataFrame,
    out_dir: str | Path,
    pushes: pd.DataFrame | None = None,
) -> Path:
    """Write the feature data into `out_dir`, apply the repo and materialise it; returns the repo.

    The one call a run needs before serving (`FeatureStore(repo_path=<returned path>)`).
    """
    write_feature_data(out_dir, videos, captions, pushes)
    materialize(apply_repo(out_dir))
    return Path(out_dir)


def _store(store_or_repo):
    return open_store(store_or_repo) if isinstance(store_or_repo, (str, Path)) else store_or_repo


def get_online_video_features(
    store_or_repo, video_ids: Iterable[str], missing: str = "raise"
) -> dict[str, dict[str, Any]]:
    """`{video_id: {caption, topic, captioner, push_count, mean_ctr, best_ctr, best_category}}`.

    A video with no materialised caption is unknown to serving: `missing="raise"` raises
    `VideoNotFoundError` (HTTP 404 in serving) naming them; `missing="omit"` leaves them out.
    """
    if missing not in ("raise", "omit"):
        raise PushgenError(f"missing must be 'raise' or 'omit', got {missing!r}")
    ids = [str(v) for v in video_ids]
    if not ids:
        return {}
    store = _store(store_or_repo)
    response = store.get_online_features(
        features=store.get_feature_service(SERVICE), entity_rows=[{"video_id": v} for v in ids]
    ).to_dict()
    out: dict[str, dict[str, Any]] = {}
    absent: list[str] = []
    for i, vid in enumerate(ids):
        row = {name: response[name][i] for name in FEATURES}
        if row["caption"] is None:
            absent.append(vid)
        else:
            out[vid] = row
    if absent and missing == "raise":
        raise VideoNotFoundError(absent)
    return out


def training_entities(pushes: pd.DataFrame) -> pd.DataFrame:
    """Entity rows for a training frame: one per push, timestamped just before it was sent.

    One microsecond earlier, so the point-in-time join gives the history *before* the push: its
    own CTR (the training target) never leaks into its features.
    """
    missing = [c for c in ("push_id", "video_id", "sent_at") if c not in pushes.columns]
    if missing:
        raise DataContractError(f"training entities need columns {missing}")
    return pd.DataFrame(
        {
            "push_id": pushes["push_id"].to_numpy(),
            "video_id": pushes["video_id"].to_numpy(),
            "event_timestamp": (_utc(pushes["sent_at"]) - pd.Timedelta(microseconds=1)).to_numpy(),
        }
    )


def get_historical_features(store_or_repo, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join of the serving features onto `entity_df` (video_id, event_timestamp).

    Both views have ttl=0, so no entity row is dropped for being old; rows of unknown videos (or
    dated before the video existed) come back with null features, the caller decides. Every row
    of `entity_df` comes back, in order.
    """
    for col in ("video_id", "event_timestamp"):
        if col not in entity_df.columns:
            raise DataContractError(
                f"entity_df needs a {col!r} column; got {list(entity_df.columns)}"
            )
    store = _store(store_or_repo)
    entity_df = entity_df.assign(event_timestamp=_utc(entity_df["event_timestamp"]).to_numpy())
    # feast keeps one row per (entity, timestamp) and drops an entity row whose feature rows are
    # all newer than it (e.g. dated before the video existed): ask for the distinct keys, then
    # join back, so every row of entity_df returns, in order, null where nothing matched
    keys = entity_df[["video_id", "event_timestamp"]].drop_duplicates()
    features = store.get_historical_features(
        entity_df=keys, features=store.get_feature_service(SERVICE)
    ).to_df()
    features["event_timestamp"] = _utc(features["event_timestamp"]).to_numpy()
    full = entity_df.merge(features, on=["video_id", "event_timestamp"], how="left")
    return full.reset_index(drop=True)
