"""What every `zero2one` command shares: reading the config before Prefect is imported, and failing clearly."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.environment import configure_environment
from flows.raw_config import ConfigFileError, load_raw, workspace_root


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def load_settings(config: Path | None, overrides: list[str] | None):
    """Read the config, set up the embedded environment (Prefect's home), then validate with the full model."""
    try:
        raw = load_raw(config, overrides or [])
    except ConfigFileError as e:
        fail(str(e))
    configure_environment(workspace_root(raw))
    from flows.config import validate
    from tasks.errors import PipelineInputError

    try:
        return validate(raw, source=str(config) if config else "config")
    except PipelineInputError as e:
        fail(str(e))
