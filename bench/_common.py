"""Shared set-up for the benchmarks: the embedded environment in a throwaway folder."""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = Path(tempfile.mkdtemp(prefix="zero2one-bench-"))
os.environ.setdefault("PREFECT_HOME", str(SCRATCH / "prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")  # see cli/environment.py
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)


def median(values: list[float]) -> float:
    return statistics.median(values)
