"""Content hashes: of configs, of data and of our own code.

They key outputs in the workspace (a changed input gets a new folder, nothing is overwritten)
and tag every registered model for lineage.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from pathlib import Path

from pydantic import BaseModel

_PROJECT_ROOT = Path(__file__).resolve().parent.parent
_CODE_DIRS = ("tasks", "models", "flows")


def hash_json(*objects: object, length: int = 16) -> str:
    """A short stable hash of JSON-able values and pydantic models."""
    h = hashlib.sha256()
    for obj in objects:
        if isinstance(obj, BaseModel):
            obj = obj.model_dump(mode="json")
        h.update(json.dumps(obj, sort_keys=True, default=str).encode())
    return h.hexdigest()[:length]


@functools.cache
def code_fingerprint() -> str:
    """Hash of the pipeline's own source, so cached stages re-run when the code changes."""
    h = hashlib.sha256()
    for folder in _CODE_DIRS:
        for path in sorted((_PROJECT_ROOT / folder).rglob("*.py")):
            h.update(str(path.relative_to(_PROJECT_ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def code_version() -> str:
    """`<git sha>[-dirty]` when run from a checkout, else `src-<code fingerprint>`."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=_PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *_CODE_DIRS],
            cwd=_PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        return f"src-{code_fingerprint()}"
