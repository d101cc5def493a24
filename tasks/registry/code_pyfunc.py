"""Registering an encoder kind's "models from code" pyfunc (entities, answers): the one register step they share.

The fine-tuned folder is the `model` artifact; the ONNX graph that passed parity, when the optimize stage chose
one, is the `onnx` artifact and what the pyfunc runs; the served runtime and its score on the parity rows are tags.
"""

from __future__ import annotations

from importlib.metadata import version as pkg_version
from pathlib import Path

import mlflow
import pandas as pd

from core.registry_names import LINEAGE_OPTIMIZE_RUN, SERVED_RUNTIME, SERVING_VARIANT
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
    served, f1 = "pytorch", report.model.f1
    if optimized is not None:
        tags |= {LINEAGE_OPTIMIZE_RUN: optimized.mlflow_run_id, SERVING_VARIANT: optimized.variant}
        if optimized.onnx_file:  # the pyfunc runs this graph on ONNX Runtime
            artifacts["onnx"] = str(materialize(optimized.uri) / optimized.onnx_file)
            served, f1 = f"onnx-{optimized.variant}", optimized.f1[optimized.variant]
    tags |= {SERVED_RUNTIME: served, served_tag: f"{f1:.4f}"}
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
