"""The workspace: one folder (or fsspec URL) that holds data, checkpoints, results and tracking.

Default `./.zero2one/`. Everything a run writes lands under it, keyed by content so that a new
run never overwrites what an earlier one produced.
"""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_ROOT = ".zero2one"  # the one place for the default workspace (CLI, flows, serving read it here)


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a local path or a URL."""
    if is_remote(uri):
        return "/".join([uri.rstrip("/"), *parts])
    return str(Path(uri.removeprefix("file://"), *parts))


def exists(uri: str) -> bool:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs.exists(path)


class Workspace(BaseModel):
    """Where everything lives. `root` may be a local folder or any fsspec URL (s3://, gs://, ...)."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(DEFAULT_ROOT, description="Folder or fsspec URL for data, checkpoints and results.")
    scratch: str | None = Field(
        None,
        description="Local folder for training scratch space when `root` is remote "
        "(defaults to <tmp>/zero2one-scratch).",
    )

    def resolved(self) -> Workspace:
        """Make a local root absolute so that every task, whatever its working directory, agrees."""
        if is_remote(self.root):
            return self
        return self.model_copy(update={"root": str(Path(self.root.removeprefix("file://")).resolve())})

    def uri(self, *parts: str) -> str:
        return join(self.root, *parts)

    def local_dir(self, *parts: str) -> Path:
        """A local directory for work that tools insist on doing on disk (Trainer checkpoints)."""
        base = Path(self.scratch or os.path.join(os.environ.get("TMPDIR", "/tmp"), "zero2one-scratch"))
        path = Path(self.root, *parts) if not is_remote(self.root) else base.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def tracking_uri(self) -> str:
        """MLflow's default: SQLite under the workspace (the registry needs a database)."""
        if is_remote(self.root):
            raise ValueError("a remote workspace needs an explicit tracking.uri (an MLflow server or database)")
        return f"sqlite:///{Path(self.root, 'mlflow.db')}"

    def artifact_location(self) -> str:
        return self.uri("mlartifacts") if is_remote(self.root) else Path(self.root, "mlartifacts").as_uri()
