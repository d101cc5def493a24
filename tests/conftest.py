"""Shared fixtures: one real Prefect test server per session, a fresh workspace per test.

The environment is set before Prefect is imported (it reads its settings at import time).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="zero2one-tests-"))
os.environ["PREFECT_HOME"] = str(_HOME / "prefect")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("ZERO2ONE_FAULTS", None)
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# Mechanics tests (retries, caching, failures) need a real run, not a good model: keep it small.
FAST = [
    "data.max_rows=900",
    "pretrain.max_steps=60",
    "pretrain.save_steps=20",
    "pretrain.optim.warmup_steps=5",
    "finetune.epochs=2",
    "pretrain.retry.delay_seconds=0",
    "finetune.retry.delay_seconds=0",
    "evaluate.retry.delay_seconds=0",
    "registry.retry.delay_seconds=0",
    "optimize.retry.delay_seconds=0",
    "optimize.latency.iterations=2",
]
# Enough training for the tiny model to clearly beat the majority class (measured: test macro-F1 ~0.76 vs 0.19).
QUALITY = [
    "data.max_rows=null",
    "pretrain.max_steps=300",
    "pretrain.save_steps=100",
    "pretrain.optim.warmup_steps=40",
    "finetune.epochs=6",
]


@pytest.fixture(scope="session")
def prefect_server():
    """A real (temporary) Prefect API server shared by every test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def workspace(tmp_path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def make_config(workspace):
    """`make_config(*overrides)`: the tiny preset, shrunk for tests, in this test's workspace."""
    from flows.config import load_config

    root = Path(__file__).resolve().parent.parent

    def make(*overrides: str):
        return load_config(root / "configs" / "tiny.yaml", [f"workspace.root={workspace}", *FAST, *overrides])

    return make


@pytest.fixture
def faults(monkeypatch):
    """`faults("evaluate", "pretrain@step=20")`: inject failures through the environment."""

    def set_faults(*specs: str) -> None:
        monkeypatch.setenv("ZERO2ONE_FAULTS", ",".join(specs))

    return set_faults
