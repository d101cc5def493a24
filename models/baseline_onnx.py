"""`BaselineClassifier`: the exported TF-IDF + logistic regression baseline on ONNX Runtime.

The interface of `OnnxClassifier` (labels, predict_proba, predict, classify), so the registry's
pyfunc, the gate and serving use it like the fine-tuned model. Text -> n-gram counts uses
scikit-learn's own analyzers with the saved vocabularies (nothing pickled, exactly the fitted
tokenization); the weighting and the classifier run in `baseline.onnx` (see `models/baseline.py`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from sklearn.feature_extraction.text import CountVectorizer

ONNX_FILE, META_FILE = "baseline.onnx", "baseline.json"


class BaselineClassifier:
    """A folder with `baseline.json` and `baseline.onnx`, as `models.baseline.export` writes it."""

    max_length = None  # no window: every n-gram of every text counts, nothing is truncated

    def __init__(self, model_dir: str | Path, threads: int | None = None):
        meta = json.loads(Path(model_dir, META_FILE).read_text())
        self.labels: list[str] = meta["labels"]
        self.info = {k: v for k, v in meta.items() if k not in ("blocks", "labels", "classes")}
        self.counters = {
            name: CountVectorizer(
                analyzer=b["analyzer"], ngram_range=tuple(b["ngram_range"]), vocabulary=b["vocabulary"]
            )
            for name, b in meta["blocks"].items()
        }
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(Path(model_dir, ONNX_FILE)), options, providers=["CPUExecutionProvider"]
        )

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            feeds = {name: c.transform(batch).toarray().astype(np.float32) for name, c in self.counters.items()}
            out[start : start + len(batch)] = self.session.run(["probabilities"], feeds)[0]
        return out

    def classify(self, texts: Sequence[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, truncated): serving's call; a bag of n-grams never cuts a text."""
        return self.predict_proba(texts, batch_size), np.zeros(len(texts), dtype=bool)

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts, batch_size).argmax(axis=1)]
