"""What every `zero2one` command shares: exit codes and failing with one clear `error:` line."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

from core.workspace import DEFAULT_ROOT

# Exit codes, documented in `zero2one run --help`: a scheduler or CI step tells the outcomes apart.
EXIT_INPUT = 2  # bad config, override, option or data: nothing was trained
EXIT_REFUSED = 3  # the run finished and registered a version, but the gate refused it (champion unchanged)


def fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(EXIT_INPUT)


def ui_command(workspace: str) -> str:
    """The exact `zero2one ui` command that shows `workspace` (the flag only when it is not the default)."""
    if "://" not in workspace and Path(workspace).resolve() == Path(DEFAULT_ROOT).resolve():
        return "zero2one ui"
    return f"zero2one ui --workspace {workspace}"
