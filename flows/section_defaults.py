"""A partly given section keeps the values its field default set, instead of falling back to its class's defaults.

A section's default is often an instance with its own values: `entity_finetune.optim` defaults to
`OptimConfig(batch_size=16, learning_rate=1e-4)`, whose class defaults are 32 and 5e-4. Pydantic builds a field given
as a dict from the class, so `--set entity_finetune.optim.seed=1` (or a preset's `optim: {seed: 1}`) used to train
with batch 32 at learning rate 5e-4 - a different recipe, silently, for what reads as "another seed". Pydantic has no
switch for "merge a partial dict into the field's default instance", so this walks the schema and does it: every
dict given for a field whose default is a model gets the values that default set explicitly underneath it, at every
depth. Values the user gives always win.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ValidationError


def _model_class(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (`Model`, `Model | None`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if (found := _model_class(arg)) is not None:
            return found
    return None


def _values_of(default: BaseModel) -> dict:
    """What a field's default instance sets beyond its class's defaults (compared after validation, so values a
    validator derives from others - the demo corpus of a demo source - are not carried to a user's section)."""
    try:
        plain = type(default)().model_dump()
    except ValidationError:  # a class without defaults for everything: what its instance was given
        return default.model_dump(exclude_unset=True)
    return {k: v for k, v in default.model_dump().items() if plain.get(k, object()) != v}


def _under(base: dict, given: dict) -> dict:
    """`given` over `base`, merged key by key where both hold a mapping."""
    out = dict(base)
    for key, value in given.items():
        out[key] = _under(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def keep_section_defaults(model: type[BaseModel], data: Any) -> Any:
    """`data` (a raw dict for `model`) with each partly given section filled from its field default's set values."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for name, field in model.model_fields.items():
        key = name if name in out else field.alias
        if key not in out or not isinstance(out[key], dict):
            continue
        default = field.default
        section = type(default) if isinstance(default, BaseModel) else _model_class(field.annotation)
        if section is None:
            continue
        given = out[key]
        if isinstance(default, BaseModel):
            given = _under(_values_of(default), given)
        out[key] = keep_section_defaults(section, given)
    return out
