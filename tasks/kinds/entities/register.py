"""Registering a tagger: the fine-tuned token classifier as a "models from code" pyfunc (`models/entity_pyfunc.py`);
texts in, entities with type, character offsets, text and score out. The graph that passed parity, if any, travels
with the version (artifact `onnx`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import models
from core.registry_names import (
    METRIC_ENTITY_F1,
    SERVED_ENTITY_F1,
    TASK,
)
from core.tracking import Tracking
from core.workspace import Workspace
from tasks.kinds.entities.evaluation import evaluation_rows
from tasks.registry.code_pyfunc import register_code_pyfunc
from tasks.results.entities import EntityReport, OptimizedTagger, PreparedEntities, TaggedModel
from tasks.results.registry import Lineage, RegisteredModel
from tasks.stage_configs import RegisterConfig

PYFUNC_CODE = Path(models.__file__).parent / "entity_pyfunc.py"


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
    kind_tags = {TASK: "entities", METRIC_ENTITY_F1: f"{report.model.f1:.4f}"}
    run_args = (data, model, report, lineage, tracking, ws, parent_run_id, optimized)
    metrics = {"test_entity_f1": report.model.f1, "test_entity_macro_f1": report.model.macro_f1}
    example = pd.DataFrame({"text": [s["sentence"] for s in report.samples[:2]] or ["Paris is in France"]})
    return register_code_pyfunc(
        cfg, PYFUNC_CODE, example, kind_tags, SERVED_ENTITY_F1, run_args, metrics, evaluation_rows(report)
    )
