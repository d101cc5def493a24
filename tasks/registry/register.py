"""The register stage: the fine-tuned model as a new version in the MLflow model registry.

Logged as a "models from code" pyfunc (`models/pyfunc_model.py`): weights and tokenizer are
plain files (safetensors), nothing is pickled. `mlflow.pyfunc.load_model("models:/NAME/V")`
maps a DataFrame with a `text` column to labels and class probabilities. The version gets the
`challenger` alias and lineage tags; its run keeps the pipeline config it was trained with
(`pipeline_config.json`, named by the `zero2one.lineage.config_uri` tag), which a retrain reuses. Whether it
becomes `champion` is for the gate (`tasks/judging/gate.py`) and the promotion (`tasks/registry/promotion.py`) to
decide. If anything fails after the version was created, the version is deleted again, so the registry never holds a
half-registered model.

For `task: generation` (the evaluation is a `GenerationReport`) the version is the generator pyfunc
(`models/generator_pyfunc.py`, logged by `tasks/kinds/generation/registry.py`): prompts or chats in, answers
out; the same lineage tags, the same alias and the same clean-up.

The classifier pyfunc, its signature and requirements, and the TF-IDF baseline's registration (which the gate
calls) live in `tasks/kinds/classification/registry.py`; loading a version back in `tasks/registry/versions.py`; the
result types in `tasks/artifacts/`; the default model names in `core/registry_names.py`.
"""

from __future__ import annotations

import mlflow
from pydantic import BaseModel, ConfigDict, Field

from core import reporting
from core.orchestration import RetryPolicy, maybe_fail
from core.registry_names import (
    CHALLENGER,
    DEFAULT_MODEL_NAMES,
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
    LINEAGE_OPTIMIZE_RUN,
    LINEAGE_PRETRAIN_RUN,
    METRIC_ACCURACY,
    METRIC_CHRF,
    METRIC_EVAL_PASSED,
    METRIC_EXACT_MATCH,
    METRIC_MACRO_F1,
    METRIC_PERPLEXITY,
    SERVED_CHRF,
    SERVED_EXACT_MATCH,
    SERVED_MACRO_F1,
    SERVED_RUNTIME,
    SERVING_VARIANT,
    TASK,
)
from core.run_context import flow_run_id
from core.storage import materialize
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from tasks.data.loaders import load_splits
from tasks.judging.report_rows import evaluation_rows, generation_rows
from tasks.judging.scoring import confusion_figure
from tasks.kinds.classification.registry import CONFUSION_PNG, log_classifier
from tasks.kinds.generation.chats import prompt_text
from tasks.kinds.generation.registry import log_generator
from tasks.results import (
    EvalReport,
    FinetunedModel,
    GenerationReport,
    InstructionTunedModel,
    Lineage,
    OptimizedModel,
    PreparedData,
    PreparedInstructions,
    RegisteredModel,
)

CONFIG_JSON = "pipeline_config.json"  # on the register run: the pipeline config the version was trained with


class RegisterConfig(BaseModel):
    """Which registered model to add a version to, and the alias new versions get."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(
        DEFAULT_MODEL_NAMES["classification"], min_length=1, description="Default: zero2one-generator for generation."
    )
    challenger_alias: str = CHALLENGER
    retry: RetryPolicy = RetryPolicy()


def _lineage_tags(
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
    return {SERVED_RUNTIME: f"onnx-{optimized.variant}"} | served


def _record_config(lineage: Lineage, run_id: str) -> dict[str, str]:
    """Log the pipeline config as a JSON artifact of the register run; the version's tag says where it is.

    A retrain of the version reads it back (`tasks/monitoring/champion.py`) to train with the same settings.
    """
    if lineage.config is None:
        return {}
    mlflow.log_dict(lineage.config, CONFIG_JSON)
    return {LINEAGE_CONFIG_URI: f"runs:/{run_id}/{CONFIG_JSON}"}


def register(
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
    if isinstance(report, GenerationReport):
        return _register_generator(cfg, data, model, report, lineage, tracking, ws, parent_run_id, optimized)
    tags = _lineage_tags(data, model, report, lineage) | {
        METRIC_MACRO_F1: f"{report.model.macro_f1:.4f}",
        METRIC_ACCURACY: f"{report.model.accuracy:.4f}",
    }
    tags |= served_tags(optimized, {SERVED_MACRO_F1: report.model.macro_f1})
    artifacts = {"model": str(materialize(model.uri))}
    if optimized is not None:
        # Whether its parity check passed is the gate's `parity` rule.
        tags |= {LINEAGE_OPTIMIZE_RUN: optimized.mlflow_run_id, SERVING_VARIANT: optimized.variant}
        if optimized.onnx_file:  # the pyfunc serves this ONNX graph, without PyTorch
            artifacts["onnx"] = str(materialize(optimized.uri) / optimized.onnx_file)
    with stage_run(tracking, "register", parent_run_id, tags) as run:
        mlflow.log_metrics({"test_macro_f1": report.model.macro_f1, "test_accuracy": report.model.accuracy})
        info = log_classifier(data, artifacts)
        tags |= _record_config(lineage, run.info.run_id)
        mv = mlflow.register_model(info.model_uri, cfg.model_name, tags=tags)
        if report.confusion:
            title = (
                f"{cfg.model_name} v{mv.version}: test split ({report.test_size} texts), "
                f"macro-F1 {report.model.macro_f1:.4f}"
            )
            mlflow.log_figure(confusion_figure(report.confusion, data.labels, title), CONFUSION_PNG)
    return _challenger(cfg, mv.version, run.info.run_id, tags, evaluation_rows(report), tracking, ws)


def _register_generator(
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
    tags = _lineage_tags(data, model, report, lineage) | {
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
        tags |= _record_config(lineage, run.info.run_id)
        mv = mlflow.register_model(info.model_uri, cfg.model_name, tags=tags)
    return _challenger(cfg, mv.version, run.info.run_id, tags, generation_rows(report), tracking, ws)


def _challenger(
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
