"""The current window: rows from the prediction log, or from any file or saved dataset, as `text` + `true_label`."""

from __future__ import annotations

import math
from datetime import datetime

import datasets
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from core.errors import PipelineInputError
from core.prediction_log import is_prediction_log, log_uri, read_window, to_utc
from core.workspace import Workspace, exists, join
from tasks.data.read import read_source


class WindowSource(BaseModel):
    """Where the current window comes from: the prediction log (default) or any file or saved dataset."""

    model_config = ConfigDict(extra="forbid")

    uri: str | None = Field(
        None,
        description="Prediction log folder, file (csv, tsv, jsonl, parquet), saved dataset folder or demo:<name>; "
        "default: the workspace's prediction log.",
    )
    since: datetime | None = Field(None, description="Rows at or after this time (needs a `timestamp` column).")
    until: datetime | None = Field(None, description="Rows before this time (needs a `timestamp` column).")
    last_n: int | None = Field(None, gt=0, description="Then keep only the newest N rows.")
    text_column: str = Field("text", description="Column holding the input text.")
    label_column: str | None = Field("true_label", description="Column holding true labels, where known.")
    split: str | None = Field(None, description="Split to use when the source has splits (default: all).")


def _read_dataset(uri: str, split: str | None) -> pd.DataFrame:
    loaded = datasets.load_from_disk(uri)
    if isinstance(loaded, datasets.DatasetDict):
        if split is not None and split not in loaded:
            raise PipelineInputError(f"{uri}: no split '{split}' (splits: {sorted(loaded)})")
        parts = [loaded[split]] if split else list(loaded.values())
    else:
        parts = [loaded]
    frames = []
    for part in parts:
        df = part.to_pandas()
        for column, feature in part.features.items():
            if isinstance(feature, datasets.ClassLabel):
                df[column] = [feature.names[i] if i is not None and i >= 0 else None for i in df[column]]
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _read_any(source: WindowSource, ws: Workspace) -> pd.DataFrame:
    uri = source.uri or log_uri(ws)
    if is_prediction_log(uri):
        return read_window(uri, source.since, source.until, source.last_n)
    if source.uri is None:
        raise PipelineInputError(f"no prediction log at {uri} yet; pass a window file or dataset instead")
    if not uri.startswith(("demo:", "hf:")) and (
        exists(join(uri, "dataset_dict.json")) or exists(join(uri, "state.json"))
    ):
        return _read_dataset(uri, source.split)
    frames = read_source(uri, ws)
    if source.split:
        if source.split not in frames:
            raise PipelineInputError(f"{uri}: no split '{source.split}' (splits: {sorted(frames)})")
        frames = {source.split: frames[source.split]}
    df = pd.concat(frames.values(), ignore_index=True)
    return df.drop(columns=[c for c in ("_line", "_file") if c in df.columns])


def _in_time_range(df: pd.DataFrame, source: WindowSource, where: str) -> pd.DataFrame:
    """since/until on a file's own `timestamp` column (the prediction log filters while it reads)."""
    if "timestamp" not in df.columns:
        raise PipelineInputError(f"window {where}: since/until need a 'timestamp' column (columns: {list(df.columns)})")
    ts = pd.to_datetime(df["timestamp"], utc=True)
    since, until = to_utc(source.since), to_utc(source.until)
    return df[(ts >= since if since is not None else True) & (ts < until if until is not None else True)]


def _normalized(df: pd.DataFrame, source: WindowSource, where: str) -> pd.DataFrame:
    """`text` as strings, `true_label` as label names or None; other columns as they were."""
    label_col = source.label_column
    if label_col and label_col not in df.columns:
        if "label_column" in source.model_fields_set:
            raise PipelineInputError(f"window {where}: no label column '{label_col}' (columns: {list(df.columns)})")
        label_col = None
    out = df.rename(columns={source.text_column: "text"}).copy()
    if label_col and label_col != "true_label":
        out = out.drop(columns=["true_label"], errors="ignore").rename(columns={label_col: "true_label"})
    if "true_label" not in out.columns or not label_col:
        out["true_label"] = None
    out["true_label"] = [None if v is None or pd.isna(v) or str(v).strip() == "" else str(v) for v in out["true_label"]]
    out["text"] = out["text"].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return out


def load_window(source: WindowSource, ws: Workspace) -> pd.DataFrame:
    """The window as `text`, `true_label` (None where unknown) and whatever log columns it has.

    A missing text column or an empty window is the caller's mistake: PipelineInputError.
    """
    df = _read_any(source, ws)
    where = source.uri or log_uri(ws)
    if source.text_column not in df.columns:
        raise PipelineInputError(
            f"window {where}: no text column '{source.text_column}' (columns: {list(df.columns)}); "
            "set the window's text_column"
        )
    if (source.since or source.until) and not is_prediction_log(where):
        df = _in_time_range(df, source, where)
    if source.last_n:
        df = df.tail(source.last_n)
    out = _normalized(df, source, where)
    if out.empty:
        span = "".join(
            f" {word} {when.isoformat()}" for word, when in (("since", source.since), ("until", source.until)) if when
        )
        raise PipelineInputError(f"window {where} has no rows{span}; nothing to monitor")
    return out.reset_index(drop=True)


def describe_window(source: WindowSource, window: pd.DataFrame, ws: Workspace) -> dict:
    """What the reports and the drift event say about the window: the source, its uri, its first and last row."""
    info = {**source.model_dump(mode="json"), "uri": source.uri or log_uri(ws)}
    if "timestamp" in window.columns and len(window):
        ts = pd.to_datetime(window["timestamp"], utc=True)
        info["first_timestamp"], info["last_timestamp"] = ts.min().isoformat(), ts.max().isoformat()
    return info
