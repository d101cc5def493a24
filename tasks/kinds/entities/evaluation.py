"""The tagger's evaluation as table rows (beside its baselines): the evaluate stage's artifact, the card's and the
registered version's table. Apart from the stage so that the card and register stand on this leaf, not on it."""

from __future__ import annotations

from tasks.results.entities import EntityReport


def evaluation_rows(report: EntityReport) -> list[dict]:
    """The tagger beside its baselines: micro precision/recall/F1 and macro F1."""
    named = (("fine-tuned", report.model), ("CRF (word features)", report.crf), ("memorization", report.memorization))
    return [
        {
            "model": name,
            "precision": round(s.precision, 4),
            "recall": round(s.recall, 4),
            "f1": round(s.f1, 4),
            "macro_f1": round(s.macro_f1, 4),
        }
        for name, s in named
    ]
