"""The serving log: every candidate the transformer saw and which one it chose (contract `serving_log`).

Rows are appended as JSON lines to `<log_dir>/serving_log-<opened, UTC>-<pod>-<n>.jsonl` (`pod`:
the pod's name, its HOSTNAME, so the windows of every replica can share one prefix in the store);
a file is closed and a new one started after `max_rows` rows, so monitoring can pick up closed files while the server
keeps writing. `read_serving_log(log_dir)` loads every file into one frame and validates it.

Columns: the contract's (`request_id`, `video_id`, `category`, `text`, `reward_score`, `selected`,
`model_version`, `served_at`) plus `guard_ok`, `guard_reasons`, `degraded` and, per
`serving.explore.log_rows`, `candidate_index`, `n_candidates`, `chosen_index`, `propensity`,
`explored`, `epsilon`, `status` (served | degraded | all_rejected), `topic`, `caption_chars`,
`caption_sha`, and from the transformer `style` (the text's detected style), `win_prob`,
`latency_{feast,generate,rank,total}_ms`, `generator_version`, `ranker_version` (docs/design.md
lists which monitor check reads which). A request whose candidates were all rejected still has its
rows (none selected). `read_jsonl` sets a malformed line (a half-written last line) aside.

Windows to the artifact store (`ship_to`, a local directory or `s3://bucket/prefix`): a file is
also closed after `window_s` seconds, and every closed file is written as parquet to
`<ship_to>/windows/<file stem>.parquet` by a background thread, so requests never wait on S3.
A failed upload stays queued (the JSONL file is kept either way) and is retried at the next
rotation and at shutdown; `read_serving_windows(ship_to, start, end)` reads every pod's windows
back (rows served in [start, end) when given) for monitoring and for `ingest-feedback`. Feedback for the same windows lands beside them, under `<ship_to>/feedback/`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pushgen.data.contracts import validate

SERVING_LOG_GLOB = "serving_log-*.jsonl"
WINDOWS = "windows"  # key prefix of the shipped windows under `ship_to`
FEEDBACK = "feedback"  # key prefix of the windows' feedback under `ship_to`
logger = logging.getLogger(__name__)
_OPENED = re.compile(r"serving_log-(\d{8}T\d{6})-")


def pod_name() -> str:
    """This process's pod (Kubernetes sets HOSTNAME to the pod's name), safe in a file name."""
    name = os.environ.get("HOSTNAME") or socket.gethostname()
    return re.sub(r"[^A-Za-z0-9.-]", "-", name) or "pod"


@dataclass(frozen=True)
class ServingLogConfig:
    """Where and how the serving log is written."""

    log_dir: Path = Path("runs/serving-log")  # directory of rotated JSONL files
    max_rows: int = 10_000  # rows per file before rotating to a new one
    ship_to: str | None = None  # artifact store URI the closed windows go to; None: kept local
    window_s: float = 3600.0  # a file is also closed (and shipped) after this many seconds
    pod: str = field(default_factory=pod_name)  # in every file name: replicas never clash


class ServingLog:
    """Thread-safe appender with rotation; one instance per server process."""

    def __init__(self, config: ServingLogConfig):
        self.config = config
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._index = 0
        self._rows_in_file = 0
        self._opened_at = 0.0
        self._fh = None
        self._path: Path | None = None
        self._store = None
        self._shipper: ThreadPoolExecutor | None = None
        self._unshipped: list[Path] = []  # closed files whose upload has not succeeded yet
        self._shipping: Future | None = None
        if config.ship_to:
            from pushgen.core.store import ArtifactStore

            self._store = ArtifactStore.from_uri(config.ship_to)
            self._shipper = ThreadPoolExecutor(1, thread_name_prefix="serving-log-ship")

    def _open_next(self) -> None:
        self._close_current()
        self._index += 1
        opened = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"serving_log-{opened}-{self.config.pod}-{self._index:05d}.jsonl"
        self._path = self.config.log_dir / name
        self._fh = self._path.open("a", encoding="utf-8")
        self._rows_in_file = 0
        self._opened_at = time.monotonic()

    def _close_current(self) -> None:
        if self._fh is None:
            return
        self._fh.close()
        self._fh = None
        if self._shipper is not None and self._rows_in_file:
            self._unshipped.append(self._path)
            self._shipping = self._shipper.submit(self._ship_pending)

    def _ship_pending(self) -> int:
        """Upload every closed, unshipped file (oldest first); returns how many went up."""
        with self._lock:
            pending = list(self._unshipped)
        done = 0
        for path in pending:
            try:
                ship_window(path, self._store)
            except Exception as exc:  # S3 down: keep it queued, retried at the next rotation
                logger.warning("serving log window %s not shipped (%s); will retry", path.name, exc)
                break
            with self._lock:
                self._unshipped.remove(path)
            done += 1
        return done

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append rows (one JSON line each), flushed so a crash loses at most the current request."""
        with self._lock:
            for row in rows:
                if (
                    self._fh is None
                    or self._rows_in_file >= self.config.max_rows
                    or time.monotonic() - self._opened_at >= self.config.window_s
                ):
                    self._open_next()
                self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                self._rows_in_file += 1
            self._fh.flush()

    def unshipped(self) -> list[Path]:
        """Closed files not yet in the artifact store."""
        with self._lock:
            return list(self._unshipped)

    def close(self) -> None:
        """Close the current file; with `ship_to`, one last try to ship everything pending."""
        with self._lock:
            self._close_current()
        if self._shipper is not None:
            self._shipper.shutdown(wait=True)
            if self._unshipped:
                self._ship_pending()
            if self._unshipped:
                logger.error(
                    "%d serving log windows not shipped; they stay in %s",
                    len(self._unshipped),
                    self.config.log_dir,
                )


def read_jsonl(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows, lines set aside) of one JSONL file. Values keep their JSON types (a digit-only id
    written as a string stays a string); a line that is not a JSON object (a half-written last
    line after a crash) is set aside with `file`, `line`, `raw` and `reject_reason`, never fatal."""
    path = Path(path)
    rows, bad = [], []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                why = f"malformed JSON line ({getattr(exc, 'msg', exc)})"
                bad.append(
                    {"file": path.name, "line": number, "raw": line[:500], "reject_reason": why}
                )
                continue
            if not isinstance(obj, dict):
                why = "a JSON line that is not an object"
                bad.append(
                    {"file": path.name, "line": number, "raw": line[:500], "reject_reason": why}
                )
                continue
            rows.append(obj)
    return pd.DataFrame(rows), pd.DataFrame(bad, columns=["file", "line", "raw", "reject_reason"])


def read_jsonl_files(paths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every JSONL file in `paths`, concatenated, and every line set aside (`source`: the file)."""
    frames, bad = [], []
    for path in paths:
        rows, aside = read_jsonl(path)
        frames.append(rows)
        bad.append(aside.assign(source="serving_log_file"))
    frames = [f for f in frames if not f.empty]
    bad = [b for b in bad if not b.empty]
    return (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(),
        pd.concat(bad, ignore_index=True) if bad else pd.DataFrame(columns=["reject_reason"]),
    )


def _read_jsonl(path: Path) -> pd.DataFrame:
    rows, bad = read_jsonl(path)
    if len(bad):
        logger.warning("%s: %d malformed line(s) set aside", path.name, len(bad))
    return rows


def ship_window(path: Path, store) -> str:
    """One closed JSONL file -> `<store>/windows/<stem>.parquet`; returns the key."""
    df = _read_jsonl(path)
    for col in df.columns:  # mixed-type columns (None beside str/float) as parquet can hold them
        if df[col].dtype == object:
            df[col] = df[col].map(
                lambda v: None if v is None else json.dumps(v) if isinstance(v, (list, dict)) else v
            )
    return _put_table(df, store, f"{WINDOWS}/{path.stem}.parquet")


def _put_table(df: pd.DataFrame, store, key: str) -> str:
    """`df` as parquet at `key` in `store` (through a temporary file); returns the key."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "table.parquet"
        df.to_parquet(local, index=False)
        store.put_file(local, key)
    return key


def load_serving_windows(
    uri: str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Every pod's shipped windows under `uri` (`<uri>/windows/*.parquet`), concatenated,
    unvalidated; with `start`/`end` (UTC), only rows served in [start, end) (a row whose
    `served_at` does not parse is kept, for the contract to set aside)."""
    from pushgen.core.store import ArtifactStore

    store = ArtifactStore.from_uri(uri)
    keys = sorted(k for k in store.list(WINDOWS) if k.endswith(".parquet"))
    if end is not None:  # a file opened at or after `end` holds nothing before it
        stamp = pd.Timestamp(end).tz_convert("UTC").strftime("%Y%m%dT%H%M%S")
        keys = [k for k in keys if not (m := _OPENED.match(k)) or m.group(1) < stamp]
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, key in enumerate(keys):
            frames.append(
                pd.read_parquet(store.get_file(f"{WINDOWS}/{key}", Path(tmp) / f"{i}.parquet"))
            )
    log = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if log.empty or (start is None and end is None) or "served_at" not in log:
        return log
    served = pd.to_datetime(log["served_at"], utc=True, errors="coerce", format="mixed")
    keep = served.isna()
    inside = pd.Series(True, index=log.index)
    if start is not None:
        inside &= served >= pd.Timestamp(start).tz_convert("UTC")
    if end is not None:
        inside &= served < pd.Timestamp(end).tz_convert("UTC")
    return log[keep | inside].reset_index(drop=True)


def ship_feedback(feedback: pd.DataFrame, uri: str, name: str) -> str:
    """Feedback for shipped windows, beside them: `<uri>/feedback/<name>.parquet`; the key."""
    from pushgen.core.store import ArtifactStore
    from pushgen.data.contracts import check_columns

    check_columns("feedback", feedback)  # rows are judged where they are read, none dropped here
    return _put_table(feedback, ArtifactStore.from_uri(uri), f"{FEEDBACK}/{name}.parquet")


def read_serving_windows(
    uri: str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every pod's shipped windows under `uri` (rows served in [start, end) when given) as
    (valid, rejected) frames per the `serving_log` contract."""
    return validate("serving_log", load_serving_windows(uri, start, end))


def read_serving_log(log_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All rows under `log_dir` as (valid, rejected) frames per the `serving_log` contract."""
    files = sorted(Path(log_dir).glob(SERVING_LOG_GLOB))
    frames = [_read_jsonl(f) for f in files if f.stat().st_size > 0]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return validate("serving_log", df)
