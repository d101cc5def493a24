"""Registering an encoder kind's "models from code" pyfunc (entities, answers): the one register step they share.

The fine-tuned folder is the `model` artifact; the ONNX graph that passed parity, when the optimize stage chose
one, is the `onnx` artifact and what the pyfunc runs; the served runtime and its score on the parity rows are tags.
"""

from __future__ import annotations

from importlib.metadata import version as pkg_version
from pathlib import Path

import mlflow
import pandas as pd

from core.registry_names import (
    LINEAGE_OPTIMIZE_RUN,
    SERVED_PYTORCH_SAME_ROWS,
    SERVED_ROWS,
    SERVED_RUNTIME,
    SERVING_VARIANT,
)
from core.storage import materialize
from core.tracking import stage_run
from tasks.registry.versioning import challenger, lineage_tags, record_config
from tasks.results.registry import RegisteredModel
from tasks.stage_configs import RegisterConfig


def requirements(onnx: bool) -> list[str]:
    """Pinned explicitly: MLflow's inference would load the model in a subprocess just to guess them. The tokenizer
    comes from transformers either way."""
    runtime = "onnxruntime" if onnx else "torch"
    return [f"{p}=={pkg_version(p).split('+')[0]}" for p in ("mlflow", runtime, "transformers", "pandas", "numpy")]


def served_score_tags(optimized, pytorch_f1: float, served_tag: str) -> dict[str, str]:
    """What serves and its F1; a graph's comes from the optimize stage's parity rows, so PyTorch's F1 on those same
    rows goes beside it (`pytorch_f1`, the evaluation's, may be over more rows and is not comparable)."""
    if optimized is None or not optimized.onnx_file:
        return {SERVED_RUNTIME: "pytorch", served_tag: f"{pytorch_f1:.4f}"}
    return {
        SERVED_RUNTIME: f"onnx-{optimized.variant}",
        served_tag: f"{optimized.f1[optimized.variant]:.4f}",
        SERVED_PYTORCH_SAME_ROWS: f"{optimized.f1['pytorch']:.4f}",
        SERVED_ROWS: str(optimized.eval_size),
    }


def register_code_pyfunc(
    cfg: RegisterConfig,
    code: Path,
    example: pd.DataFrame,
    kind_tags: dict[str, str],
    served_tag: str,
    run_args: tuple,
    metrics: dict[str, float],
    rows: list[dict],
) -> RegisteredModel:
    """`run_args` = (data, model, report, lineage, tracking, ws, parent_run_id, optimized) as the register stage
    gets them; `report.model.f1` is the PyTorch score, `optimized.f1[variant]` the served graph's."""
    data, model, report, lineage, tracking, ws, parent_run_id, optimized = run_args
    tags = lineage_tags(data, model, report, lineage) | kind_tags
    artifacts = {"model": str(materialize(model.uri))}
    if optimized is not None:
        tags |= {LINEAGE_OPTIMIZE_RUN: optimized.mlflow_run_id, SERVING_VARIANT: optimized.variant}
        if optimized.onnx_file:  # the pyfunc runs this graph on ONNX Runtime
            artifacts["onnx"] = str(materialize(optimized.uri) / optimized.onnx_file)
    tags |= served_score_tags(optimized, report.model.f1, served_tag)
    with stage_run(tracking, "register", parent_run_id, tags) as run:
        mlflow.log_metrics(metrics)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            artifacts=artifacts,
            code_paths=[str(code.parent)],
            input_example=example,
            pip_requirements=requirements(onnx="onnx" in artifacts),
        )
        tags |= record_config(lineage, run.info.run_id)
        mv = mlflow.register_model(info.model_uri, cfg.model_name, tags=tags)
    return challenger(cfg, mv.version, run.info.run_id, tags, rows, tracking, ws)
