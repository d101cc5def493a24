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


class TextClassifierPyfunc(PythonModel):
    """DataFrame with a `text` column in; `label`, `score` and one `prob_<label>` column per class out."""

    def load_context(self, context):
        # Imported here, not at the top: the ONNX path must not load torch.
        if "baseline" in context.artifacts:  # the TF-IDF baseline as a candidate version (tasks/register.py)
            from models.baseline_onnx import BaselineClassifier

            self.classifier = BaselineClassifier(context.artifacts["baseline"])
        elif "onnx" in context.artifacts:
            from models.onnx_classifier import OnnxClassifier

            self.classifier = OnnxClassifier(context.artifacts["onnx"], context.artifacts["model"])
        else:
            from models.classifier import TextClassifier

            self.classifier = TextClassifier(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if isinstance(model_input, pd.Series):
            model_input = model_input.to_frame("text")
        if "text" not in model_input.columns:
            raise ValueError(f"expected a 'text' column, got columns {list(model_input.columns)}")
        texts = model_input["text"].astype(str).tolist()
        probs = self.classifier.predict_proba(texts)
        labels = self.classifier.labels
        out = pd.DataFrame({f"prob_{name}": probs[:, i] for i, name in enumerate(labels)})
        out.insert(0, "score", probs.max(axis=1))
        out.insert(0, "label", [labels[i] for i in probs.argmax(axis=1)])
        return out


mlflow.models.set_model(TextClassifierPyfunc())
