"""Closing the loop for a question answerer: its splits plus newly labelled questions, as a train/dev/test folder of
JSONL files the `retrain` flow's data stage (`prepare_questions`) reads split by split.

Served questions carry no gold answers, so the new ones come from a labelled file (`new_data.uri`: SQuAD JSON or
JSONL, read and checked as the data stage reads them: a misplaced answer is refused, naming file, row and both
strings). Questions already in the champion's data (same question on the same context) are dropped and counted.
The rest keep the rule the data stage keeps, no context in two splits: a question on a context the champion's data
already holds joins that context's split; the others are split whole articles at a time (seeded), so the gate
compares old and new reader on test questions neither trained on.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import datasets
import pandas as pd

from core.errors import PipelineInputError
from core.fingerprint import hash_json
from core.storage import publish_dir
from core.workspace import Workspace, join
from tasks.data.three_way_split import three_way_split
from tasks.kinds.answers.prepare_stage import article, rows_to_questions
from tasks.kinds.answers.reader import QADataError, QAExample, read_qa
from tasks.monitoring.windows import WindowSource
from tasks.results.common import SPLITS
from tasks.results.data import RetrainData
from tasks.results.registry import Champion

FILES = {"train": "train.jsonl", "validation": "dev.jsonl", "test": "test.jsonl"}


def _jsonl(examples: list[QAExample]) -> str:
    """The reader's JSONL layout; a text-only gold (start -1, kept under offsets=repair) is written as it was read."""
    rows = (
        {"id": ex.id, "question": ex.question, "context": ex.context, "doc_id": ex.doc_id,
         "answers": [{"text": a.text, "answer_start": a.start} for a in ex.answers], "is_impossible": ex.is_impossible}
        for ex in examples
    )  # fmt: skip
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _new_questions(uri: str) -> list[QAExample]:
    try:
        return read_qa(uri)
    except QADataError as e:
        raise PipelineInputError(str(e)) from None


def _unique_ids(fresh: list[QAExample], taken: set[str]) -> list[QAExample]:
    """New questions keep their ids unless the champion's data holds them (JSONL ids default to `line<n>`)."""
    out = []
    for ex in fresh:
        qid, n = ex.id, 1
        while qid in taken:
            qid, n = f"{ex.id}~new{n}", n + 1
        taken.add(qid)
        out.append(QAExample(qid, ex.question, ex.context, ex.answers, ex.doc_id))
    return out


def place(fresh: list[QAExample], split_of: dict[str, str], validation: float, test: float, seed: int):
    """The split of each new question: its context's, where the champion's data holds that context; else a seeded
    three-way split of the new articles (all to train when there are fewer than 3)."""
    groups: dict[str, list[QAExample]] = {}
    for ex in fresh:
        groups.setdefault(article(ex), []).append(ex)
    parts: dict[str, list[QAExample]] = {split: [] for split in SPLITS}
    unplaced = []
    for key, group in groups.items():
        known = next((split_of[ex.context] for ex in group if ex.context in split_of), None)
        if known:
            parts[known].extend(group)
        else:
            unplaced.append(key)
    cut = {"train": pd.DataFrame({"key": unplaced})}
    if len(unplaced) >= 3:
        cut = three_way_split(pd.DataFrame({"key": unplaced}), validation, test, seed, stratify=None)
    for split, frame in cut.items():
        parts[split].extend(ex for key in frame["key"] for ex in groups[key])
    return parts


def write_answer_retrain_data(
    champion: Champion,
    new_data: WindowSource,
    ws: Workspace,
    validation: float = 0.1,
    test: float = 0.1,
    seed: int = 42,
) -> RetrainData:
    """The champion's splits plus the new labelled questions of `new_data.uri`, as JSONL files in one folder."""
    if not new_data.uri:
        raise PipelineInputError(
            "retraining a question answerer needs labelled questions: new_data.uri = a SQuAD JSON or JSONL file"
        )
    new = _new_questions(new_data.uri)
    dd = datasets.load_from_disk(join(champion.data_uri, "splits"))
    old = {split: rows_to_questions(dd[split][:]) for split in SPLITS}
    known = {(ex.question.strip(), ex.context) for split in SPLITS for ex in old[split]}
    fresh = [ex for ex in new if (ex.question.strip(), ex.context) not in known]
    dropped = {"already in the champion's data": len(new) - len(fresh)}
    if not fresh:
        raise PipelineInputError(f"{new_data.uri}: no question that the champion's data does not already hold")
    fresh = _unique_ids(fresh, {ex.id for split in SPLITS for ex in old[split]})
    split_of = {ex.context: split for split in SPLITS for ex in old[split]}
    parts = place(fresh, split_of, validation, test, seed)
    key = hash_json(champion.data_fingerprint, _jsonl(fresh))
    with tempfile.TemporaryDirectory() as tmp:
        for split, name in FILES.items():
            Path(tmp, name).write_text(_jsonl(old[split] + parts[split]), encoding="utf-8")
        uri = publish_dir(Path(tmp), ws.uri("retrain", key))
    added = {split: len(parts[split]) for split in SPLITS}
    return RetrainData(uri=uri, added=added, dropped=dropped, labels=champion.labels)
