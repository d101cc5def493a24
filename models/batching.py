"""What `TextClassifier` and `OnnxClassifier` share: length-sorted batching and the softmax.

numpy only: `OnnxClassifier` serves without PyTorch, so this module must import neither torch nor transformers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# One forward pass: texts -> (logits, whether each text was cut to the model's window).
RunBatch = Callable[[list[str]], tuple[np.ndarray, Sequence[bool]]]


def batched_logits(
    texts: Sequence[str], run_batch: RunBatch, num_labels: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """`run_batch` over `texts`, `batch_size` at a time -> (logits, truncated flags), in the order of `texts`.

    Batches are sorted by length so padding stays short.
    """
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), num_labels), dtype=np.float32)
    truncated = np.zeros(len(texts), dtype=bool)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        out[idx], truncated[idx] = run_batch([texts[i] for i in idx])
    return out, truncated


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise probabilities; the row max is subtracted first so `exp` cannot overflow."""
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)
