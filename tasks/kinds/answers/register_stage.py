"""Registering a question answerer: the fine-tuned span reader as a "models from code" pyfunc
(`models/answers_pyfunc.py`); rows of {question, context} in, answer text, character offsets, score or "no answer"
out. The graph that passed parity, if any, travels with the version (artifact `onnx`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import models
from core.registry_names import (
    METRIC_ANSWER_F1,
    SERVED_ANSWER_F1,
    TASK,
)
from core.tracking import Tracking
from core.workspace import Workspace
from tasks.kinds.answers.evaluation import evaluation_rows
from tasks.registry.code_pyfunc import register_code_pyfunc
from tasks.results.answers import AnsweringModel, AnswersReport, OptimizedReader, PreparedQuestions
from tasks.results.registry import Lineage, RegisteredModel
from tasks.stage_configs import RegisterConfig

PYFUNC_CODE = Path(models.__file__).parent / "answers_pyfunc.py"
EXAMPLE = {"question": "Where is the Eiffel Tower?", "context": "The Eiffel Tower is in Paris. It opened in 1889."}


def register_answers(
    cfg: RegisterConfig,
    data: PreparedQuestions,
    model: AnsweringModel,
    report: AnswersReport,
    lineage: Lineage,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None,
    optimized: OptimizedReader | None = None,
) -> RegisteredModel:
    kind_tags = {TASK: "answers", METRIC_ANSWER_F1: f"{report.model.f1:.4f}"}
    run_args = (data, model, report, lineage, tracking, ws, parent_run_id, optimized)
    metrics = {"test_answer_f1": report.model.f1, "test_answer_exact_match": report.model.exact_match}
    example = pd.DataFrame([EXAMPLE])
    return register_code_pyfunc(
        cfg, PYFUNC_CODE, example, kind_tags, SERVED_ANSWER_F1, run_args, metrics, evaluation_rows(report)
    )
