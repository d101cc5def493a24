"""MLflow "models from code" entry point for a registered zero2one classifier.

MLflow executes this file when the model is loaded; nothing is pickled. The weights and
tokenizer are plain files in the `model` artifact (safetensors), and `models/` is shipped as
code, so `mlflow.pyfunc.load_model("models:/NAME@champion")` needs neither this repository
nor the Prefect stack. When the version also carries an `onnx` artifact (the graph that passed
the optimize stage's parity gate), predictions run on ONNX Runtime and torch is never imported.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


def _texts(model_input) -> list[str]:
    """The texts in any shape MLflow hands over: a DataFrame with a `text` column (the signature's), a
    one-column DataFrame or Series, a list of strings, or records / a dict with a `text` key.

    MLflow's own input parsing decides what reaches here: `mlflow models predict` and `/invocations` take
    `{"inputs": ["a", "b"]}` and `{"dataframe_records": [{"text": "a"}]}`, but refuse a bare JSON list
    before the model sees it (see serving/examples/).
    """
    if isinstance(model_input, pd.Series):
        model_input = model_input.to_frame("text")
    elif isinstance(model_input, dict):
        model_input = pd.DataFrame({"text": model_input.get("text", [])})
    elif isinstance(model_input, list | tuple):
        rows = list(model_input)
        model_input = pd.DataFrame(rows if rows and isinstance(rows[0], dict) else {"text": rows})
    if not isinstance(model_input, pd.DataFrame):
        raise ValueError(f"expected texts (a list of strings or a DataFrame with a 'text' column), got {model_input!r}")
    if "text" not in model_input.columns and len(model_input.columns) == 1:
        model_input = model_input.set_axis(["text"], axis=1)
    if "text" not in model_input.columns:
        raise ValueError(f"expected a 'text' column, got columns {list(model_input.columns)}")
    return model_input["text"].astype(str).tolist()


class TextClassifierPyfunc(PythonModel):
    """Texts in (a DataFrame with a `text` column, or a list of strings); `label`, `score` and one
    `prob_<label>` column per class out."""

    def load_context(self, context):
        # Imported here, not at the top: the ONNX path must not load torch.
        if "baseline" in context.artifacts:  # the TF-IDF baseline as a candidate version (tasks/registry/register.py)
            from models.baseline_onnx import BaselineClassifier

            self.classifier = BaselineClassifier(context.artifacts["baseline"])
        elif "onnx" in context.artifacts:
            from models.onnx_classifier import OnnxClassifier

            self.classifier = OnnxClassifier(context.artifacts["onnx"], context.artifacts["model"])
        else:
            from models.classifier import TextClassifier

            self.classifier = TextClassifier(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        probs = self.classifier.predict_proba(_texts(model_input))
        labels = self.classifier.labels
        out = pd.DataFrame({f"prob_{name}": probs[:, i] for i, name in enumerate(labels)})
        out.insert(0, "score", probs.max(axis=1))
        out.insert(0, "label", [labels[i] for i in probs.argmax(axis=1)])
        return out


mlflow.models.set_model(TextClassifierPyfunc())
