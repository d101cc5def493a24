"""The prediction journal: predictions the service has answered but not yet moved into the prediction log.

Why a journal: the log is Parquet files that monitoring reads by day. Writing one file per
micro-batch before answering costs milliseconds per batch and leaves thousands of tiny files. So
each micro-batch is first committed to a local SQLite file (WAL mode: a fraction of a millisecond,
and it survives a crash of the service), then its requests are answered, and every few seconds
the journal's rows move to the log as one Parquet file per day. SQLite because it ships with
Python, is crash-safe, and lets several replicas on one host share one journal.

A move is exactly-once: the row range is recorded before the file is written, the file's name
follows from the range (writing it again replaces it), and the rows are deleted in the same
transaction that clears the record. A crash at any point is finished by the next flush, in this
process or the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from core.prediction_log import append_predictions

COLUMNS = ("timestamp", "request_id", "text", "label", "score", "probs", "model_name", "model_version")
GENERATION_COLUMNS = ("response", "generation")  # empty on classifier rows; see core/prediction_log.py
COLUMNS = COLUMNS + GENERATION_COLUMNS
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, {", ".join(COLUMNS)});
CREATE TABLE IF NOT EXISTS moving (first INTEGER NOT NULL, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class PredictionJournal:
    """`write` rows durably now; `flush` moves them into the Parquet prediction log at `log_uri`."""

    def __init__(self, path: str | Path, log_uri: str, rows_per_file: int = 200_000):
        self.path, self.log_uri, self.rows_per_file = Path(path), log_uri, rows_per_file
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the batch thread and the flusher, so one lock around it.
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # survives a crash of the process; fsync at checkpoints
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(predictions)")}
        for column in (c for c in GENERATION_COLUMNS if c not in have):  # a journal written before generation rows
            self._db.execute(f"ALTER TABLE predictions ADD COLUMN {column}")
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('id', ?)", (uuid.uuid4().hex[:8],))
            self.id = db.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()[0]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def write(self, rows: Sequence[tuple]) -> None:
        """Commit rows (tuples in `COLUMNS` order, timestamp as ISO 8601 text) in one transaction.

        A row may stop before the generation columns (a classifier's prediction): they stay empty.
        """
        rows = [tuple(r) + (None,) * (len(COLUMNS) - len(r)) for r in rows]
        with self._transaction() as db:
            db.executemany(
                f"INSERT INTO predictions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", rows
            )

    def pending(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM predictions").fetchone()[0]

    def oldest_age_seconds(self) -> float:
        """How long the oldest row has waited to move into the log (0 when none waits): the log store's health."""
        with self._lock:
            row = self._db.execute("SELECT timestamp FROM predictions ORDER BY id LIMIT 1").fetchone()
        return max(0.0, time.time() - datetime.fromisoformat(row[0]).timestamp()) if row else 0.0

    def flush(self) -> int:
        """Move the rows journaled so far into the log, `rows_per_file` per file; returns how many moved.

        Rows that arrive during the flush wait for the next one, so busy traffic cannot split a flush
        into many small files.
        """
        with self._lock:
            upto = self._db.execute("SELECT max(id) FROM predictions").fetchone()[0]
        moved = 0
        while upto is not None and (n := self._move_one_range(upto)) is not None:
            moved += n
        return moved

    def _move_one_range(self, upto: int) -> int | None:
        """Move the unfinished range, or else the oldest rows up to id `upto`; None when there are none."""
        with self._transaction() as db:
            claimed = db.execute("SELECT first, last FROM moving").fetchone()
            if claimed is None:  # no unfinished move: claim the oldest rows
                first, last = db.execute(
                    "SELECT min(id), max(id) FROM (SELECT id FROM predictions WHERE id <= ? ORDER BY id LIMIT ?)",
                    (upto, self.rows_per_file),
                ).fetchone()
                if first is None:
                    return None
                db.execute("INSERT INTO moving VALUES (?, ?)", (first, last))
            else:
                first, last = claimed
            rows = db.execute(
                f"SELECT {', '.join(COLUMNS)} FROM predictions WHERE id BETWEEN ? AND ? ORDER BY id", (first, last)
            ).fetchall()
        if rows:
            append_predictions(self.log_uri, pd.DataFrame(rows, columns=list(COLUMNS)), batch_id=f"{self.id}-{first}")
        with self._transaction() as db:
            db.execute("DELETE FROM predictions WHERE id BETWEEN ? AND ?", (first, last))
            db.execute("DELETE FROM moving WHERE first = ?", (first,))
        return len(rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()


async def flush_until_stopped(
    journal: PredictionJournal, seconds: float, stopping: asyncio.Event, on_failure: Callable[[], None]
) -> None:
    """Flush every `seconds` until `stopping` is set, then once more; `on_failure` runs inside `except`.

    Told to stop rather than cancelled, so a flush in its worker thread is never cut off. The last
    round is one that *starts* after the stop: a round already running when the stop came chose its
    rows before the last batches were journaled (issue 12: under load a graceful stop left one
    micro-batch of answered predictions out of the log).
    """
    last_round = False
    while not last_round:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), seconds)
        last_round = stopping.is_set()  # read before the flush chooses its rows
        try:
            await asyncio.to_thread(journal.flush)
        except Exception:
            on_failure()
