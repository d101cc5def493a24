"""YAML presets plus `--set a.b.c=value` overrides, as a plain dict (validated in `flows.config`).

Kept free of heavy imports: the CLI (`cli/settings.py`) reads the workspace from the raw dict before Prefect is
imported, because Prefect reads its home folder from the environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ConfigFileError(ValueError):
    """A config file or override that cannot even be parsed."""


def _parse_value(raw: str) -> Any:
    """Override values are YAML: 2, 0.5, true, null, [a, b], or plain text."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigFileError(f"override '{item}' is not of the form section.key=value")
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigFileError(f"override '{item}': '{part}' is a value, not a section")
            node = child
        node[parts[-1]] = _parse_value(raw)
    return data


def load_raw(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigFileError(f"config file '{path}' does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigFileError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigFileError(f"{path}: expected a mapping of sections at the top level")
        data = loaded
    return apply_overrides(data, overrides or [])


def override_for(key: str, overrides: list[str]) -> str | None:
    """The `--set` that gave `key` (or a section above it, or a key below it), as typed; the last one wins."""
    for item in reversed(overrides):
        name = item.partition("=")[0].strip()
        if key == name or key.startswith(name + ".") or name.startswith(key + "."):
            return item
    return None
