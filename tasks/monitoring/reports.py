"""What each Evidently report says on top: model and version, the window (source, from/to, rows), the reference.

How it is drawn (a header widget, distributions as shares) is `report_layout.py`, which imports Evidently.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
from pydantic import BaseModel

from tasks.monitoring.config import MonitorConfig


class ReportAbout(BaseModel):
    """Who and what a report is about; `detect_drift` adds the rows each side had."""

    model_name: str = ""
    model_version: str = ""
    window: dict = {}
    reference_uri: str = ""


def _when(iso: str) -> str:
    """'2026-03-02 08:00:00 UTC' for people; the timestamps are UTC (see `describe_window`)."""
    return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def heading(about: ReportAbout, what: str, reference: str, pool_rows: int, n_ref: int, n_cur: int, window_rows: int):
    """(title, markdown) on top of a report: model and version; window (source, from/to, rows); reference."""
    model = (about.model_name or "the champion") + (f" v{about.model_version}" if about.model_version else "")
    window = about.window
    source = f" from `{window['uri']}`" if window.get("uri") else ""
    first, last = window.get("first_timestamp"), window.get("last_timestamp")
    span = f", {_when(first)} to {_when(last)}" if first and last else ""
    cur_sample = f"; a seeded sample of {n_cur:,} compared" if n_cur < window_rows else ""
    where = f" (`{about.reference_uri}`)" if about.reference_uri else ""
    ref_sample = f"; a seeded sample of {n_ref:,} compared" if n_ref < pool_rows else ""
    shares = (
        "\n\nThe two sides differ in size, so distributions show the percent of each side (`abs` shows counts)."
        if n_ref != n_cur
        else ""
    )
    text = (
        f"**Window**: {window_rows:,} rows{source}{span}{cur_sample}.\n\n"
        f"**Reference**: {reference}{where}, {pool_rows:,} rows{ref_sample}.{shares}"
    )
    return f"{what} of {model}", text


def descriptors_report(cfg: MonitorConfig, ref: pd.DataFrame, cur: pd.DataFrame, title: str, text: str):
    """One ValueDrift test per descriptor column, current against reference."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    from tasks.monitoring.report_layout import Titled

    columns = [c for c in ref.columns if c != "words"]
    method = cfg.numeric_method(len(ref), len(cur))
    metrics = [ValueDrift(column=c, method=method, threshold=cfg.num_threshold) for c in columns]
    report = Report([Titled(title=title, text=text, shares=len(ref) != len(cur), items=metrics)], include_tests=True)
    definition = DataDefinition(numerical_columns=columns)
    return report.run(
        Dataset.from_pandas(cur[columns], data_definition=definition),
        Dataset.from_pandas(ref[columns], data_definition=definition),
    )
