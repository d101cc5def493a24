"""What to compress and the rule a compressed model must pass before it may serve."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class CompressionPolicy(BaseModel):
    """How to make the student, and the quality floor it must keep. Defaults: the SMS setting of docs/compression.md."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["distill", "prune", "distill+prune"] = Field(
        "distill",
        description="distill: fewer layers copied from the teacher, trained on its logits; prune: remove heads and "
        "FFN neurons by gradient importance, then a short recovery distillation; distill+prune: both.",
    )
    student_layers: int | None = Field(2, gt=0, description="Layers of the student (distill); taken evenly.")
    ffn_size: int | None = Field(
        768, gt=0, description="Narrower FFN for the student: its most important neurons (none: the teacher's width)."
    )
    heads_kept: int | None = Field(None, gt=0, description="Attention heads kept per layer (prune).")
    neurons_kept: int | None = Field(None, gt=0, description="FFN neurons kept per layer (prune).")
    trim_vocabulary: bool = Field(
        True, description="Keep only the embeddings of tokens the training texts use (plus every single character)."
    )
    temperature: float = Field(2.0, gt=0, description="Softens teacher and student logits in the KL term.")
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the KL term; 1 - alpha weighs the hard labels.")
    epochs: float = Field(5.0, gt=0, description="Passes over the distillation data.")
    recovery_epochs: float = Field(2.0, gt=0, description="Passes of the recovery distillation after pruning.")
    learning_rate: float = Field(1e-4, gt=0)
    batch_size: int = Field(32, gt=0)
    max_length: int | None = Field(None, gt=0, description="Token window; unset: p99 of the train texts, <= 128.")
    importance_batches: int = Field(16, gt=0, description="Batches of train data that score heads and neurons.")
    seed: int = 0
    quality_floor: float = Field(0.97, gt=0, le=1, description="Student metric >= floor x the teacher's.")
    target_speedup: float = Field(3.0, gt=0, description="int8 student vs int8 teacher at batch 1 (reported).")
    target_size_ratio: float = Field(0.333, gt=0, le=1, description="int8 student size / int8 teacher size.")

    @model_validator(mode="after")
    def _method_has_its_settings(self) -> CompressionPolicy:
        if "distill" in self.method and self.student_layers is None:
            raise ValueError(f"compression.method={self.method} needs compression.student_layers")
        if "prune" in self.method and self.heads_kept is None and self.neurons_kept is None:
            raise ValueError(f"compression.method={self.method} needs compression.heads_kept or neurons_kept")
        return self


class Verdict(BaseModel):
    passed: bool
    reason: str  # which rule failed, or what passed


def judge(policy: CompressionPolicy, teacher: float, student: float, baseline: float | None = None) -> Verdict:
    """The floor rule: student >= quality_floor x teacher, and student > the strong baseline when one is given."""
    floor = policy.quality_floor * teacher
    if student < floor:
        return Verdict(
            passed=False,
            reason=f"student {student:.4f} < floor {floor:.4f} ({policy.quality_floor:.0%} of teacher {teacher:.4f})",
        )
    if baseline is not None and student <= baseline:
        return Verdict(passed=False, reason=f"student {student:.4f} does not beat the baseline {baseline:.4f}")
    kept = student / teacher if teacher else 0.0
    return Verdict(passed=True, reason=f"student keeps {kept:.1%} of teacher {teacher:.4f}")
