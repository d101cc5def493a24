"""The embedded default: Prefect and MLflow state under the workspace, telemetry off.

Only defaults are set - an environment that already points at a Prefect server
(PREFECT_API_URL) or sets PREFECT_HOME keeps its own settings.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from core.workspace import is_remote

# Prefect's first start on a new workspace creates its SQLite database and runs every migration: 19 s measured on an
# idle 2-core machine (5 s for later starts) against Prefect's 20 s default, and far more under load. Override with
# PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.
STARTUP_TIMEOUT_SECONDS = "180"

log = logging.getLogger(__name__)


def configure_environment(workspace_root: str) -> None:
    """Call before Prefect is imported: it reads these at import time."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", STARTUP_TIMEOUT_SECONDS)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not is_remote(workspace_root) and "PREFECT_API_URL" not in os.environ:  # file:// is local, as everywhere
        os.environ.setdefault("PREFECT_HOME", str(Path(workspace_root.removeprefix("file://")).resolve() / "prefect"))
    if home := os.environ.get("PREFECT_HOME"):
        Path(home).mkdir(parents=True, exist_ok=True)  # Prefect's SQLite cannot create its own folder


def start_embedded_prefect() -> None:
    """Start Prefect's ephemeral API server now, trying a second time if the first start times out.

    Flows start the same server on first use (it is one instance per process), but without a retry; a first
    start that loses the race against its timeout on a busy machine usually succeeds once migrations are done.
    Does nothing when a Prefect server is configured (PREFECT_API_URL).
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    try:
        server.start()
    except RuntimeError as first:
        log.warning("Prefect's embedded server did not start (%s); trying once more", str(first).split(".")[0])
        if server.server_process is not None:  # Prefect leaves a timed-out server process running
            server.server_process.kill()
            server.server_process.wait()
        server.port = None
        server.start()
