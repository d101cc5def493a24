"""`TextClassifier`: texts in, label names and probabilities out.

One predictor for every consumer - evaluation, the MLflow pyfunc, serving - so the numbers
we report are the numbers users get.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from models.batching import batched_logits, softmax
from models.truncation import Truncation


class TextClassifier:
    """A saved Hugging Face sequence classifier (directory with config, weights and tokenizer)."""

    def __init__(self, model_dir: str | Path, max_length: int | None = None, device: str = "cpu"):
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).to(device).eval()
        self.device = device
        # head_tail: cut exactly as fine-tuning did (its window and head); head: the tokenizer's cut at the window.
        trained = Truncation.from_config(self.model.config)
        if trained and trained.custom and max_length:
            trained = Truncation.for_window(trained.strategy, max_length)
        self.truncation = trained if trained and trained.custom else None
        self.max_length = (
            self.truncation.max_length if self.truncation else max_length or self.model.config.max_position_embeddings
        )
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    @torch.inference_mode()
    def logits(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Logits for `texts`, in length-sorted batches (see `batched_logits`)."""
        return batched_logits(texts, self._run_batch, len(self.labels), batch_size)[0]

    def encode(self, texts: list[str]):
        """(model inputs as tensors, which texts were cut to the window): the one place texts become tokens."""
        if self.truncation is None:
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            return enc, [bool(e.overflowing) for e in enc.encodings]  # the cut tokens, kept by the fast tokenizer
        full = self.tokenizer(texts, truncation=False, verbose=False)
        columns, truncated = self.truncation.cut_encoding(dict(full))
        return self.tokenizer.pad(columns, return_tensors="pt"), truncated

    def _run_batch(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        enc, truncated = self.encode(texts)
        return self.model(**enc.to(self.device)).logits.float().cpu().numpy(), truncated

    @torch.inference_mode()
    def classify(self, texts: Sequence[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, truncated): which texts were longer than the model's window and cut to it."""
        logits, truncated = batched_logits(texts, self._run_batch, len(self.labels), batch_size)
        return softmax(logits), truncated

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return softmax(self.logits(texts, batch_size))

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts, batch_size).argmax(axis=1)]
