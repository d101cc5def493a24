"""The `zero2one` command line, run the way a user runs it: as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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
    assert "finetune.optim.learning_rat: unknown key (from --set finetune.optim.learning_rat=0.1)" in out.stderr


def test_an_override_of_the_wrong_type_is_named_not_the_file():
    out = _cli("show-config", "--config", "configs/tiny.yaml", "--set", "pretrain.max_steps=abc")
    assert out.returncode == 2
    assert "invalid override:\n  pretrain.max_steps: Input should be a valid integer" in out.stderr
    assert "(got 'abc', from --set pretrain.max_steps=abc)" in out.stderr
    assert "tiny.yaml" not in out.stderr


def test_every_help_screen_reads_at_80_columns():
    from typer.main import get_command
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    for name in ["", *get_command(app).commands]:
        out = runner.invoke(app, [*([name] if name else []), "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
        assert out.exit_code == 0, out.output
        assert "Usage:" in out.output
        cut = [line for line in out.output.splitlines() if "\u2026" in line]
        assert not cut, f"zero2one {name} --help cuts text at 80 columns:\n" + "\n".join(cut)
        assert max(len(line) for line in out.output.splitlines()) <= 80


def test_a_missing_data_source_fails_before_prefect_starts(tmp_path):
    """A typo in the data path: one `error:` line in seconds, no Prefect server, no traceback."""
    env = {"PREFECT_HOME": str(tmp_path / "prefect")}
    started = time.monotonic()
    out = _cli(
        "run",
        "--config",
        "configs/tiny.yaml",
        "--set",
        f"workspace.root={tmp_path / 'ws'}",
        "--set",
        "data.source=missing.csv",
        env={**env, "PREFECT_API_URL": ""},
    )
    seconds = time.monotonic() - started
    assert out.returncode == 2, out.stderr[-2000:]
    assert "error: data source 'missing.csv' does not exist" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert not (tmp_path / "prefect" / "prefect.db").exists()  # Prefect's server never started
    print(f"failed in {seconds:.1f} s")


def test_show_config_applies_overrides():
    out = _cli("show-config", "--config", "configs/tiny.yaml", "--set", "finetune.epochs=2")
    assert out.returncode == 0 and "epochs: 2.0" in out.stdout


@pytest.mark.slow
def test_run_prints_an_actionable_summary(tmp_path):
    ws = tmp_path / "ws"
    env = {"PREFECT_HOME": str(tmp_path / "prefect"), "COLUMNS": "250"}  # no wrapping inside the commands printed
    env.pop("PREFECT_API_URL", None)
    small = ["data.max_rows=300", "pretrain.max_steps=10", "pretrain.save_steps=10", "finetune.epochs=1"]
    sets = [arg for s in [f"workspace.root={ws}", *FAST, *small, "optimize.enabled=false"] for arg in ("--set", s)]
    # A bar no tiny model reaches: the gate refuses, and a scheduler must be able to tell from the exit code.
    out = _cli("run", "--config", "configs/tiny.yaml", *sets, "--set", "gate.min_value=0.99", env=env, timeout=1500)
    assert out.returncode == 3, out.stderr[-3000:]
    assert "Registered models:/zero2one-classifier/1" in out.stdout
    assert "majority class" in out.stdout and "tf-idf + logreg" in out.stdout
    assert "refused (exit code 3)" in out.stdout and "was refused by the gate" in out.stdout
    assert f"zero2one ui --workspace {ws}" in out.stdout
    assert list((ws / "logs").glob("run-*.log"))
    assert (ws / "mlflow.db").exists() and (tmp_path / "prefect" / "prefect.db").exists()
    bad = _cli("run", "--config", "configs/tiny.yaml", *sets, "--set", "data.source=missing.csv", env=env)
    assert bad.returncode == 2 and "data source 'missing.csv' does not exist" in bad.stderr


def test_run_log_keeps_tracebacks_in_the_file_and_off_the_console(tmp_path):
    import io
    import logging

    from flows.cli_common import run_log

    console = io.StringIO()
    handler = logging.StreamHandler(console)
    logging.getLogger().addHandler(handler)
    log = logging.getLogger("prefect.task_runs.test")
    try:
        with run_log(tmp_path / "logs", verbose=False) as path:
            try:
                raise ValueError("data.csv: column 'txt' not found")
            except ValueError:
                log.error("Task run failed", exc_info=True)
    finally:
        logging.getLogger().removeHandler(handler)
    assert "Task run failed" in console.getvalue() and "Traceback" not in console.getvalue()
    assert "Traceback" in path.read_text() and "column 'txt' not found" in path.read_text()
