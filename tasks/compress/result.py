"""The compress stage's typed result: what the teacher and the student are, what was removed, and the verdict."""

from __future__ import annotations

from pydantic import BaseModel


class CompressResult(BaseModel):
    student_dir: str
    method: str
    max_length: int
    teacher_parameters: int
    student_parameters: int
    teacher_layers: int
    student_layers: int
    layers_kept: list[int]  # teacher blocks the student started from
    heads_removed: int  # attention heads removed, all layers together
    neurons_removed: int  # FFN neurons removed, all layers together
    tokens_removed: int  # vocabulary entries (embedding rows) removed
    teacher_size_mb: float  # fp32 weights on disk
    student_size_mb: float
    metric: str = "macro_f1"
    teacher_metric: float  # on the test split
    student_metric: float
    baseline_metric: float | None
    kept_ratio: float  # student / teacher
    passed: bool
    reason: str  # which rule failed, or how much was kept
    global_step: int
    resumed_from_step: int | None
    seconds: float  # wall time of this attempt
