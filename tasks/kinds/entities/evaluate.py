"""The evaluate_entities stage: the tagger against the CRF and memorization baselines on the held-out test split.

Entity-level, strict (seqeval, IOB2): an entity counts only where its span and its type both match. The verdict
applies the gate's bar (`gate.min_value`, beating the CRF by `gate.baseline_margin`) on the test split.
"""

from __future__ import annotations

import mlflow
from pydantic import BaseModel, ConfigDict, Field

from core import reporting
from core.retry import RetryPolicy
from core.storage import materialize
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from tasks.judging.report_rows import rule_rows
from tasks.kinds.entities.evaluation import evaluation_rows
from tasks.kinds.entities.judging import baselines, entity_rules, samples, score
from tasks.kinds.entities.splits import sentences
from tasks.results.entities import EntityReport, PreparedEntities, TaggedModel
from tasks.stage_configs import QualityBar


class EntityEvaluateConfig(BaseModel):
    """How the tagger is scored on the test split."""

    model_config = ConfigDict(extra="forbid")

    samples: int = Field(8, ge=0, description="Test sentences with entities shown on the card, gold vs predicted.")
    retry: RetryPolicy = RetryPolicy(retries=1)


def evaluate_entities(
    cfg: EntityEvaluateConfig,
    data: PreparedEntities,
    model: TaggedModel,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
    quality: QualityBar | None = None,
) -> EntityReport:
    """Tag the test split with the model and both baselines, score them, and apply the bar."""
    from models.token_classifier import Tagger

    bar = quality or QualityBar()
    train, test = sentences(data, "train"), sentences(data, "test")
    words, gold = [s.words for s in test], [s.tags for s in test]
    predicted = [tags for tags, _ in Tagger.load(materialize(model.uri)).tag(words)]
    scores = {"model": score(gold, predicted)}
    fitted = baselines(train, sentences(data, "validation"))
    scores |= {name: score(gold, b.predict(words)) for name, b in fitted.items()}
    rules = entity_rules(bar, scores["model"].f1, scores["crf"].f1)
    report = EntityReport(
        model=scores["model"],
        crf=scores["crf"],
        memorization=scores["memorization"],
        test_size=len(test),
        passed=all(r.passed for r in rules),
        reasons=[f"{r.name}: {r.reason}" for r in rules if not r.passed],
        mlflow_run_id="",
        samples=samples(words, gold, predicted, cfg.samples),
    )
    with stage_run(tracking, "evaluate_entities", parent_run_id, {"zero2one.task": "entities"}) as run:
        for who, s in scores.items():
            mlflow.log_metrics({f"{who}_f1": s.f1, f"{who}_precision": s.precision, f"{who}_recall": s.recall})
            mlflow.log_metrics({f"{who}_macro_f1": s.macro_f1})
        mlflow.log_dict(report.model_dump(mode="json"), "evaluation/report.json")
        report.mlflow_run_id = run.info.run_id
    reporting.markdown(
        "evaluate-entities",
        f"# Entities on the test split ({len(test)} sentences)\n\n{reporting.md_table(evaluation_rows(report))}\n\n"
        f"{reporting.md_table(rule_rows(rules))}\n\nPer type (F1): {scores['model'].per_type}\n",
    )
    reporting.logger().info(
        "entity F1 %.4f (CRF %.4f, memorization %.4f) on %d test sentences: %s",
        report.model.f1,
        report.crf.f1,
        report.memorization.f1,
        len(test),
        "passed" if report.passed else report.reasons,
    )
    return report
