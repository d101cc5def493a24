"""What every kind's register step shares: a version's lineage tags, what serves, the recorded pipeline config,
and the `challenger` alias, given or the version deleted again, so the registry never holds a half-registered model.
"""

from __future__ import annotations

import mlflow

from core import reporting
from core.orchestration import maybe_fail
from core.registry_names import (
    KIND,
    LINEAGE_BASE_MODEL,
    LINEAGE_CHECKPOINT_URI,
    LINEAGE_CODE_VERSION,
    LINEAGE_CONFIG_HASH,
    LINEAGE_CONFIG_URI,
    LINEAGE_DATA_FINGERPRINT,
    LINEAGE_DATA_URI,
    LINEAGE_EVAL_RUN,
    LINEAGE_FINETUNE_RUN,
    LINEAGE_FLOW_RUN,
    LINEAGE_PRETRAIN_RUN,
    METRIC_EVAL_PASSED,
    SERVED_CHRF,
    SERVED_EXACT_MATCH,
    SERVED_MACRO_F1,
    SERVED_PYTORCH_SAME_ROWS,
    SERVED_ROWS,
    SERVED_RUNTIME,
)
from core.run_context import flow_run_id
from core.tracking import Tracking
from core.workspace import Workspace
from tasks.results.classification import EvalReport, FinetunedModel
from tasks.results.data import PreparedData, PreparedInstructions
from tasks.results.generation import GenerationReport, InstructionTunedModel
from tasks.results.registry import Lineage, RegisteredModel
from tasks.stage_configs import RegisterConfig

CONFIG_JSON = "pipeline_config.json"  # on the register run: the pipeline config the version was trained with


def lineage_tags(
    data: PreparedData | PreparedInstructions,
    model: FinetunedModel | InstructionTunedModel,
    report: EvalReport | GenerationReport,
    lineage: Lineage,
) -> dict[str, str]:
    """Where a version came from: the same tags for every task."""
    return {
        KIND: "finetuned",
        LINEAGE_DATA_FINGERPRINT: data.fingerprint,
        LINEAGE_DATA_URI: data.uri,
        LINEAGE_CONFIG_HASH: lineage.config_hash,
        LINEAGE_CODE_VERSION: lineage.code_version,
        LINEAGE_PRETRAIN_RUN: model.pretrain_run_id or "none",
        LINEAGE_FINETUNE_RUN: model.mlflow_run_id,
        LINEAGE_EVAL_RUN: report.mlflow_run_id,
        LINEAGE_CHECKPOINT_URI: model.uri,
        LINEAGE_BASE_MODEL: model.base_model,
        LINEAGE_FLOW_RUN: flow_run_id() or "none",
        METRIC_EVAL_PASSED: str(report.passed).lower(),
    }


def served_tags(optimized, pytorch: dict[str, float]) -> dict[str, str]:
    """What serves and its test score: the ONNX graph's from the optimize stage's parity run (no re-scoring), else
    PyTorch's own (`pytorch`: tag -> the evaluation's number). The gate and evaluation score PyTorch."""
    if optimized is None or optimized.variant not in optimized.parity:
        return {SERVED_RUNTIME: "pytorch"} | {tag: f"{v:.4f}" for tag, v in pytorch.items()}
    parity = optimized.parity[optimized.variant]
    metric = {SERVED_MACRO_F1: "macro_f1", SERVED_CHRF: "chrf", SERVED_EXACT_MATCH: "exact_match"}
    served = {tag: f"{getattr(parity, metric[tag]):.4f}" for tag in pytorch}
    first = metric[next(iter(pytorch))]  # the kind's headline metric: PyTorch on the parity rows = served + drop
    same = {SERVED_PYTORCH_SAME_ROWS: f"{getattr(parity, first) + getattr(parity, first + '_drop'):.4f}"}
    if (rows := getattr(optimized, "eval_size", None)) is not None:
        same[SERVED_ROWS] = str(rows)
    return {SERVED_RUNTIME: f"onnx-{optimized.variant}"} | served | same


def record_config(lineage: Lineage, run_id: str) -> dict[str, str]:
    """Log the pipeline config as a JSON artifact of the register run; the version's tag says where it is.

    A retrain of the version reads it back (`tasks/monitoring/champion.py`) to train with the same settings.
    """
    if lineage.config is None:
        return {}
    mlflow.log_dict(lineage.config, CONFIG_JSON)
    return {LINEAGE_CONFIG_URI: f"runs:/{run_id}/{CONFIG_JSON}"}


def challenger(
    cfg: RegisterConfig, version, run_id: str, tags: dict[str, str], rows: list[dict], tracking: Tracking, ws: Workspace
) -> RegisteredModel:
    """Give the new version the challenger alias, or delete it again: no half-registered version stays behind."""
    client = tracking.client()
    try:
        aliases = [cfg.challenger_alias]
        client.set_registered_model_alias(cfg.model_name, cfg.challenger_alias, version)
        # The one fault point inside a stage: between creating the version and finishing its registration, so the
        # test of the clean-up below (tests/test_pipeline.py) can fail exactly here. Stage-start faults are injected
        # by core/orchestration.py.
        maybe_fail("register-aliases", ws.local_dir("faults"))
    except BaseException:
        client.delete_model_version(cfg.model_name, version)
        raise
    result = RegisteredModel(
        name=cfg.model_name,
        version=str(version),
        aliases=aliases,
        model_uri=f"models:/{cfg.model_name}/{version}",
        run_id=run_id,
        tags=tags,
    )
    reporting.markdown(
        "register",
        f"# Registered `{result.model_uri}`\n\nAliases: {', '.join(aliases)}\n\n"
        f"{reporting.md_table(rows)}\n\n" + "\n".join(f"- `{k}`: {v}" for k, v in tags.items()),
    )
    reporting.link(
        "mlflow-model",
        f"{tracking.ui_url}/#/models/{cfg.model_name}/versions/{version}",
        f"{cfg.model_name} v{version} in MLflow",
    )
    return result
