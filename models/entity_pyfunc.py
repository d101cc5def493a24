"""MLflow "models from code" entry point for a registered zero2one entity tagger.

MLflow executes this file when the model is loaded; nothing is pickled. The weights and tokenizer are plain files in
the `model` artifact, and `models/` is shipped as code. Texts in (a `text` column or a list), one row per text out
with its `entities`: a list of {type, start, end, text, score}, character offsets into the text. When the version
carries an `onnx` artifact (the graph that passed the optimize stage's parity gate), ONNX Runtime runs it.
"""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel

from models.token_classifier import EntityTaggerPyfunc


class EntityTagger(EntityTaggerPyfunc, PythonModel):
    """The pyfunc body of `models/token_classifier.py`, as MLflow's PythonModel."""


mlflow.models.set_model(EntityTagger())
