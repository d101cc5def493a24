"""What `TextClassifier` and `OnnxClassifier` share: length-sorted batching and the softmax.

numpy only: `OnnxClassifier` serves without PyTorch, so this module must import neither torch nor transformers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def batched_logits(
    texts: Sequence[str], run_batch: Callable[[list[str]], np.ndarray], num_labels: int, batch_size: int
) -> np.ndarray:
    """`run_batch` over `texts`, `batch_size` at a time; batches are sorted by length so padding stays short."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), num_labels), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        out[idx] = run_batch([texts[i] for i in idx])
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise probabilities; the row max is subtracted first so `exp` cannot overflow."""
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)
