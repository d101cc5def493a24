"""What evaluating a reader takes and shows: its settings (the gate reads the same caps) and its report as table
rows (the stage's artifact, the card's and the registered version's table).

Apart from the evaluate stage so that the gate, the card and register stand on this leaf, not on a sibling stage.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.retry import RetryPolicy
from tasks.results.answers import AnswersReport


class AnswerEvaluateConfig(BaseModel):
    """How the reader is scored on the test split (the gate reads the same caps)."""

    model_config = ConfigDict(extra="forbid")

    max_questions: int | None = Field(
        200, gt=0, description="Seeded sample of test questions scored (null: all); a long article costs ~25 windows."
    )
    floor_questions: int = Field(
        0, ge=0, description="Test questions the checkpoint with an untrained QA head reads (the floor); 0: skipped."
    )
    max_validation_questions: int | None = Field(
        300, gt=0, description="Validation questions the lexical baseline's window width is chosen on."
    )
    seed: int = 0
    samples: int = Field(8, ge=0, description="Test questions shown on the card, gold vs predicted.")
    threads: int = Field(2, ge=1)
    retry: RetryPolicy = RetryPolicy(retries=1)


def evaluation_rows(report: AnswersReport) -> list[dict]:
    """The reader beside its baselines: exact match and F1."""
    named = [("fine-tuned", report.model), (f"lexical (window {report.lexical_width})", report.lexical)]
    named += [("untrained head (floor)", report.floor)] if report.floor else []
    return [
        {"model": who, "exact_match": round(s.exact_match, 4), "f1": round(s.f1, 4), "questions": s.questions}
        for who, s in named
    ]
