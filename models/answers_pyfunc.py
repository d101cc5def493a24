"""MLflow "models from code" entry point for a registered zero2one question answerer (extractive span reader).

MLflow executes this file when the model is loaded; nothing is pickled. The weights, tokenizer and window settings
are plain files in the `model` artifact, and `models/` is shipped as code. Rows of {question, context} in, one row
each out: `answer`, `start`, `end` (character offsets into the context), `score`, and `no_answer`. When the version
carries an `onnx` artifact (the graph that passed the optimize stage's parity gate), ONNX Runtime runs it.
"""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel

from models.span_reader import SpanReaderPyfunc


class QuestionAnswerer(SpanReaderPyfunc, PythonModel):
    """The pyfunc body of `models/span_reader.py`, as MLflow's PythonModel."""


mlflow.models.set_model(QuestionAnswerer())
