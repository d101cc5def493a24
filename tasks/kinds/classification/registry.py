"""How a classifier is logged for the registry: the pyfunc from code, its signature, its pinned requirements; and
the TF-IDF baseline registered as a version of its own.

The register stage logs the fine-tuned classifier through `log_classifier`; the gate registers the baseline that
beat it through `register_baseline` (the same pyfunc, serving the baseline's ONNX export through
`models/baseline_onnx.py`), so the gate does not import the register stage. `tasks/kinds/generation/registry.py` is the
generator's counterpart.
"""

from __future__ import annotations

from importlib.metadata import version as pkg_version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import ColSpec, Schema

import models
from core import reporting
from core.registry_names import (
    KIND,
    LINEAGE_BASE_MODEL,
    LINEAGE_BASELINE_URI,
    LINEAGE_DATA_FINGERPRINT,
    LINEAGE_DATA_URI,
    LINEAGE_EVAL_RUN,
    LINEAGE_FLOW_RUN,
    METRIC_ACCURACY,
    METRIC_MACRO_F1,
    read_tag,
)
from core.run_context import flow_run_id
from core.storage import materialize
from core.tracking import Tracking, stage_run
from tasks.data.loaders import load_splits
from tasks.results.classification import EvalReport
from tasks.results.data import PreparedData
from tasks.results.registry import RegisteredModel

PYFUNC_CODE = Path(models.__file__).parent / "pyfunc_model.py"
CONFUSION_PNG = "confusion_matrix.png"  # on the version's run, titled with its name and version


def signature(labels: list[str]) -> ModelSignature:
    outputs = [ColSpec("string", "label"), ColSpec("double", "score")]
    outputs += [ColSpec("double", f"prob_{lab}") for lab in labels]
    return ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema(outputs))


def requirements(onnx: bool = False, baseline: bool = False) -> list[str]:
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


def log_classifier(data: PreparedData, artifacts: dict[str, str]) -> ModelInfo:
    """Log the classifier pyfunc (artifacts `model`, `onnx` or `baseline`) into the active MLflow run."""
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(PYFUNC_CODE),
        artifacts=artifacts,
        code_paths=[str(PYFUNC_CODE.parent)],
        signature=signature(data.labels),
        input_example=pd.DataFrame({"text": load_splits(data)["test"]["text"][:2]}),
        pip_requirements=requirements(onnx="onnx" in artifacts, baseline="baseline" in artifacts),
    )


def _registered(name: str, version, run_id: str, tags: dict[str, str], aliases: list[str]) -> RegisteredModel:
    return RegisteredModel(
        name=name,
        version=str(version),
        aliases=aliases,
        model_uri=f"models:/{name}/{version}",
        run_id=run_id,
        tags=tags,
    )


def register_baseline(name: str, data: PreparedData, report: EvalReport, tracking: Tracking) -> RegisteredModel:
    """The evaluate stage's TF-IDF baseline as a version of `name` (once per export: a re-run finds it again)."""
    baseline = report.baseline
    if baseline is None:
        raise ValueError(f"evaluation run {report.mlflow_run_id} fitted no baseline to register")
    client = tracking.client()
    for mv in client.search_model_versions(f"name='{name}'"):
        if mv.tags.get(KIND) == "baseline" and read_tag(mv.tags, LINEAGE_BASELINE_URI) == baseline.uri:
            return _registered(name, mv.version, mv.run_id, dict(mv.tags), list(mv.aliases))
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
    with stage_run(tracking, "register-baseline", None, tags) as run:
        mlflow.log_metrics(
            {"test_macro_f1": report.tfidf_logreg.macro_f1, "test_accuracy": report.tfidf_logreg.accuracy}
        )
        info = log_classifier(data, {"baseline": str(materialize(baseline.uri))})
        mv = mlflow.register_model(info.model_uri, name, tags=tags)
    return _registered(name, mv.version, run.info.run_id, tags, [])
