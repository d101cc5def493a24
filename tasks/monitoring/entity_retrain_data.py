"""Closing the loop for an entity tagger: its splits plus newly labelled sentences, as a train/dev/test folder of
CoNLL files the `retrain` flow's data stage reads.

Served texts carry no gold entities, so the new sentences come from a labelled file (`new_data.uri`: CoNLL or
JSONL with spans, read and checked as the data stage reads them). Sentences already in the champion's data are
dropped and counted; the rest are split (seeded) and added, so the gate compares old and new tagger on test
sentences neither trained on.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import datasets
import pandas as pd

from core.errors import PipelineInputError
from core.fingerprint import hash_json
from core.storage import publish_dir
from core.workspace import Workspace, join
from tasks.data.three_way_split import three_way_split
from tasks.kinds.entities.reader import EntityDataError, read_entities
from tasks.monitoring.windows import WindowSource
from tasks.results.data import RetrainData
from tasks.results.registry import Champion

FILES = {"train": "train.conll", "validation": "dev.conll", "test": "test.conll"}


def _conll(words: list[list[str]], tags: list[list[str]]) -> str:
    sentences = zip(words, tags, strict=True)
    return "".join("".join(f"{w}\t{t}\n" for w, t in zip(ws, ts, strict=True)) + "\n" for ws, ts in sentences)


def write_entity_retrain_data(
    champion: Champion,
    new_data: WindowSource,
    ws: Workspace,
    validation: float = 0.1,
    test: float = 0.1,
    seed: int = 42,
) -> RetrainData:
    """The champion's splits plus the new labelled sentences of `new_data.uri`, as CoNLL files in one folder."""
    if not new_data.uri:
        raise PipelineInputError("retraining a tagger needs labelled sentences: new_data.uri = a CoNLL or JSONL file")
    try:
        new = read_entities(new_data.uri).sentences
    except EntityDataError as e:
        raise PipelineInputError(str(e)) from None
    old = datasets.load_from_disk(join(champion.data_uri, "splits"))
    known = {" ".join(w) for split in old.values() for w in split["words"]}
    fresh = [s for s in new if " ".join(s.words) not in known]
    dropped = {"already in the champion's data": len(new) - len(fresh)}
    if not fresh:
        raise PipelineInputError(f"{new_data.uri}: no sentence that the champion's data does not already hold")
    cut = three_way_split(pd.DataFrame({"i": range(len(fresh))}), validation, test, seed, stratify=None)
    parts = {split: [fresh[i] for i in frame["i"]] for split, frame in cut.items()}
    key = hash_json(champion.data_fingerprint, [(s.words, s.tags) for s in fresh])
    with tempfile.TemporaryDirectory() as tmp:
        for split, name in FILES.items():
            words = list(old[split]["words"]) + [s.words for s in parts.get(split, [])]
            tags = list(old[split]["tags"]) + [s.tags for s in parts.get(split, [])]
            Path(tmp, name).write_text(_conll(words, tags))
        uri = publish_dir(Path(tmp), ws.uri("retrain", key))
    added = {split: len(parts.get(split, [])) for split in FILES}
    return RetrainData(uri=uri, added=added, dropped=dropped, labels=champion.labels)
