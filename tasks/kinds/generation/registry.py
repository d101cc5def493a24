"""How a generator is logged for the registry: the pyfunc from code, its signature and its pinned requirements.

`log_generator` is what the shared register stage calls for the generation task (instead of the classifier's
`pyfunc_model.py`); registration, aliases, lineage tags and promotion stay the same code for both tasks.
"""

from __future__ import annotations

from importlib.metadata import version as pkg_version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types.schema import Array, ColSpec, Object, ParamSchema, ParamSpec, Property, Schema

import models
from models.generator_pyfunc import DEFAULT_PARAMS

PYFUNC_CODE = Path(models.__file__).parent / "generator_pyfunc.py"


def signature() -> ModelSignature:
    """`prompt` (text) or `messages` ([{role, content}]) in, `response` out; generation settings as params."""
    message = Object([Property("role", "string"), Property("content", "string")])
    inputs = Schema([ColSpec("string", "prompt", required=False), ColSpec(Array(message), "messages", required=False)])
    types = {"max_new_tokens": "long", "temperature": "double", "top_p": "double", "seed": "long"}
    params = ParamSchema([ParamSpec(name, types[name], default) for name, default in DEFAULT_PARAMS.items()])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("string", "response")]), params=params)


def requirements() -> list[str]:
    """Pinned explicitly: MLflow's inference would load the model in a subprocess just to guess them."""
    return [f"{p}=={pkg_version(p).split('+')[0]}" for p in ("mlflow", "torch", "transformers", "pandas", "numpy")]


def log_generator(
    model_dir: str | Path, example_prompts: list[str], name: str = "model", onnx_dir: str | Path | None = None
) -> ModelInfo:
    """Log the saved causal LM in `model_dir` as a models-from-code pyfunc into the active MLflow run.

    `onnx_dir`: the ONNX Runtime GenAI graph that passed parity (`tasks/kinds/generation/optimize.py`), logged as the
    `onnx` artifact for a server that decodes with it (`models/onnx_decoder.OrtTextGenerator`).
    """
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(PYFUNC_CODE),
        artifacts={"model": str(model_dir)} | ({"onnx": str(onnx_dir)} if onnx_dir else {}),
        code_paths=[str(PYFUNC_CODE.parent)],
        signature=signature(),
        input_example=pd.DataFrame({"prompt": example_prompts}),
        pip_requirements=requirements(),
    )
