"""Plain texts as a classifier's prepared data (`PreparedData`), so the tokenizer and pretrain stages
(`tasks/training/`) can read another kind's text: a `text` corpus and a held-out `validation` split, written once
under `<workspace>/pretraining_text/<key>/` (the key: the source's fingerprint and how the text was made).
"""

from __future__ import annotations

from core.fingerprint import hash_json
from core.workspace import Workspace, exists
from tasks.results.data import ArrowSplits, PreparedData

MAX_HELD_OUT = 2000  # held-out texts the pretrain stage scores once at its end


def text_view(data: ArrowSplits, how: str, corpus: list[str], held_out: list[str], ws: Workspace) -> PreparedData:
    """The view of `corpus` (train) and `held_out` (validation, capped) made from `data`; reused when written."""
    key = hash_json(data.fingerprint, how)
    view = PreparedData(
        uri=ws.uri("pretraining_text", key),
        fingerprint=key,
        sizes={"train": len(corpus), "validation": min(len(held_out), MAX_HELD_OUT)},
        dropped={},
        source=f"{data.source} ({how})",
        labels=[],
        corpus_size=len(corpus),
    )
    if not exists(view.splits_uri + "/dataset_dict.json"):
        import datasets

        # corpus first, splits last: their presence marks the folder complete, as the prepare stages do
        datasets.Dataset.from_dict({"text": corpus}).save_to_disk(view.corpus_uri)
        validation = datasets.Dataset.from_dict({"text": held_out[:MAX_HELD_OUT]})
        datasets.DatasetDict({"validation": validation}).save_to_disk(view.splits_uri)
    return view
