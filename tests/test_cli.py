"""The `zero2one` command line, run the way a user runs it: as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_the_commands():
    out = _cli("--help")
    assert out.returncode == 0
    for command in ("run", "show-config", "predict", "ui", "demo-data"):
        assert command in out.stdout


def test_bad_override_exits_with_the_dotted_key():
    out = _cli("show-config", "--config", "configs/tiny.yaml", "--set", "finetune.optim.learning_rat=0.1")
    assert out.returncode == 2
    assert "finetune.optim.learning_rat: unknown key" in out.stderr


def test_show_config_applies_overrides():
    out = _cli("show-config", "--config", "configs/tiny.yaml", "--set", "finetune.epochs=2")
    assert out.returncode == 0 and "epochs: 2.0" in out.stdout


@pytest.mark.slow
def test_run_prints_an_actionable_summary(tmp_path):
    ws = tmp_path / "ws"
    env = {"PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    sets = [arg for s in [f"workspace.root={ws}", *FAST] for arg in ("--set", s)]
    out = _cli("run", "--config", "configs/tiny.yaml", *sets, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Registered models:/zero2one-classifier/1" in out.stdout
    assert "majority class" in out.stdout and "tf-idf + logreg" in out.stdout
    assert (ws / "mlflow.db").exists() and (tmp_path / "prefect" / "prefect.db").exists()
    bad = _cli("run", "--config", "configs/tiny.yaml", *sets, "--set", "data.source=missing.csv", env=env)
    assert bad.returncode == 2 and "data source 'missing.csv' does not exist" in bad.stderr
