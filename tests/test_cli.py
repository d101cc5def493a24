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
        [sys.executable, "-m", "cli", *args],
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

    from cli.app import app

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

    from cli.run_log import run_log

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


# Every command that reads a workspace or a registry, with the least it needs to get as far as reading its config.
WORKSPACE_COMMANDS = {
    "run": [],
    "show-config": [],
    "predict": ["some text"],
    "promote": ["--version", "1"],
    "rollback": [],
    "ui": [],
    "serve": [],
    "monitor": [],
    "retrain": ["--data", "labeled.csv"],
    "approve": ["--version", "1", "--reason", "read the card"],
    "reject": ["--version", "1", "--reason", "not yet"],
}


def test_every_command_takes_the_same_config_options():
    from typer.main import get_command

    from cli.app import app
    from cli.settings import COMMON_OPTIONS

    commands = get_command(app).commands
    assert set(WORKSPACE_COMMANDS) == set(commands) - {"demo-data", "deploy"}
    first = {o.opts[0]: o for o in commands["run"].params if o.opts[0] in COMMON_OPTIONS}
    assert set(first) == set(COMMON_OPTIONS)
    for name in WORKSPACE_COMMANDS:
        options = {o.opts[0]: o for o in commands[name].params}
        for flag in COMMON_OPTIONS:
            assert options[flag].opts == first[flag].opts and options[flag].help == first[flag].help, (name, flag)


def test_the_same_workspace_option_works_on_every_command(tmp_path):
    """`--workspace` goes through the one resolver as `--set workspace.root=...` on every command: a config in
    which `workspace` is not a section stops each of them with the same error, naming the shortcut's override."""
    from typer.testing import CliRunner

    from cli.app import app

    ws = str(tmp_path / "ws")
    for name, args in WORKSPACE_COMMANDS.items():
        out = CliRunner().invoke(app, [name, *args, "--set", "workspace=here", "--workspace", ws])
        assert out.exit_code == 2, (name, out.output)
        assert f"error: override 'workspace.root={ws}': 'workspace' is a value, not a section" in out.output, name


def test_the_workspace_holds_prefects_home(tmp_path):
    """The workspace is known before Prefect is imported: its home lands there (unless PREFECT_HOME is set)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_HOME", "PREFECT_API_URL")}
    ws = tmp_path / "ws"
    out = subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--workspace", str(ws), "--set", "no_such.key=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 2 and "no_such: unknown key (from --set no_such.key=1)" in out.stderr, out.stderr
    assert (ws / "prefect").is_dir()


def test_workspace_and_tracking_uri_are_shortcuts_for_set(tmp_path):
    import yaml

    out = _cli("show-config", "--workspace", str(tmp_path), "--tracking-uri", "http://127.0.0.1:5999")
    assert out.returncode == 0, out.stderr
    shown = yaml.safe_load(out.stdout)
    assert shown["workspace"]["root"] == str(tmp_path) and shown["tracking"]["uri"] == "http://127.0.0.1:5999"


def test_serve_options_are_generated_from_serve_config():
    """One option per ServeConfig field, with the field's default and description; where things are comes from
    the common --workspace/--tracking-uri; a True default is turned off with --no-FIELD."""
    from typer.main import get_command

    from cli.app import app
    from serving.config import ServeConfig

    options = {o.name: o for o in get_command(app).commands["serve"].params}
    for name, info in ServeConfig.model_fields.items():
        if name in ("workspace", "tracking_uri"):  # the common shortcuts say where things are
            assert "Same as --set" in options[name].help
            continue
        if info.default is True:
            option = options[f"no_{name}"]
            assert option.opts == [f"--no-{name.replace('_', '-')}"] and option.default is False, name
        else:
            option = options[name]
            assert option.default == info.default, name
            assert option.opts == ["--model" if name == "model_name" else f"--{name.replace('_', '-')}"]
        assert (info.description or "") in option.help, name


def test_a_bad_option_value_names_the_option_and_value(tmp_path):
    """Pydantic checks option values with the same rules as in a file; the error names the option as typed."""
    from typer.testing import CliRunner

    from cli.app import app

    def cli(*args):
        out = CliRunner().invoke(app, [*args, "--workspace", str(tmp_path)])
        assert out.exit_code == 2 and "Traceback" not in out.output, out.output
        return out.output.strip().splitlines()

    assert cli("serve", "--port", "99999", "--max-batch-size", "many") == [
        "error: --port 99999: Input should be less than or equal to 65535; "
        "--max-batch-size many: Input should be a valid integer, unable to parse string as an integer"
    ]
    assert cli("monitor", "--drift-share", "2", "--last", "0") == [
        "error: --drift-share 2: Input should be less than or equal to 1; --last 0: Input should be greater than 0"
    ]
    assert cli("serve", "--on-too-long", "cut") == ["error: --on-too-long cut: Input should be 'truncate' or 'reject'"]
    assert cli("retrain", "--data", "x.csv", "--since", "yesterday")[0].startswith("error: --since yesterday: Input ")


def test_a_config_section_sets_what_an_option_sets_and_the_option_wins(tmp_path):
    import typer

    from cli.model_options import Given
    from cli.serve import serve_settings
    from cli.settings import resolve

    preset = tmp_path / "serve.yaml"
    preset.write_text("task: generation\nserve:\n  port: 9000\n  max_batch_size: 4\n")
    cfg = resolve(
        preset,
        ["serve.alias=staging"],
        str(tmp_path / "ws"),
        model=serve_settings(),
        given=[Given("serve.port", "--port", "9100")],
    ).serve
    assert (cfg.port, cfg.max_batch_size, cfg.alias) == (9100, 4, "staging")
    assert cfg.workspace == str(tmp_path / "ws") and cfg.model_name == "zero2one-generator"  # the task's model
    # The same file works for a command that has no `serve:` section; a `--set serve...` there is still an error.
    assert resolve(preset, [], str(tmp_path / "ws")).task == "generation"
    with pytest.raises(typer.Exit):
        resolve(preset, ["serve.port=1"], str(tmp_path / "ws"))


def test_predict_with_no_such_model_is_one_error_line(tmp_path):
    out = _cli("predict", "great phone", "--workspace", str(tmp_path / "ws"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"error: models:/zero2one-classifier@champion in {tmp_path / 'ws'}: Registered Model" in out.stderr
