"""MLflow "models from code" entry point for a registered zero2one text generator.

MLflow executes this file when the model is loaded; nothing is pickled. The `model` artifact is a plain
`save_pretrained` folder (safetensors, config, tokenizer and its chat template) and `models/` ships as code, so
`mlflow.pyfunc.load_model("models:/NAME@champion")` needs neither this repository nor the Prefect stack.

Input: a DataFrame with a `prompt` column (text) or a `messages` column (a list of `{role, content}` ending with
the user's turn, or that list as JSON text). Params: `max_new_tokens`, `temperature` (0 = greedy), `top_p`,
`seed`. Output: a DataFrame with one `response` per row.
"""

from __future__ import annotations

import json

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

DEFAULT_PARAMS = {"max_new_tokens": 64, "temperature": 0.0, "top_p": 1.0, "seed": 0}


def _chats(model_input: pd.DataFrame) -> list:
    """Each row as a prompt string or a list of messages."""
    if isinstance(model_input, pd.Series):
        model_input = model_input.to_frame("prompt")
    if "messages" in model_input.columns and model_input["messages"].notna().any():
        return [json.loads(m) if isinstance(m, str) else [dict(x) for x in m] for m in model_input["messages"]]
    if "prompt" in model_input.columns:
        return model_input["prompt"].astype(str).tolist()
    raise ValueError(f"expected a 'prompt' or 'messages' column, got columns {list(model_input.columns)}")


class TextGeneratorPyfunc(PythonModel):
    """Prompts or chats in, one generated `response` per row out."""

    def load_context(self, context):
        from models.generator import TextGenerator  # imported here: MLflow loads this file before `models/` code

        self.generator = TextGenerator(context.artifacts["model"])
        # The ONNX Runtime graph that passed the optimize stage's parity gate, if one did: the service decodes with
        # it (serving/kv_batches.py); batch predictions here stay on PyTorch.
        self.onnx_dir = context.artifacts.get("onnx")

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        p = DEFAULT_PARAMS | {k: v for k, v in (params or {}).items() if v is not None}
        responses = self.generator.generate(
            _chats(model_input),
            max_new_tokens=int(p["max_new_tokens"]),
            temperature=float(p["temperature"]),
            top_p=float(p["top_p"]),
            seed=int(p["seed"]),
        )
        return pd.DataFrame({"response": responses})


mlflow.models.set_model(TextGeneratorPyfunc())
