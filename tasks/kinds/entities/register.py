"""Registering a tagger: the fine-tuned token classifier as a "models from code" pyfunc (`models/entity_pyfunc.py`);
texts in, entities with type, character offsets, text and score out. The graph that passed parity, if any, travels
with the version (artifact `onnx`)."""

from __future__ import annotations

from importlib.metadata import version as pkg_version
from pathlib import Path

import mlflow
import pandas as pd

import models
from core.registry_names import (
    LINEAGE_OPTIMIZE_RUN,
    METRIC_ENTITY_F1,
    SERVED_ENTITY_F1,
    SERVED_RUNTIME,
    SERVING_VARIANT,
    TASK,
)
from core.storage import materialize
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from tasks.kinds.entities.evaluate import evaluation_rows
from tasks.registry.versioning import challenger, lineage_tags, record_config
from tasks.results import EntityReport, Lineage, OptimizedTagger, PreparedEntities, RegisteredModel, TaggedModel
from tasks.stage_configs import RegisterConfig

PYFUNC_CODE = Path(models.__file__).parent / "entity_pyfunc.py"


def requirements(onnx: bool) -> list[str]:
    """Pinned explicitly: MLflow's inference would load the model in a subprocess just to guess them."""
    packages = (
        ("mlflow", "onnxruntime", "transformers", "pandas", "numpy")
        if onnx
        else ("mlflow", "torch", "transformers", "pandas", "numpy")
    )
    return [f"{p}=={pkg_version(p).split('+')[0]}" for p in packages]


def register_entities(
    cfg: RegisterConfig,
    data: PreparedEntities,
    model: TaggedModel,
    report: EntityReport,
    lineage: Lineage,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None,
    optimized: OptimizedTagger | None = None,
) -> RegisteredModel:
    tags = lineage_tags(data, model, report, lineage) | {TASK: "entities", METRIC_ENTITY_F1: f"{report.model.f1:.4f}"}
    artifacts = {"model": str(materialize(model.uri))}
    served, f1 = "pytorch", report.model.f1
    if optimized is not None:
        tags |= {LINEAGE_OPTIMIZE_RUN: optimized.mlflow_run_id, SERVING_VARIANT: optimized.variant}
        if optimized.onnx_file:  # the pyfunc runs this graph on ONNX Runtime
            artifacts["onnx"] = str(materialize(optimized.uri) / optimized.onnx_file)
            served, f1 = f"onnx-{optimized.variant}", optimized.f1[optimized.variant]
    tags |= {SERVED_RUNTIME: served, SERVED_ENTITY_F1: f"{f1:.4f}"}
    with stage_run(tracking, "register", parent_run_id, tags) as run:
        mlflow.log_metrics({"test_entity_f1": report.model.f1, "test_entity_macro_f1": report.model.macro_f1})
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts=artifacts,
            code_paths=[str(PYFUNC_CODE.parent)],
            input_example=pd.DataFrame({"text": [s["sentence"] for s in report.samples[:2]] or ["Paris is in France"]}),
            pip_requirements=requirements(onnx="onnx" in artifacts),
        )
        tags |= record_config(lineage, run.info.run_id)
        mv = mlflow.register_model(info.model_uri, cfg.model_name, tags=tags)
    return challenger(cfg, mv.version, run.info.run_id, tags, evaluation_rows(report), tracking, ws)
