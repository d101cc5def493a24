"""The evaluate_answers stage: the reader against the lexical baseline (and the untrained head, the floor) on the
held-out test split.

Exact match and F1 as SQuAD v1.1 scores them (CMRC 2018's character-level scores for Chinese), the max over a
question's gold answers. The verdict applies the gate's bar (`gate.min_value`, beating the lexical baseline by
`gate.baseline_margin`) on the test split. The reader is `models/span_reader.py`, the code the pyfunc serves.
"""

from __future__ import annotations

import mlflow

from core import reporting
from core.storage import materialize
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from tasks.judging.report_rows import rule_rows
from tasks.kinds.answers.evaluation import AnswerEvaluateConfig, evaluation_rows
from tasks.kinds.answers.judging_stage import answer_rules, lexical, lexical_answers, read, samples, score, texts
from tasks.kinds.answers.splits import questions
from tasks.results.answers import AnsweringModel, AnswersReport, PreparedQuestions
from tasks.results.scores import AnswerScores
from tasks.stage_configs import QualityBar


def _floor(cfg: AnswerEvaluateConfig, model: AnsweringModel, test, scoring: str) -> AnswerScores | None:
    """The base checkpoint with a fresh QA head, read with the fine-tuned reader's windows and decoding."""
    if not cfg.floor_questions:
        return None
    from core.checkpoints import local_checkpoint
    from models.span_reader import ReaderSettings, SpanReader, torch_logits
    from tasks.kinds.answers.train import load_reader

    tokenizer, untrained = load_reader(local_checkpoint(model.base_model))
    settings = ReaderSettings.model_validate_json((materialize(model.uri) / "answers_meta.json").read_text())
    subset = test[: cfg.floor_questions]
    spans = read(SpanReader(tokenizer, torch_logits(untrained.eval()), settings), subset)
    return score(subset, texts(spans), scoring)


def evaluate_answers(
    cfg: AnswerEvaluateConfig,
    data: PreparedQuestions,
    model: AnsweringModel,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
    quality: QualityBar | None = None,
) -> AnswersReport:
    """Answer the test questions with the reader and the lexical baseline, score them, and apply the bar."""
    from models.span_reader import SpanReader

    bar = quality or QualityBar()
    test = questions(data, "test", cfg.max_questions, cfg.seed)
    width, _ = lexical(questions(data, "validation", cfg.max_validation_questions, cfg.seed), data.scoring)
    predicted = texts(read(SpanReader.load(materialize(model.uri), threads=cfg.threads), test))
    scores = {"model": score(test, predicted, data.scoring)}
    scores["lexical"] = score(test, lexical_answers(test, width), data.scoring)
    floor = _floor(cfg, model, test, data.scoring)
    rules = answer_rules(bar, scores["model"].f1, scores["lexical"].f1)
    report = AnswersReport(
        model=scores["model"],
        lexical=scores["lexical"],
        lexical_width=width,
        floor=floor,
        scoring=data.scoring,
        test_size=len(test),
        passed=all(r.passed for r in rules),
        reasons=[f"{r.name}: {r.reason}" for r in rules if not r.passed],
        mlflow_run_id="",
        samples=samples(test, predicted, cfg.samples),
    )
    with stage_run(tracking, "evaluate_answers", parent_run_id, {"zero2one.task": "answers"}) as run:
        for who, s in (scores | ({"floor": floor} if floor else {})).items():
            mlflow.log_metrics({f"{who}_f1": s.f1, f"{who}_exact_match": s.exact_match})
        mlflow.log_dict(report.model_dump(mode="json"), "evaluation/report.json")
        report.mlflow_run_id = run.info.run_id
    reporting.markdown(
        "evaluate-answers",
        f"# Answers on the test split ({len(test)} questions, {data.scoring} scoring)\n\n"
        f"{reporting.md_table(evaluation_rows(report))}\n\n{reporting.md_table(rule_rows(rules))}\n",
    )
    reporting.logger().info(
        "answer F1 %.4f, EM %.4f (lexical %.4f) on %d test questions: %s",
        report.model.f1, report.model.exact_match, report.lexical.f1, len(test),
        "passed" if report.passed else report.reasons,
    )  # fmt: skip
    return report
