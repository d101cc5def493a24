"""Registering a classifier: the fine-tuned model as a "models from code" pyfunc (`models/pyfunc_model.py`).

Weights and tokenizer are plain files (safetensors), nothing is pickled; `mlflow.pyfunc.load_model("models:/NAME/V")`
maps a DataFrame with a `text` column to labels and class probabilities. The served ONNX graph, when the optimize
stage chose one, travels with the version (artifact `onnx`), and the confusion figure is logged on its run.
"""

from __future__ import annotations

import mlflow

from core.registry_names import (
    COMPRESSION,
    LINEAGE_OPTIMIZE_RUN,
    METRIC_ACCURACY,
    METRIC_MACRO_F1,
    SERVED_MACRO_F1,
    SERVING_VARIANT,
)
from core.storage import materialize
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from tasks.judging.report_rows import evaluation_rows
from tasks.judging.scoring import confusion_figure
from tasks.kinds.classification.registry import CONFUSION_PNG, log_classifier
from tasks.registry.versioning import challenger, lineage_tags, record_config, served_tags
from tasks.results.classification import EvalReport, FinetunedModel, OptimizedModel
from tasks.results.data import PreparedData, PreparedInstructions
from tasks.results.generation import GenerationReport, InstructionTunedModel
from tasks.results.registry import Lineage, RegisteredModel
from tasks.stage_configs import RegisterConfig


def register_classifier(
    cfg: RegisterConfig,
    data: PreparedData | PreparedInstructions,
    model: FinetunedModel | InstructionTunedModel,
    report: EvalReport | GenerationReport,
    lineage: Lineage,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
    optimized: OptimizedModel | None = None,
) -> RegisteredModel:
    tags = lineage_tags(data, model, report, lineage) | {
        METRIC_MACRO_F1: f"{report.model.macro_f1:.4f}",
        METRIC_ACCURACY: f"{report.model.accuracy:.4f}",
    }
    tags |= served_tags(optimized, {SERVED_MACRO_F1: report.model.macro_f1})
    if model.compression:  # a compressed student: what it was made from and what it kept
        tags[COMPRESSION] = model.compression
    artifacts = {"model": str(materialize(model.uri))}
    if optimized is not None:
        # Whether its parity check passed is the gate's `parity` rule.
        tags |= {LINEAGE_OPTIMIZE_RUN: optimized.mlflow_run_id, SERVING_VARIANT: optimized.variant}
        if optimized.onnx_file:  # the pyfunc serves this ONNX graph, without PyTorch
            artifacts["onnx"] = str(materialize(optimized.uri) / optimized.onnx_file)
    with stage_run(tracking, "register", parent_run_id, tags) as run:
        mlflow.log_metrics({"test_macro_f1": report.model.macro_f1, "test_accuracy": report.model.accuracy})
        info = log_classifier(data, artifacts)
        tags |= record_config(lineage, run.info.run_id)
        mv = mlflow.register_model(info.model_uri, cfg.model_name, tags=tags)
        if report.confusion:
            title = (
                f"{cfg.model_name} v{mv.version}: test split ({report.test_size} texts), "
                f"macro-F1 {report.model.macro_f1:.4f}"
            )
            mlflow.log_figure(confusion_figure(report.confusion, data.labels, title), CONFUSION_PNG)
    return challenger(cfg, mv.version, run.info.run_id, tags, evaluation_rows(report), tracking, ws)
