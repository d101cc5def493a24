"""`check_drift`, the monitoring stage: load the window, run `detect_drift`, and tell people and machines.

MLflow gets a run per check (metrics, the HTML reports, `summary.json`) plus one long-lived series run
per model whose metric history is the drift over time; Prefect gets a markdown verdict and a link to the
report. `event_payload` is what the `monitor` flow emits as `zero2one.drift.detected` on drift.
"""

from __future__ import annotations

import math
import tempfile
from datetime import datetime
from pathlib import Path

import mlflow

from core import reporting
from core.storage import publish_dir
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from tasks.kinds.registry import kind
from tasks.monitoring.config import MonitorConfig
from tasks.monitoring.reports import ReportAbout
from tasks.monitoring.results import DriftReport
from tasks.monitoring.windows import WindowSource, describe_window, load_window
from tasks.results.registry import Champion


def _series_run(tracking: Tracking, experiment_id: str, model_name: str) -> str:
    """One long-lived MLflow run per model whose metric history is the drift over time."""
    client = tracking.client()
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`zero2one.monitor_series` = '{model_name}'", max_results=1
    )
    if found:
        return found[0].info.run_id
    run = client.create_run(
        experiment_id,
        run_name=f"monitor-{model_name}",
        tags={"zero2one.monitor_series": model_name, "zero2one.stage": "monitor-series"},
    )
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def summary_metrics(report: DriftReport) -> dict[str, float]:
    """Flat numbers for MLflow: per signal its score and whether it fired, plus the verdict and window size."""
    metrics = {
        "window_rows": float(report.window_rows),
        "labeled_rows": float(report.labeled_rows),
        "drift_detected": float(report.status == "drift"),
        "insufficient_data": float(report.status == "insufficient_data"),
    }
    if report.drift_share is not None:
        metrics["drift_share"] = report.drift_share
    for s in report.signals:
        if math.isfinite(s.score):
            metrics[f"{s.name}_score"] = s.score
        metrics[f"{s.name}_fired"] = float(s.fired)
    if report.accuracy is not None:
        metrics["accuracy"] = report.accuracy
        metrics["reference_accuracy"] = report.reference_accuracy
    metrics |= report.quality
    return metrics


def markdown(report: DriftReport) -> str:
    """The Prefect artifact: verdict, reasons, one row per signal, and how many rows each statistic saw."""
    rows = [
        {"signal": s.name, "group": s.group, "method": s.method, "score": s.score, "threshold": s.threshold,
         "fired": "yes" if s.fired else "no"}
        for s in report.signals
    ]  # fmt: skip
    samples = ", ".join(f"{k} {v}" for k, v in report.samples.items()) or "-"
    skipped = "".join(f"\n- not computed: {s}" for s in report.skipped)
    return (
        f"# Drift check of {report.model_name} v{report.model_version}: **{report.status}**\n\n"
        + "\n".join(f"- {r}" for r in report.reasons)
        + f"{skipped}\n\nWindow: {report.window_rows} rows ({report.labeled_rows} labeled) from "
        f"`{report.window.get('uri')}`\n\n{reporting.md_table(rows)}\n\nRows each statistic saw (sampled where a "
        f"statistic does not need every row): {samples}\n\nReports: `{report.report_uri}`\n"
    )


def _log_run(
    cfg: MonitorConfig, champion: Champion, report: DriftReport, tracking: Tracking, ws: Workspace, tmp: str
) -> tuple[DriftReport, str, dict[str, float]]:
    """The check's own MLflow run (params, metrics, reports, summary), child of the model's series run."""
    experiment_id = tracking.activate()
    series = _series_run(tracking, experiment_id, champion.name)
    tags = {
        "zero2one.model_name": champion.name,
        "zero2one.model_version": champion.version,
        "zero2one.monitor_status": report.status,
    }
    with stage_run(tracking, "monitor", series, tags) as run:
        uri = report.window["uri"]
        mlflow.log_params(
            {"window_uri": uri[:500], "window_rows": report.window_rows, "policy": cfg.policy.model_dump_json()}
        )
        metrics = summary_metrics(report)
        mlflow.log_metrics(metrics)
        report_uri = None
        if report.reports:
            stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
            report_uri = publish_dir(Path(tmp), ws.uri("monitor", champion.name, champion.version, stamp))
            mlflow.log_artifacts(tmp, "monitor")
        report = report.model_copy(update={"mlflow_run_id": run.info.run_id, "report_uri": report_uri})
        mlflow.log_dict(report.model_dump(mode="json"), "monitor/summary.json")
    return report, series, metrics


def check_drift(
    cfg: MonitorConfig, champion: Champion, source: WindowSource, tracking: Tracking, ws: Workspace
) -> DriftReport:
    """Load the window, run `detect_drift`, and log everything to an MLflow run of its own (plus the series)."""
    window = load_window(source, ws)
    window_info = describe_window(source, window, ws)
    about = ReportAbout(
        model_name=champion.name, model_version=champion.version, window=window_info, reference_uri=champion.data_uri
    )
    with tempfile.TemporaryDirectory() as tmp:
        detect = kind(champion.task).detect_drift  # the kind's signals, e.g. tasks/monitoring/detect.py
        report = detect(cfg, champion, window, Path(tmp), about, ws)
        report = report.model_copy(
            update={"model_name": champion.name, "model_version": champion.version, "window": window_info}
        )
        report, series, metrics = _log_run(cfg, champion, report, tracking, ws, tmp)
    client = tracking.client()
    step = len(client.get_metric_history(series, "window_rows"))
    now_ms = int(datetime.now().timestamp() * 1000)
    for key, value in metrics.items():
        client.log_metric(series, key, value, timestamp=now_ms, step=step)
    reporting.logger().info(
        "drift check of %s v%s: %s (%s)", champion.name, champion.version, report.status, "; ".join(report.reasons)
    )
    reporting.markdown("drift-check", markdown(report), description=f"{report.status} on {report.window_rows} rows")
    if report.reports:
        run_url = tracking.run_url(report.mlflow_run_id)
        first = report.reports[0]  # each kind's own first report: inputs.html, or model.html where inputs are not text
        reporting.link("drift-report", f"{run_url}/artifacts/monitor/{first}", "Evidently drift report (MLflow)")
    return report


def event_payload(report: DriftReport, alias: str) -> dict:
    """What `zero2one.drift.detected` carries; `window` validates as a WindowSource, so a trigger can pass it on."""
    window_keys = set(WindowSource.model_fields)
    return {
        "model": report.model_name,
        "version": report.model_version,
        "alias": alias,
        "window": {k: v for k, v in report.window.items() if k in window_keys},
        "window_rows": report.window_rows,
        "labeled_rows": report.labeled_rows,
        "first_timestamp": report.window.get("first_timestamp"),
        "last_timestamp": report.window.get("last_timestamp"),
        "signals": [
            {"name": s.name, "group": s.group, "method": s.method, "score": s.score, "threshold": s.threshold}
            for s in report.fired
        ],
        "drift_share": report.drift_share,
        "reasons": report.reasons,
        "report_uri": report.report_uri,
        "mlflow_run_id": report.mlflow_run_id,
    }
