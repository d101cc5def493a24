"""Moving directories between the workspace (any fsspec URL) and local disk.

Stages hand each other URIs. On a single machine these are local paths and every function
here is a no-op; on a cluster they are object-store URLs and a task downloads what it reads
and uploads what it writes, so each task can run on a different worker.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import fsspec

from core.workspace import is_remote


def materialize(uri: str) -> Path:
    """A local path holding the content of `uri` (downloaded to a temp dir if remote)."""
    if not is_remote(uri):
        return Path(uri.removeprefix("file://"))
    local = Path(tempfile.mkdtemp(prefix="zero2one-"))
    fs, path = fsspec.core.url_to_fs(uri)
    fs.get(path.rstrip("/") + "/", str(local), recursive=True)
    return local


def publish_dir(local: Path, uri: str) -> str:
    """Copy a finished local directory to `uri` and return `uri`.

    Local targets are written through a sibling temp dir and renamed, so a crash never leaves a
    half-written model where the next run would take it for a finished one.
    """
    if is_remote(uri):
        fs, path = fsspec.core.url_to_fs(uri)
        fs.put(str(local).rstrip("/") + "/", path, recursive=True)
        return uri
    target = Path(uri.removeprefix("file://"))
    if local.resolve() == target.resolve():
        return uri
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    shutil.copytree(local, tmp, dirs_exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return uri
