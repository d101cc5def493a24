"""The serving journal: answered predictions reach the Parquet log exactly once, whatever crashes in between."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import fsspec
import pytest

import serving.journal
from core.prediction_log import read_window
from serving.journal import PredictionJournal

T0 = datetime(2026, 11, 29, 23, 59, 58, tzinfo=UTC)


def _rows(start: int, n: int) -> list[tuple]:
    """Rows in the journal's column order, one second apart (crossing midnight when start is near it)."""
    return [
        (
            (T0 + timedelta(seconds=i)).isoformat(),
            f"req-{i}",
            f"text {i}",
            "positive",
            0.9,
            json.dumps({"positive": 0.9, "negative": 0.1}),
            "clf",
            "3",
        )
        for i in range(start, start + n)
    ]


@pytest.mark.parametrize("store", ["local", "object store"])
def test_flush_moves_rows_into_the_log_once_per_day(tmp_path, store):
    log = str(tmp_path / "log") if store == "local" else f"memory://journal-test-{tmp_path.name}/log"
    journal = PredictionJournal(tmp_path / "journal.sqlite", log)
    journal.write(_rows(0, 3))
    journal.write(_rows(3, 2))
    assert journal.pending() == 5
    assert journal.flush() == 5 and journal.pending() == 0
    assert journal.flush() == 0

    df = read_window(log)
    assert list(df["request_id"]) == [f"req-{i}" for i in range(5)]
    assert list(df["model_version"]) == ["3"] * 5 and df["true_label"].isna().all()
    # The rows span midnight: one file per day, and nothing else.
    fs, root = fsspec.core.url_to_fs(log)
    files = sorted(path.rsplit("/", 2)[-2] for path in fs.glob(f"{root}/*/*.parquet"))
    assert files == ["date=2026-11-29", "date=2026-11-30"]


def test_a_crash_after_the_file_is_written_does_not_duplicate_rows(tmp_path, monkeypatch):
    log = str(tmp_path / "log")
    journal = PredictionJournal(tmp_path / "journal.sqlite", log)
    journal.write(_rows(0, 4))

    real_append = serving.journal.append_predictions

    def append_then_crash(*args, **kwargs):
        real_append(*args, **kwargs)
        raise SystemExit("killed between writing the Parquet file and clearing the journal")

    monkeypatch.setattr(serving.journal, "append_predictions", append_then_crash)
    with pytest.raises(SystemExit):
        journal.flush()
    monkeypatch.setattr(serving.journal, "append_predictions", real_append)
    journal.close()

    # The next process finds the unfinished move and redoes it under the same file names.
    restarted = PredictionJournal(tmp_path / "journal.sqlite", log)
    restarted.write(_rows(4, 1))  # a row that arrived after the crash
    assert restarted.flush() == 5
    df = read_window(log)
    assert sorted(df["request_id"]) == [f"req-{i}" for i in range(5)]  # each row once


def test_a_failed_flush_keeps_the_rows_for_the_next_one(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log folder should be")
    journal = PredictionJournal(tmp_path / "journal.sqlite", str(blocker))
    journal.write(_rows(0, 2))
    with pytest.raises((OSError, FileExistsError, NotADirectoryError)):
        journal.flush()
    assert journal.pending() == 2
    journal.log_uri = str(tmp_path / "log")
    assert journal.flush() == 2
    assert len(read_window(str(tmp_path / "log"))) == 2


def test_a_stop_during_a_slow_flush_still_moves_rows_journaled_meanwhile(tmp_path, monkeypatch):
    """Issue 12, item 1, without a model: the stop comes while a flush is writing its file (a loaded
    machine); the rows journaled after that flush chose its range must be moved by a later round."""
    import asyncio
    import threading
    import time

    from serving.journal import flush_until_stopped

    log = str(tmp_path / "log")
    journal = PredictionJournal(tmp_path / "journal.sqlite", log)
    real_append, writing = serving.journal.append_predictions, threading.Event()

    def slow_append(*args, **kwargs):
        writing.set()
        time.sleep(0.5)
        return real_append(*args, **kwargs)

    monkeypatch.setattr(serving.journal, "append_predictions", slow_append)

    async def scenario() -> None:
        stopping = asyncio.Event()
        journal.write(_rows(0, 2))
        flusher = asyncio.create_task(flush_until_stopped(journal, 0.05, stopping, lambda: None))
        await asyncio.to_thread(writing.wait, 10)
        journal.write(_rows(2, 1))  # answered while the flush writes the first two
        stopping.set()
        await flusher

    asyncio.run(scenario())
    assert journal.pending() == 0
    assert sorted(read_window(log)["request_id"]) == ["req-0", "req-1", "req-2"]


def test_a_journal_and_a_log_from_before_generation_rows_keep_working(tmp_path):
    """Journals and log files written before the `response`/`generation` columns existed are read as they were."""
    import sqlite3

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.prediction_log import SCHEMA, append_predictions

    log = str(tmp_path / "log")
    append_predictions(log, pd.DataFrame(_rows(0, 1), columns=list(serving.journal.COLUMNS[:8])))  # makes the log
    old_schema = pa.schema([SCHEMA.field(name) for name in SCHEMA.names if name not in ("response", "generation")])
    day = next((tmp_path / "log").glob("date=*"))
    for path in day.glob("*.parquet"):  # rewritten as a file from before the new columns
        pq.write_table(pq.read_table(path).select(old_schema.names).cast(old_schema), path)
    db = sqlite3.connect(tmp_path / "journal.sqlite")  # the journal's table as it was before
    old = serving.journal.COLUMNS[:8]
    db.execute(f"CREATE TABLE predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, {', '.join(old)})")
    db.executemany(f"INSERT INTO predictions ({', '.join(old)}) VALUES ({', '.join('?' * 8)})", _rows(1, 1))
    db.commit()
    db.close()

    journal = PredictionJournal(tmp_path / "journal.sqlite", log)
    details = '{"completion_tokens": 2}'
    journal.write([(T0.isoformat(), "gen-1", "Hi", "length", 0.4, "{}", "gen", "1", "Hello there", details)])
    assert journal.flush() == 2
    df = read_window(log).set_index("request_id")
    assert sorted(df.index) == ["gen-1", "req-0", "req-1"]
    assert df.loc["gen-1", "response"] == "Hello there" and df.loc["gen-1", "generation"] == details
    assert df.loc[["req-0", "req-1"], ["response", "generation"]].isna().all().all()
