"""The model kinds this pipeline trains, by name: the one switch (`ModelKind`). Adding a kind is one line here."""

from __future__ import annotations

from core.errors import PipelineInputError
from tasks.kinds.answers.kind import ANSWERS
from tasks.kinds.classification.kind import CLASSIFICATION
from tasks.kinds.entities.kind import ENTITIES
from tasks.kinds.generation.kind import GENERATION
from tasks.kinds.kind import ModelKind

KINDS: dict[str, ModelKind] = {k.name: k for k in (CLASSIFICATION, GENERATION, ENTITIES, ANSWERS)}


def kind(name: str) -> ModelKind:
    """The kind called `name` (`task:` in a preset, the `zero2one.task` tag of a version)."""
    if name not in KINDS:
        raise PipelineInputError(f"task {name!r} is not a model kind here; known: {', '.join(KINDS)}")
    return KINDS[name]


def kind_of(report: object) -> ModelKind:
    """The kind whose evaluation `report` is: every kind has a report type of its own."""
    for candidate in KINDS.values():
        if type(report) is candidate.report:
            return candidate
    raise TypeError(f"{type(report).__name__} is no model kind's evaluation report")
