"""A generator champion's reference data: its instruction splits as prompts and reference answers, and a window's
reference answers. Read by drift detection (`generation_detect.py`) and by the retraining data it closes the loop
with (`generation_retrain_data.py`)."""

from __future__ import annotations

import datasets
import pandas as pd

from core.workspace import join


def load_chat_reference(data_uri: str) -> dict[str, pd.DataFrame]:
    """The champion's instruction splits as `text` (last user message, as serving logs it), `chat` (the prompt
    messages) and `true_label` (the reference answer)."""
    splits = datasets.load_from_disk(join(data_uri, "splits"))
    frames = {}
    for name, split in splits.items():
        chats = [list(m) for m in split["messages"]]
        frames[name] = pd.DataFrame(
            {
                "text": [next(x["content"] for x in reversed(m[:-1]) if x["role"] == "user") for m in chats],
                "chat": [m[:-1] for m in chats],
                "true_label": [m[-1]["content"] for m in chats],
            }
        )
    return frames


def with_references(window: pd.DataFrame) -> pd.DataFrame:
    """A window file's `reference` column is the reference answer where `true_label` (the log's) is empty."""
    if "reference" in window.columns:
        known = window["reference"].map(lambda v: isinstance(v, str) and v.strip() != "")
        window = window.assign(true_label=window["true_label"].where(window["true_label"].notna(), None))
        window.loc[known & window["true_label"].isna(), "true_label"] = window.loc[known, "reference"]
    return window
