"""What every `zero2one` command shares: reading the config before Prefect is imported, and failing clearly."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import typer

from flows.environment import configure_environment
from flows.raw_config import ConfigFileError, load_raw, workspace_root

# Exit codes, documented in `zero2one run --help`: a scheduler or CI step tells the outcomes apart.
EXIT_INPUT = 2  # bad config, override or data: nothing was trained
EXIT_REFUSED = 3  # the run finished and registered a version, but the gate refused it (champion unchanged)
DEFAULT_WORKSPACE = ".zero2one"


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(EXIT_INPUT)


def load_settings(config: Path | None, overrides: list[str] | None, preflight: bool = False):
    """Read the config, set up the embedded environment (Prefect's home), then validate with the full model.

    With `preflight`, the data source is checked first (exists, reads, has the columns and labels): a typo fails
    in a second or two, before the training libraries are imported and before Prefect's server starts.
    """
    try:
        raw = load_raw(config, overrides or [])
    except ConfigFileError as e:
        fail(str(e))
    configure_environment(workspace_root(raw))
    if preflight:
        _preflight_data(raw)
    from flows.config import validate
    from tasks.errors import PipelineInputError

    try:
        return validate(raw, source=str(config) if config else "config", overrides=overrides or [])
    except PipelineInputError as e:
        fail(str(e))


def _preflight_data(raw: dict) -> None:
    from pydantic import ValidationError

    from tasks import data
    from tasks.errors import PipelineInputError

    try:
        cfg = data.DataConfig.model_validate(raw.get("data") or {})
    except ValidationError:
        return  # the full validation that follows names the key
    try:
        data.preflight_data(cfg, workspace_root(raw))
    except PipelineInputError as e:
        fail(str(e))


def ui_command(workspace: str) -> str:
    """The exact `zero2one ui` command that shows `workspace` (the flag only when it is not the default)."""
    if "://" not in workspace and Path(workspace).resolve() == Path(DEFAULT_WORKSPACE).resolve():
        return "zero2one ui"
    return f"zero2one ui --workspace {workspace}"


class _OneLine(logging.Formatter):
    """Formats a record as `inner` would, without its traceback (that goes to the run's log file)."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


@contextlib.contextmanager
def run_log(log_dir: Path, verbose: bool) -> Iterator[Path]:
    """Everything the run logs, tracebacks included, in a file under the workspace; the console keeps the
    messages and drops the tracebacks (a bad input is one `error:` line, not 35 frames), unless `verbose`.
    Call after Prefect is imported: its console handler is the one that gets quieter."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s - %(message)s"))
    root = logging.getLogger()
    root.addHandler(to_file)
    consoles = [h for h in root.handlers if type(h) is not logging.FileHandler] if not verbose else []
    saved = [h.formatter for h in consoles]
    for handler in consoles:
        handler.setFormatter(_OneLine(handler.formatter))
    try:
        yield path
    finally:
        for handler, formatter in zip(consoles, saved, strict=True):
            handler.setFormatter(formatter)
        root.removeHandler(to_file)
        to_file.close()
