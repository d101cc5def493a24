"""Stage 6, register: the fine-tuned model as a new version in the MLflow model registry.

Logged as a "models from code" pyfunc (`models/pyfunc_model.py`): weights and tokenizer are
plain files (safetensors), nothing is pickled. `mlflow.pyfunc.load_model("models:/NAME/V")`
maps a DataFrame with a `text` column to labels and class probabilities. The version gets the
`challenger` alias and lineage tags; whether it becomes `champion` is for the gate
(`tasks/gate.py`) and the promotion (`tasks/promotion.py`) to decide. If anything fails after the
version was created, the version is deleted again, so the registry never holds a half-registered
model.

For `task: generation` (the evaluation is a `GenerationReport`) the version is the generator pyfunc
(`models/generator_pyfunc.py`, logged by `tasks/generation_registry.py`): prompts or chats in, answers
out; the same lineage tags, the same alias and the same clean-up.

`register_baseline` registers the TF-IDF baseline the same way (the same pyfunc, serving its ONNX
export through `models/baseline_onnx.py`), tagged `zero2one.kind=baseline`; the gate calls it where
the baseline beats the challenger. `load_predictor` loads either kind for the gate.
"""

from __future__ import annotations

from importlib.metadata import version as pkg_version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from pydantic import BaseModel, ConfigDict, Field

import models
from models.baseline_onnx import META_FILE, BaselineClassifier
from models.classifier import TextClassifier
from models.generator import TextGenerator
from tasks import reporting
from tasks.data import PreparedData, load_splits
from tasks.evaluate import EvalReport, comparison_rows, confusion_figure
from tasks.evaluate_generation import GenerationReport, prompt_text
from tasks.evaluate_generation import comparison_rows as generation_rows
from tasks.faults import maybe_fail
from tasks.finetune import FinetunedModel
from tasks.generation_registry import log_generator
from tasks.instruction_data import PreparedInstructions, load_instruction_splits
from tasks.optimize import OptimizedModel
from tasks.orchestration import RetryPolicy
from tasks.registry_names import (
    CHALLENGER,
    DEFAULT_MODEL_NAMES,
    KIND,
    LINEAGE_BASE_MODEL,
    LINEAGE_BASELINE_URI,
    LINEAGE_CHECKPOINT_URI,
    LINEAGE_CODE_VERSION,
    LINEAGE_CONFIG_HASH,
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
    SERVING_VARIANT,
    TASK,
    read_tag,
)
from tasks.sft import InstructionTunedModel
from tasks.storage import materialize
from tasks.tracking import Tracking, flow_run_id, stage_run
from tasks.workspace import Workspace, exists, join

PYFUNC_CODE = Path(models.__file__).parent / "pyfunc_model.py"
CONFUSION_PNG = "confusion_matrix.png"  # on the version's run, titled with its name and version


class RegisterConfig(BaseModel):
    """Which registered model to add a version to, and the alias new versions get."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(
        DEFAULT_MODEL_NAMES["classification"], min_length=1, description="Default: zero2one-generator for generation."
    )
    challenger_alias: str = CHALLENGER
    retry: RetryPolicy = RetryPolicy()


def signature(labels: list[str]) -> ModelSignature:
    outputs = [ColSpec("string", "label"), ColSpec("double", "score")]
    outputs += [ColSpec("double", f"prob_{lab}") for lab in labels]
    return ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema(outputs))


def _requirements(onnx: bool = False, baseline: bool = False) -> list[str]:
    """Pinned explicitly: MLflow's inference would load the model in a subprocess just to guess them.

    A version that serves ONNX never imports torch or transformers at inference time.
    """
    packages = (
        ("mlflow", "onnxruntime", "scikit-learn", "pandas", "numpy")
        if baseline
        else ("mlflow", "onnxruntime", "tokenizers", "pandas", "numpy")
        if onnx
        else ("mlflow", "torch", "transformers", "pandas", "numpy")
    )
    return [f"{p}=={pkg_version(p).split('+')[0]}" for p in packages]


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
    maybe_fail("register", ws.local_dir("faults"))
    if isinstance(report, GenerationReport):
        return _register_generator(cfg, data, model, report, lineage, tracking, ws, parent_run_id)
    tags = _lineage_tags(data, model, report, lineage) | {
        METRIC_MACRO_F1: f"{report.model.macro_f1:.4f}",
        METRIC_ACCURACY: f"{report.model.accuracy:.4f}",
    }
    artifacts = {"model": str(materialize(model.uri))}
    if optimized is not None:
        # Whether its parity check passed is the gate's `parity` rule.
        tags |= {LINEAGE_OPTIMIZE_RUN: optimized.mlflow_run_id, SERVING_VARIANT: optimized.variant}
        if optimized.onnx_file:  # the pyfunc serves this ONNX graph, without PyTorch
            artifacts["onnx"] = str(materialize(optimized.uri) / optimized.onnx_file)
    example = pd.DataFrame({"text": load_splits(data)["test"]["text"][:2]})
    with stage_run(tracking, "register", parent_run_id, tags) as run:
        mlflow.log_metrics({"test_macro_f1": report.model.macro_f1, "test_accuracy": report.model.accuracy})
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts=artifacts,
            code_paths=[str(PYFUNC_CODE.parent)],
            signature=signature(data.labels),
            input_example=example,
            pip_requirements=_requirements(onnx="onnx" in artifacts),
        )
        mv = mlflow.register_model(info.model_uri, cfg.model_name, tags=tags)
        if report.confusion:
            title = (
                f"{cfg.model_name} v{mv.version}: test split ({report.test_size} texts), "
                f"macro-F1 {report.model.macro_f1:.4f}"
            )
            mlflow.log_figure(confusion_figure(report.confusion, data.labels, title), CONFUSION_PNG)
    return _challenger(cfg, mv.version, run.info.run_id, tags, comparison_rows(report), tracking, ws)


def _register_generator(
    cfg: RegisterConfig,
    data: PreparedInstructions,
    model: InstructionTunedModel,
    report: GenerationReport,
    lineage: Lineage,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None,
) -> RegisteredModel:
    """The instruction-tuned model as a generator pyfunc (safetensors + tokenizer + chat template + code)."""
    tags = _lineage_tags(data, model, report, lineage) | {
        TASK: "generation",
        METRIC_CHRF: f"{report.model.chrf:.4f}",
        METRIC_EXACT_MATCH: f"{report.model.exact_match:.4f}",
        METRIC_PERPLEXITY: f"{report.model.perplexity:.4f}" if report.model.perplexity is not None else "none",
    }
    examples = [prompt_text(m) for m in load_instruction_splits(data)["test"][:2]["messages"]]
    with stage_run(tracking, "register", parent_run_id, tags) as run:
        mlflow.log_metrics(
            {f"test_{k}": v for k, v in report.model.model_dump().items() if v is not None}  # chrf, exact_match, ...
        )
        info = log_generator(materialize(model.uri), examples)
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


def register_baseline(name: str, data: PreparedData, report: EvalReport, tracking: Tracking) -> RegisteredModel:
    """The evaluate stage's TF-IDF baseline as a version of `name` (once per export: a re-run finds it again)."""
    baseline = report.baseline
    if baseline is None:
        raise ValueError(f"evaluation run {report.mlflow_run_id} fitted no baseline to register")
    client = tracking.client()
    for mv in client.search_model_versions(f"name='{name}'"):
        if mv.tags.get(KIND) == "baseline" and read_tag(mv.tags, LINEAGE_BASELINE_URI) == baseline.uri:
            return RegisteredModel(
                name=name,
                version=str(mv.version),
                aliases=list(mv.aliases),
                model_uri=f"models:/{name}/{mv.version}",
                run_id=mv.run_id,
                tags=dict(mv.tags),
            )
    tags = {
        KIND: "baseline",
        LINEAGE_DATA_FINGERPRINT: data.fingerprint,
        LINEAGE_DATA_URI: data.uri,
        LINEAGE_BASELINE_URI: baseline.uri,
        LINEAGE_BASE_MODEL: f"tf-idf + logistic regression (C={reporting.readable(baseline.c)})",
        LINEAGE_EVAL_RUN: report.mlflow_run_id,
        LINEAGE_FLOW_RUN: flow_run_id() or "none",
        METRIC_MACRO_F1: f"{report.tfidf_logreg.macro_f1:.4f}",
        METRIC_ACCURACY: f"{report.tfidf_logreg.accuracy:.4f}",
    }
    example = pd.DataFrame({"text": load_splits(data)["test"]["text"][:2]})
    with stage_run(tracking, "register-baseline", None, tags) as run:
        mlflow.log_metrics(
            {"test_macro_f1": report.tfidf_logreg.macro_f1, "test_accuracy": report.tfidf_logreg.accuracy}
        )
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts={"baseline": str(materialize(baseline.uri))},
            code_paths=[str(PYFUNC_CODE.parent)],
            signature=signature(data.labels),
            input_example=example,
            pip_requirements=_requirements(baseline=True),
        )
        mv = mlflow.register_model(info.model_uri, name, tags=tags)
    return RegisteredModel(
        name=name,
        version=str(mv.version),
        aliases=[],
        model_uri=f"models:/{name}/{mv.version}",
        run_id=run.info.run_id,
        tags=tags,
    )


def load_predictor(
    client: MlflowClient, name: str, version: str, tracking: Tracking
) -> TextClassifier | BaselineClassifier:
    """A version's classifier, from the files it was made from when they are still there, else from its artifact."""
    tags = client.get_model_version(name, version).tags
    if tags.get(KIND) == "baseline":
        source = read_tag(tags, LINEAGE_BASELINE_URI)
        if source and exists(join(source, META_FILE)):
            return BaselineClassifier(materialize(source))
        return BaselineClassifier(Path(_download(name, version, tracking), "artifacts", "baseline"))
    checkpoint = read_tag(tags, LINEAGE_CHECKPOINT_URI)
    if checkpoint and exists(join(checkpoint, "config.json")):
        return TextClassifier(materialize(checkpoint))
    return TextClassifier(Path(_download(name, version, tracking), "artifacts", "model"))


def load_generator(client: MlflowClient, name: str, version: str, tracking: Tracking) -> TextGenerator:
    """A version's generator, from its checkpoint folder when it is still there, else from its artifact."""
    checkpoint = read_tag(client.get_model_version(name, version).tags, LINEAGE_CHECKPOINT_URI)
    if checkpoint and exists(join(checkpoint, "config.json")):
        return TextGenerator(materialize(checkpoint))
    return TextGenerator(Path(_download(name, version, tracking), "artifacts", "model"))


def _download(name: str, version: str, tracking: Tracking) -> str:
    return mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{version}", tracking_uri=tracking.uri, registry_uri=tracking.uri
    )
