"""The monitor's verdict as a Prometheus textfile, for node_exporter's textfile collector.

Why a file and not a metric of `zero2one serve` or a Pushgateway: the monitor is a batch flow that exits, often on
another machine than the replicas; every replica would report the same verdict, and none knows it without reading
MLflow. A Pushgateway keeps a pushed value forever and is one more server to run. node_exporter already runs on most
hosts; the file is rewritten atomically by each run (prometheus_client's `write_to_textfile`), so the alert on it
(deployments/monitoring/rules/zero2one.rules.yml) ends with the next run that finds no drift.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest, write_to_textfile


def _registry(model: str, version: str, status: str, at: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    drift = Gauge(
        "zero2one_monitor_drift_detected",
        "1 if the last monitor run found drift on the champion's window (0: no drift or too few rows to judge)",
        ["model", "version", "status"],
        registry=registry,
    )
    drift.labels(model, version, status).set(1.0 if status == "drift" else 0.0)
    last = Gauge(
        "zero2one_monitor_last_run_timestamp_seconds",
        "When the last monitor run reached its verdict (Unix time)",
        ["model"],
        registry=registry,
    )
    last.labels(model).set(at)
    return registry


def metrics_text(model: str, version: str, status: str, at: float) -> str:
    """The file's content (what node_exporter would expose)."""
    return generate_latest(_registry(model, version, status, at)).decode()


def write_textfile(directory: str, model: str, version: str, status: str) -> Path:
    """Replace `<directory>/zero2one_monitor_<model>.prom` in one rename; returns its path."""
    path = Path(directory) / f"zero2one_monitor_{re.sub(r'[^A-Za-z0-9_.-]', '_', model)}.prom"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), _registry(model, version, status, time.time()))
    return path
