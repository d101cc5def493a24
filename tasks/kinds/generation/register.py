"""Registering a generator: the instruction-tuned model as the generator pyfunc (`models/generator_pyfunc.py`, logged
by `tasks/kinds/generation/registry.py`): prompts or chats in, answers out; the ONNX graph that passed parity, if any,
travels with the version (artifact `onnx`).
"""

from __future__ import annotations

import mlflow

from core.registry_names import (
    LINEAGE_OPTIMIZE_RUN,
    METRIC_CHRF,
    METRIC_EXACT_MATCH,
    METRIC_PERPLEXITY,
    SERVED_CHRF,
    SERVED_EXACT_MATCH,
    SERVING_VARIANT,
    TASK,
)
from core.storage import materialize
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from tasks.data.loaders import load_splits
from tasks.judging.report_rows import generation_rows
from tasks.kinds.generation.chats import prompt_text
from tasks.kinds.generation.registry import log_generator
from tasks.registry.versioning import challenger, lineage_tags, record_config, served_tags
from tasks.results.data import PreparedInstructions
from tasks.results.generation import GenerationReport, InstructionTunedModel
from tasks.results.registry import Lineage, RegisteredModel
from tasks.stage_configs import RegisterConfig


def register_generator(
    cfg: RegisterConfig,
    data: PreparedInstructions,
    model: InstructionTunedModel,
    report: GenerationReport,
    lineage: Lineage,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None,
    optimized=None,  # tasks/optimize_generation.OptimizedGenerator: which ONNX graph serves, if any
) -> RegisteredModel:
    """The instruction-tuned model as a generator pyfunc (safetensors + tokenizer + chat template + code)."""
    tags = lineage_tags(data, model, report, lineage) | {
        TASK: "generation",
        METRIC_CHRF: f"{report.model.chrf:.4f}",
        METRIC_EXACT_MATCH: f"{report.model.exact_match:.4f}",
        METRIC_PERPLEXITY: f"{report.model.perplexity:.4f}" if report.model.perplexity is not None else "none",
    }
    tags |= served_tags(optimized, {SERVED_CHRF: report.model.chrf, SERVED_EXACT_MATCH: report.model.exact_match})
    onnx_dir = None
    if optimized is not None:  # the graph that passed parity is logged with the version (artifact `onnx`)
        tags |= {LINEAGE_OPTIMIZE_RUN: optimized.mlflow_run_id, SERVING_VARIANT: optimized.variant}
        onnx_dir = materialize(optimized.uri) / optimized.onnx_dir if optimized.onnx_dir else None
    examples = [prompt_text(m) for m in load_splits(data)["test"][:2]["messages"]]
    with stage_run(tracking, "register", parent_run_id, tags) as run:
        mlflow.log_metrics(
            {f"test_{k}": v for k, v in report.model.model_dump().items() if v is not None}  # chrf, exact_match, ...
        )
        info = log_generator(materialize(model.uri), examples, onnx_dir=onnx_dir)
        tags |= record_config(lineage, run.info.run_id)
        mv = mlflow.register_model(info.model_uri, cfg.model_name, tags=tags)
    return challenger(cfg, mv.version, run.info.run_id, tags, generation_rows(report), tracking, ws)
