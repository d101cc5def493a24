"""The embedded default: Prefect and MLflow state under the workspace, telemetry off.

Only defaults are set - an environment that already points at a Prefect server
(PREFECT_API_URL) or sets PREFECT_HOME keeps its own settings.
"""

from __future__ import annotations

import os
from pathlib import Path


def configure_environment(workspace_root: str) -> None:
    """Call before Prefect is imported: it reads these at import time."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if "://" not in workspace_root and "PREFECT_API_URL" not in os.environ:
        os.environ.setdefault("PREFECT_HOME", str(Path(workspace_root).resolve() / "prefect"))
    if home := os.environ.get("PREFECT_HOME"):
        Path(home).mkdir(parents=True, exist_ok=True)  # Prefect's SQLite cannot create its own folder
