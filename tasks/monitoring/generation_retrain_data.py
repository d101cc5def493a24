"""Closing the loop for a generator: its training chats plus the window's new prompt/reference pairs, as data the
`retrain` flow instruction-tunes on (the generation twin of `retrain_data.py`, split the same way).

A window row is a new pair when it has a reference answer (the log's `true_label`, or a `reference` column) and a
prompt that is not empty and not already among the champion's chats. Chats served by `/v1/chat/completions` keep
their whole conversation (the `generation` column's `messages`); other rows are one user turn.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd

from core.errors import PipelineInputError
from core.fingerprint import hash_json
from core.prediction_log import log_uri
from core.storage import publish_dir
from core.workspace import Workspace
from tasks.data.three_way_split import three_way_split
from tasks.kinds.generation.chats import prompt_key
from tasks.monitoring.generation_reference import load_chat_reference, with_references
from tasks.monitoring.windows import WindowSource, load_window
from tasks.results.data import RetrainData
from tasks.results.registry import Champion


def _prompt_chat(row: pd.Series) -> list[dict[str, str]]:
    """The prompt as messages: the served conversation where the log has it, else the text as one user turn."""
    details = row.get("generation")
    if isinstance(details, str) and details.strip():
        messages = json.loads(details).get("messages")
        if isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages):
            return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    return [{"role": "user", "content": row["text"]}]


def _new_pairs(window: pd.DataFrame, reference: dict[str, pd.DataFrame], dropped: dict[str, int]) -> pd.DataFrame:
    """Rows with a reference answer and a prompt that is not empty, not in the reference and not repeated."""
    dropped["without a reference answer"] = int(window["true_label"].isna().sum())
    new = window[window["true_label"].notna()].copy()
    new["messages"] = [[*_prompt_chat(r), {"role": "assistant", "content": r["true_label"]}] for _, r in new.iterrows()]
    new["key"] = new["messages"].map(prompt_key)
    empty = new["text"].str.strip() == ""
    seen = {prompt_key([*c, {}]) for f in reference.values() for c in f["chat"]}
    known = new["key"].isin(seen)
    dropped |= {"empty prompt": int(empty.sum()), "already in the reference": int((known & ~empty).sum())}
    new = new[~empty & ~known]
    before = len(new)
    new = new.drop_duplicates("key")
    dropped["duplicate prompts"] = before - len(new)
    return new[["messages"]]


def write_generation_retrain_data(
    champion: Champion,
    new_data: WindowSource,
    ws: Workspace,
    validation: float = 0.1,
    test: float = 0.15,
    seed: int = 42,
) -> RetrainData:
    """The champion's chats stay in their splits; the window's new pairs are split and put before them.

    New test pairs are held out, so the gate's frozen prompts (the champion's test prompts plus the newest ones)
    include prompts like the window's that neither model trained on.
    """
    window = with_references(load_window(new_data, ws))
    reference = load_chat_reference(champion.data_uri)
    dropped: dict[str, int] = {}
    new = _new_pairs(window, reference, dropped)
    if new.empty:
        raise PipelineInputError(
            f"window {new_data.uri or log_uri(ws)} has no new prompt/reference pairs to retrain on (dropped: "
            f"{dropped}); add reference answers ({new_data.label_column or 'true_label'} or a 'reference' column)"
        )
    parts = (
        three_way_split(new, validation, test, seed, stratify=None)
        if len(new) >= 10
        else {"train": new, "validation": new.iloc[:0], "test": new.iloc[:0]}
    )
    # New pairs first: the gate and the evaluation read at most `evaluate_generation.max_prompts` test chats from
    # the top, and the new test prompts must be among them (the champion's own are added from its data anyway).
    frames = {
        split: parts[split]["messages"].tolist()
        + [[*c, {"role": "assistant", "content": a}] for c, a in zip(df["chat"], df["true_label"], strict=True)]
        for split, df in reference.items()
    }
    key = hash_json(champion.data_fingerprint, frames)
    with tempfile.TemporaryDirectory() as tmp:
        for split, chats in frames.items():
            lines = "".join(json.dumps({"messages": m}, ensure_ascii=False) + "\n" for m in chats)
            Path(tmp, f"{split}.jsonl").write_text(lines, encoding="utf-8")
        uri = publish_dir(Path(tmp), ws.uri("retrain", key))
    return RetrainData(uri=uri, added={k: len(v) for k, v in parts.items()}, dropped=dropped, labels=[])
