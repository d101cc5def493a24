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
result types in `tasks/results/`; the default model names in `core/registry_names.py`.
"""

from __future__ import annotations

from core.tracking import Tracking
from core.workspace import Workspace
from tasks.kinds.registry import kind_of
from tasks.results.classification import EvalReport, FinetunedModel, OptimizedModel
from tasks.results.data import PreparedData, PreparedInstructions
from tasks.results.generation import GenerationReport, InstructionTunedModel
from tasks.results.registry import Lineage, RegisteredModel
from tasks.stage_configs import RegisterConfig


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
    """The register stage: the model kind of `report` logs and registers its own pyfunc (`ModelKind.register`)."""
    register_kind = kind_of(report).register
    return register_kind(cfg, data, model, report, lineage, tracking, ws, parent_run_id, optimized)
