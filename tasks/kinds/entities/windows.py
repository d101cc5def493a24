"""Training features from sub-word windows (models/token_classifier.py cuts the windows, shared with inference).

Labels sit on a word's first sub-token; its other sub-tokens and the special tokens carry -100 (ignored by the loss).
"""

from __future__ import annotations

from models.token_classifier import Window

IGNORE = -100


def labelled(win: Window, label_ids: list[int]) -> dict[str, list[int]]:
    """Trainer features for one window: first sub-token of each word labelled, the rest IGNORE."""
    labels = [IGNORE] * len(win.input_ids)
    for j, pos in enumerate(win.first):
        labels[pos] = label_ids[win.start + j]
    return {"input_ids": win.input_ids, "attention_mask": [1] * len(win.input_ids), "labels": labels}
