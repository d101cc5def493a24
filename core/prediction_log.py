"""The prediction log: every answer serving gave, as Parquet files that monitoring reads back in windows.

Layout: `<log>/date=YYYY-MM-DD/part-<first timestamp>-<batch id>.parquet`, one file per appended batch
and day, plus `<log>/_schema.json` that marks the folder as a log. Why files and not a database:
appends from several serving replicas never touch each other's files, any fsspec store works (the
workspace may be s3://...), and a time window reads only the days it spans. Writers should append in
batches (every few seconds or thousands of rows), not row by row: each call writes a file. Serving
does so through its journal (`serving/journal.py`).

Columns (see `SCHEMA`): `timestamp` (UTC), `request_id`, `text`, `label` (the predicted label),
`score` (its probability), `probs` (JSON object label -> probability), `model_name`,
`model_version`, and `true_label` (empty until someone labels the row). Rows of a served generator (the OpenAI
routes) use the same columns - `text` the prompt (for chats the last user message), `label` the finish reason
(stop/length), `score` the geometric-mean probability of the generated tokens, `probs` "{}" - plus `response` (the
answer) and `generation` (JSON: endpoint, messages, parameters, token counts, latency); both empty on classifier rows.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import PipelineInputError
from core.workspace import Workspace, exists, join

SCHEMA_VERSION = 1
SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("probs", pa.string(), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("true_label", pa.string(), nullable=True),
        pa.field("response", pa.string(), nullable=True),  # generation rows only (files written before lack both)
        pa.field("generation", pa.string(), nullable=True),
    ]
)
COLUMNS = SCHEMA.names
REQUIRED = ("text", "label", "score", "probs", "model_name", "model_version")
MARKER = "_schema.json"


def log_uri(ws: Workspace) -> str:
    """Where serving writes by default: `<workspace>/predictions`."""
    return ws.uri("predictions")


def is_prediction_log(uri: str) -> bool:
    return exists(join(uri, MARKER))


def to_utc(value: dt.datetime | str | pd.Timestamp | None) -> pd.Timestamp | None:
    """Datetimes and ISO strings to UTC; naive ones are taken as UTC (what serving writes)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as e:
        raise PipelineInputError(f"'{value}' is not a date/time; use ISO 8601, e.g. 2026-11-29T08:00:00Z") from e
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _probs_json(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return json.dumps({str(k): float(v) for k, v in value.items()}, sort_keys=True)
    raise PipelineInputError(f"probs must be a JSON string or a mapping label -> probability, got {value!r}")


def _normalize(rows: pd.DataFrame | Iterable[Mapping]) -> pd.DataFrame:
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if df.empty:
        raise PipelineInputError("no prediction rows to append")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise PipelineInputError(f"prediction rows lack column(s) {missing}; the log needs {list(REQUIRED)}")
    extra = [c for c in df.columns if c not in COLUMNS]
    if extra:
        raise PipelineInputError(f"prediction rows have unknown column(s) {extra}; the log holds {COLUMNS}")
    now = pd.Timestamp.now(tz="UTC")
    if "timestamp" in df:
        try:  # naive times are taken as UTC; missing ones become now
            df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="mixed").fillna(now)
        except (ValueError, TypeError) as e:
            raise PipelineInputError(f"prediction rows have a timestamp that is not a date/time: {e}") from None
    else:
        df["timestamp"] = now
    if "request_id" not in df:
        df["request_id"] = None
    df["request_id"] = [str(v) if v is not None and not pd.isna(v) else uuid.uuid4().hex for v in df["request_id"]]
    df["probs"] = [_probs_json(v) for v in df["probs"]]
    for column in ("true_label", "response", "generation"):  # optional text columns
        values = df[column] if column in df else [None] * len(df)
        df[column] = [None if v is None or pd.isna(v) else str(v) for v in values]
    for column in ("text", "label", "model_name", "model_version"):
        if df[column].isna().any():
            raise PipelineInputError(
                f"prediction rows have an empty '{column}' (row {int(df[column].isna().argmax())})"
            )
        df[column] = df[column].astype(str)
    df["score"] = df["score"].astype(float)
    return df[COLUMNS]


def append_predictions(uri: str, rows: pd.DataFrame | Iterable[Mapping], batch_id: str | None = None) -> list[str]:
    """Append a batch of predictions (a DataFrame or dicts with the `SCHEMA` columns); returns the files written.

    `timestamp` defaults to now, `request_id` to a random id; `probs` may be a dict. Each file is
    written under a temporary name and renamed, so a reader never sees half a file. Appending the
    same rows again with the same `batch_id` replaces the files instead of adding copies, which
    makes a retried append idempotent.
    """
    df = _normalize(rows)
    fs, root = fsspec.core.url_to_fs(uri)
    fs.makedirs(root, exist_ok=True)
    if not fs.exists(f"{root}/{MARKER}"):
        fs.pipe(f"{root}/{MARKER}", json.dumps({"version": SCHEMA_VERSION, "columns": COLUMNS}).encode())
    written = []
    for day, part in df.groupby(df["timestamp"].dt.floor("D"), sort=True):
        folder = f"{root}/date={day:%Y-%m-%d}"
        fs.makedirs(folder, exist_ok=True)
        name = f"part-{part['timestamp'].min():%Y%m%dT%H%M%S%f}-{batch_id or uuid.uuid4().hex[:8]}.parquet"
        table = pa.Table.from_pandas(part.sort_values("timestamp"), schema=SCHEMA, preserve_index=False)
        tmp = f"{folder}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
        with fs.open(tmp, "wb") as f:
            pq.write_table(table, f)
        fs.mv(tmp, f"{folder}/{name}")
        written.append(f"{folder}/{name}")
    return written


def _day_files(fs, root: str) -> list[tuple[str, list[str]]]:
    """(day, files) pairs, oldest day first; hidden (in-progress) files are skipped. Listed afresh (`refresh`):
    s3fs caches listings in its client, which a process reuses, so a long-lived reader missed other writers' files."""
    names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False, refresh=True))
    out = []
    for name in (n for n in names if n.startswith("date=")):
        files = sorted(p for p in fs.ls(f"{root}/{name}", detail=False, refresh=True) if p.endswith(".parquet"))
        out.append((name.removeprefix("date="), [p for p in files if not p.rsplit("/", 1)[-1].startswith(".")]))
    return out


def read_window(
    uri: str,
    since: dt.datetime | str | None = None,
    until: dt.datetime | str | None = None,
    last_n: int | None = None,
) -> pd.DataFrame:
    """Rows with `since <= timestamp < until` (either may be open), oldest first; then the newest `last_n` of them.

    Only the day folders the range spans are read. A log without rows in the range gives an empty
    frame with the log's columns (the caller decides whether that is an error).
    """
    if not is_prediction_log(uri):
        raise PipelineInputError(
            f"'{uri}' is not a prediction log (no {MARKER}); serving writes one with append_predictions"
        )
    if last_n is not None and last_n <= 0:
        raise PipelineInputError(f"last_n must be positive, got {last_n}")
    start, end = to_utc(since), to_utc(until)
    if start is not None and end is not None and start >= end:
        raise PipelineInputError(f"empty time range: since={start.isoformat()} is not before until={end.isoformat()}")
    fs, root = fsspec.core.url_to_fs(uri)
    days = [
        (day, files)
        for day, files in _day_files(fs, root)
        if (start is None or day >= f"{start:%Y-%m-%d}") and (end is None or day <= f"{end:%Y-%m-%d}")
    ]
    frames, count = [], 0
    for _day, files in reversed(days):  # newest first, so `last_n` can stop early
        for path in files:
            with fs.open(path, "rb") as f:
                df = pq.read_table(f, schema=SCHEMA).to_pandas()
            if start is not None:
                df = df[df["timestamp"] >= start]
            if end is not None:
                df = df[df["timestamp"] < end]
            frames.append(df)
            count += len(df)
        if last_n is not None and count >= last_n:
            break
    if not frames:
        return SCHEMA.empty_table().to_pandas()
    out = pd.concat(frames, ignore_index=True).sort_values("timestamp", kind="stable").reset_index(drop=True)
    return out.tail(last_n).reset_index(drop=True) if last_n is not None else out


def rows_from_predictions(
    texts: list[str], predictions: pd.DataFrame, model_name: str, model_version: str
) -> pd.DataFrame:
    """Log rows from the registered pyfunc's output (`label`, `score`, `prob_<label>` columns) for `texts`."""
    prob_cols = [c for c in predictions.columns if c.startswith("prob_")]
    probs = [
        json.dumps({c.removeprefix("prob_"): float(v) for c, v in zip(prob_cols, row, strict=True)}, sort_keys=True)
        for row in predictions[prob_cols].itertuples(index=False)
    ]
    return pd.DataFrame(
        {
            "text": list(texts),
            "label": predictions["label"].astype(str).tolist(),
            "score": predictions["score"].astype(float).tolist(),
            "probs": probs,
            "model_name": model_name,
            "model_version": str(model_version),
        }
    )
