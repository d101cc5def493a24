"""The prepare_questions stage: read SQuAD JSON or JSONL question files, check them, split them by article, keep them
as Arrow.

A folder with train/dev/test files keeps its splits (a missing dev or test is cut from train); a single file is cut
into train/validation/test by `answer_data.validation`/`test` shares of its questions, whole articles (or contexts,
where a file names no article) at a time, seeded: no context is in two splits, so a test question is never answered
from a text the model was trained on. Bad input stops here with one line naming the file, the question and the value
(`reader.py`), before any compute.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core import reporting
from core.errors import PipelineInputError
from core.fingerprint import hash_json
from core.retry import RetryPolicy
from core.workspace import Workspace, exists
from tasks.kinds.answers.reader import QADataError, QAExample, read_qa
from tasks.kinds.answers.splits import questions, rows_to_questions, sample  # noqa: F401 (re-exported)
from tasks.results.answers import PreparedQuestions
from tasks.results.common import SPLITS

FOLDER_FILES = {"train": ("train",), "validation": ("dev", "validation", "valid"), "test": ("test",)}
_CJK = re.compile(r"[\u4e00-\u9fff]")


class AnswerDataConfig(BaseModel):
    """Where the question data is and how to read and split it."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        None,
        description="A SQuAD JSON file (v1.1 or v2.0: data -> paragraphs -> qas), a JSONL file (question, context, "
        "answers {text, answer_start}, optional id and doc_id), or a folder with train/dev/test files.",
    )
    offsets: Literal["refuse", "repair"] = Field(
        "refuse",
        description="An answer not at its answer_start: refuse the file, or move it to the nearest copy of its text "
        "within 16 characters (COVID-QA has 234 a few characters off).",
    )
    validation: float = Field(0.1, gt=0, lt=0.5, description="Share of questions cut for validation from one file.")
    test: float = Field(0.1, gt=0, lt=0.5, description="Share of questions cut for test from one file.")
    dev_file: Literal["validation", "test"] = Field(
        "validation",
        description="What a folder's dev file is: validation, or test for a set that publishes no test file (CMRC "
        "2018 and SQuAD report on dev); validation is then cut from train, by article.",
    )
    seed: int = 42
    max_train_questions: int | None = Field(None, gt=0, description="Seeded sample of training questions (CPU).")
    scoring: Literal["auto", "squad", "cmrc"] = Field(
        "auto", description="auto: CMRC 2018 character-level scores when most context characters are Chinese."
    )
    retry: RetryPolicy = RetryPolicy()


def _read(path: Path, cfg: AnswerDataConfig, notes: list[str]) -> list[QAExample]:
    try:
        return read_qa(path, cfg.offsets, notes)
    except QADataError as e:
        raise PipelineInputError(str(e)) from None


def _folder_file(folder: Path, names: tuple[str, ...]) -> Path | None:
    found = [p for n in names for p in (folder / f"{n}.json", folder / f"{n}.jsonl") if p.is_file()]
    return found[0] if found else None


def read_splits(cfg: AnswerDataConfig) -> tuple[dict[str, list[QAExample]], int]:
    """train/validation/test questions and how many answer_starts were repaired; a user's mistake is a
    `PipelineInputError`."""
    if not cfg.source:
        raise PipelineInputError(
            "answer_data.source is required: a SQuAD JSON or JSONL file, or a train/dev/test folder"
        )
    path, notes = Path(cfg.source), []
    if path.is_dir():
        files = {split: _folder_file(path, names) for split, names in FOLDER_FILES.items()}
        if files["train"] is None:
            raise PipelineInputError(f"{path}: a folder needs train.json or train.jsonl (and dev/test, optional)")
        if cfg.dev_file == "test" and files["test"] is not None and files["validation"] is not None:
            raise PipelineInputError(f"{path}: answer_data.dev_file=test, but the folder has a test file of its own")
        if cfg.dev_file == "test" and files["test"] is None:
            files["test"], files["validation"] = files["validation"], None
        splits = {split: _read(f, cfg, notes) for split, f in files.items() if f is not None}
    else:
        splits = {"train": _read(path, cfg, notes)}
    return carve(splits, cfg), len(notes)


def article(example: QAExample) -> str:
    """What must not be in two splits: the article where the file names one, else the context itself."""
    return example.doc_id or example.context


def carve(splits: dict[str, list[QAExample]], cfg: AnswerDataConfig) -> dict[str, list[QAExample]]:
    """The splits a source lacks, cut out of its train questions whole articles at a time (seeded)."""
    missing = [s for s in ("validation", "test") if s not in splits]
    train = splits["train"]
    if missing:
        groups: dict[str, list[QAExample]] = {}
        for ex in train:
            groups.setdefault(article(ex), []).append(ex)
        keys = sorted(groups)
        random.Random(cfg.seed).shuffle(keys)
        for split in missing:
            wanted, cut = getattr(cfg, split) * len(train), []
            while keys and len(cut) < wanted and len(keys) > 1:
                cut.extend(groups[keys.pop()])
            if not cut:
                raise PipelineInputError(f"{cfg.source}: too few articles ({len(groups)}) to cut a {split} split from")
            splits[split] = cut
        train = [ex for k in keys for ex in groups[k]]
    return {**splits, "train": sample(train, cfg.max_train_questions, cfg.seed)}


def check_splits(splits: dict[str, list[QAExample]], source: str) -> None:
    """Refuse what would train on nothing or judge on nothing, naming the split."""
    if not any(ex.answers for ex in splits["train"]):
        raise PipelineInputError(f"{source}: the training split holds no answered question")
    for split in SPLITS:
        if not splits[split]:
            raise PipelineInputError(f"{source}: the {split} split holds no question")
    ids = [ex.id for split in SPLITS for ex in splits[split]]
    if len(set(ids)) < len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise PipelineInputError(f"{source}: question id {twice!r} appears more than once")


def scoring_for(cfg: AnswerDataConfig, examples: list[QAExample]) -> tuple[str, str]:
    """(scoring, language): CMRC's character-level scores where most context characters are Chinese."""
    sample = "".join(ex.context[:2000] for ex in examples[:200])
    chinese = len(_CJK.findall(sample)) > 0.3 * max(len(sample.replace(" ", "")), 1)
    language = "zh" if chinese else "en"
    return (cfg.scoring if cfg.scoring != "auto" else ("cmrc" if chinese else "squad")), language


def _columns(examples: list[QAExample]) -> dict[str, list]:
    return {
        "id": [ex.id for ex in examples],
        "question": [ex.question for ex in examples],
        "context": [ex.context for ex in examples],
        "answer_texts": [[a.text for a in ex.answers] for ex in examples],
        "answer_starts": [[a.start for a in ex.answers] for ex in examples],
        "doc_id": [ex.doc_id for ex in examples],
        "text": [ex.question for ex in examples],  # what deduplication, the gate's frozen set and monitoring read
    }


def prepare_questions(cfg: AnswerDataConfig, ws: Workspace) -> PreparedQuestions:
    """Read, check and split `cfg.source`; save it under `<workspace>/answer_data/<fingerprint>/`."""
    splits, repaired = read_splits(cfg)
    check_splits(splits, str(cfg.source))
    scoring, language = scoring_for(cfg, splits["train"])
    columns = {s: _columns(splits[s]) for s in SPLITS}
    fingerprint = hash_json(columns, scoring)
    result = PreparedQuestions(
        uri=ws.uri("answer_data", fingerprint),
        fingerprint=fingerprint,
        sizes={s: len(splits[s]) for s in SPLITS},
        dropped={},
        source=cfg.source,
        scoring=scoring,
        language=language,
        articles={s: len({article(ex) for ex in splits[s]}) for s in SPLITS},
        no_answer={s: sum(ex.is_impossible for ex in splits[s]) for s in SPLITS},
        repaired=repaired,
        corpus_size=len({ex.context for ex in splits["train"]}),
    )
    if not exists(result.splits_uri + "/dataset_dict.json"):
        _save(result, columns)
    reporting.logger().info(
        "prepared %s: %s questions on %s articles (%s scoring, %d answer_starts repaired) -> %s",
        cfg.source, result.sizes, result.articles, scoring, repaired, result.uri,
    )  # fmt: skip
    return result


def _save(result: PreparedQuestions, columns: dict[str, dict[str, list]]) -> None:
    import datasets

    dd = datasets.DatasetDict({s: datasets.Dataset.from_dict(c) for s, c in columns.items()})
    contexts = list(dict.fromkeys(columns["train"]["context"]))
    datasets.Dataset.from_dict({"text": contexts}).save_to_disk(result.corpus_uri)
    dd.save_to_disk(result.splits_uri)  # written last: its presence marks the folder complete
