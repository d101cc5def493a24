"""Names every result module shares."""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel

SPLITS = ("train", "validation", "test")
Messages = list[dict[str, str]]  # a chat: {role, content} dicts, the last one the assistant's answer
Variant = Literal["int8", "fp32", "pytorch"]
METRIC_LABELS = {"macro_f1": "macro-F1", "accuracy": "accuracy", "chrf": "chrF", "exact_match": "exact match"}
C = TypeVar("C", bound=BaseModel)
