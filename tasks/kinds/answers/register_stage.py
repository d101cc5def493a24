"""Registering a question answerer: the fine-tuned span reader as a "models from code" pyfunc
(`models/answers_pyfunc.py`); rows of {question, context} in, answer text, character offsets, score or "no answer"
out. The graph that passed parity, if any, travels with the version (artifact `onnx`)."""

from __future__ import annotations

from importlib.metadata import version as pkg_version
from pathlib import Path

import mlflow
import pandas as pd

import models
from core.registry_names import (
    LINEAGE_OPTIMIZE_RUN,
    METRIC_ANSWER_F1,
    SERVED_ANSWER_F1,
    SERVED_RUNTIME,
    SERVING_VARIANT,
    TASK,
)
from core.storage import materialize
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from tasks.kinds.answers.evaluate_stage import evaluation_rows
from tasks.registry.versioning import challenger, lineage_tags, record_config
from tasks.results import AnsweringModel, AnswersReport, Lineage, OptimizedReader, PreparedQuestions, RegisteredModel
from tasks.stage_configs import RegisterConfig

PYFUNC_CODE = Path(models.__file__).parent / "answers_pyfunc.py"
EXAMPLE = {"question": "Where is the Eiffel Tower?", "context": "The Eiffel Tower is in Paris. It opened in 1889."}


def requirements(onnx: bool) -> list[str]:
    """Pinned explicitly: MLflow's inference would load the model in a subprocess just to guess them."""
    runtime = "onnxruntime" if onnx else "torch"
    return [f"{p}=={pkg_version(p).split('+')[0]}" for p in ("mlflow", runtime, "transformers", "pandas", "numpy")]


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
    tags = lineage_tags(data, model, report, lineage) | {TASK: "answers", METRIC_ANSWER_F1: f"{report.model.f1:.4f}"}
    artifacts = {"model": str(materialize(model.uri))}
    served, f1 = "pytorch", report.model.f1
    if optimized is not None:
        tags |= {LINEAGE_OPTIMIZE_RUN: optimized.mlflow_run_id, SERVING_VARIANT: optimized.variant}
        if optimized.onnx_file:  # the pyfunc runs this graph on ONNX Runtime
            artifacts["onnx"] = str(materialize(optimized.uri) / optimized.onnx_file)
            served, f1 = f"onnx-{optimized.variant}", optimized.f1[optimized.variant]
    tags |= {SERVED_RUNTIME: served, SERVED_ANSWER_F1: f"{f1:.4f}"}
    with stage_run(tracking, "register", parent_run_id, tags) as run:
        mlflow.log_metrics({"test_answer_f1": report.model.f1, "test_answer_exact_match": report.model.exact_match})
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts=artifacts,
            code_paths=[str(PYFUNC_CODE.parent)],
            input_example=pd.DataFrame([EXAMPLE]),
            pip_requirements=requirements(onnx="onnx" in artifacts),
        )
        tags |= record_config(lineage, run.info.run_id)
        mv = mlflow.register_model(info.model_uri, cfg.model_name, tags=tags)
    return challenger(cfg, mv.version, run.info.run_id, tags, evaluation_rows(report), tracking, ws)
