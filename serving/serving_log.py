"""The serving log: every candidate the transformer saw and which one it chose (contract `serving_log`).

Rows are appended as JSON lines to `<log_dir>/serving_log-<start>-<n>.jsonl`; a file is closed and
a new one started after `max_rows` rows, so monitoring can pick up closed files while the server
keeps writing. `read_serving_log(log_dir)` loads every file into one frame and validates it.

Columns: the contract's (`request_id`, `video_id`, `category`, `text`, `reward_score`, `selected`,
`model_version`, `served_at`) plus `guard_ok`, `guard_reasons`, `degraded` and, per
`serving.explore.log_rows`, `candidate_index`, `n_candidates`, `chosen_index`, `propensity`,
`explored`, `epsilon`, `status` (served | degraded | all_rejected), `topic`, `caption_chars`,
`caption_sha`. A request whose candidates were all rejected still has its rows (none selected).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pushgen.contracts import validate

SERVING_LOG_GLOB = "serving_log-*.jsonl"


@dataclass(frozen=True)
class ServingLogConfig:
    """Where and how the serving log is written."""

    log_dir: Path = Path("runs/serving-log")  # directory of rotated JSONL files
    max_rows: int = 10_000  # rows per file before rotating to a new one


class ServingLog:
    """Thread-safe appender with rotation; one instance per server process."""

    def __init__(self, config: ServingLogConfig):
        self.config = config
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._stamp = time.strftime("%Y%m%dT%H%M%S")
        self._index = 0
        self._rows_in_file = 0
        self._fh = None

    def _open_next(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._index += 1
        path = self.config.log_dir / f"serving_log-{self._stamp}-{self._index:05d}.jsonl"
        self._fh = path.open("a", encoding="utf-8")
        self._rows_in_file = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append rows (one JSON line each), flushed so a crash loses at most the current request."""
        with self._lock:
            for row in rows:
                if self._fh is None or self._rows_in_file >= self.config.max_rows:
                    self._open_next()
                self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                self._rows_in_file += 1
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def read_serving_log(log_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All rows under `log_dir` as (valid, rejected) frames per the `serving_log` contract."""
    files = sorted(Path(log_dir).glob(SERVING_LOG_GLOB))
    frames = [pd.read_json(f, lines=True, dtype=False) for f in files if f.stat().st_size > 0]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return validate("serving_log", df)
