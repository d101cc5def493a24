"""What the QA monitor watches: question, context and answer length, no-answer rate and confidence, as one
descriptor row per served answer, compared against the champion's rows with Evidently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from tasks.kinds.answers.reader import QAExample

COLUMNS = ["question_chars", "context_chars", "answer_chars", "no_answer", "confidence"]


def descriptors(examples: Sequence[QAExample], answers: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per question: lengths in characters (CJK-safe), 1/0 no-answer, the reader's score.

    `answers` maps question id to the served shape of predict.as_response."""
    rows = []
    for ex in examples:
        out = answers[ex.id]
        rows.append(
            {
                "question_chars": len(ex.question),
                "context_chars": len(ex.context),
                "answer_chars": 0 if out["no_answer"] else len(out["answer"]),
                "no_answer": int(bool(out["no_answer"])),
                "confidence": float(out["score"]),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def summary(frame: pd.DataFrame) -> dict[str, float]:
    """The numbers a model card and a dashboard show: medians of lengths, the no-answer rate, mean confidence."""
    return {
        "question_chars_median": float(frame["question_chars"].median()),
        "context_chars_median": float(frame["context_chars"].median()),
        "answer_chars_median": float(frame["answer_chars"].median()),
        "no_answer_rate": float(frame["no_answer"].mean()),
        "confidence_mean": float(frame["confidence"].mean()),
    }


def drift(current: pd.DataFrame, reference: pd.DataFrame, drift_share: float = 0.5) -> dict:
    """Evidently's per-column drift of the descriptors (current first, as Evidently 0.7 takes them)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    if current.empty or reference.empty:
        raise ValueError("drift: the current and reference windows both need rows")
    definition = DataDefinition(numerical_columns=COLUMNS)
    cur, ref = (Dataset.from_pandas(f[COLUMNS], data_definition=definition) for f in (current, reference))
    snapshot = Report([DataDriftPreset(drift_share=drift_share)]).run(cur, ref)
    metrics = snapshot.dict()["metrics"]
    count = next(m["value"] for m in metrics if m["metric_name"].startswith("DriftedColumnsCount"))
    scores = {m["config"]["column"]: float(m["value"]) for m in metrics if m["metric_name"].startswith("ValueDrift")}
    return {"drifted_columns": int(count["count"]), "drifted_share": float(count["share"]), "scores": scores}
