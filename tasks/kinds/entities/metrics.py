"""Entity-level scores: seqeval in strict IOB2 mode (an entity counts only if its span and type both match)."""

from __future__ import annotations

from pydantic import BaseModel
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2


class TypeScore(BaseModel):
    precision: float
    recall: float
    f1: float
    support: int


class EntityScores(BaseModel):
    """Micro and macro P/R/F1 over entity types, and each type's own."""

    micro: TypeScore
    macro: TypeScore
    per_type: dict[str, TypeScore]

    def row(self, name: str) -> dict[str, float | str]:
        """A flat table row: micro P/R/F1, macro F1, then each type's F1."""
        out: dict[str, float | str] = {"model": name, "micro_p": self.micro.precision, "micro_r": self.micro.recall}
        out |= {"micro_f1": self.micro.f1, "macro_f1": self.macro.f1}
        return out | {f"f1_{k}": v.f1 for k, v in sorted(self.per_type.items())}


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> EntityScores:
    """Strict entity P/R/F1. Raises ValueError naming the first sentence whose lengths differ."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    report = classification_report(gold, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    scores = {
        k: TypeScore(precision=v["precision"], recall=v["recall"], f1=v["f1-score"], support=int(v["support"]))
        for k, v in report.items()
    }
    per_type = {k: v for k, v in scores.items() if not k.endswith(" avg")}
    return EntityScores(micro=scores["micro avg"], macro=scores["macro avg"], per_type=per_type)
