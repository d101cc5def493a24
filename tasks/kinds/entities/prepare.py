"""The prepare_entities stage: read CoNLL or JSONL entity files, check them, split them, keep them as Arrow.

A folder with train/dev/test files keeps its splits; a single file is cut into train/validation/test by
`entity_data.validation`/`test` (seeded, unstratified). Bad input stops here with one line naming the file, the line
and the value (`reader.py`); a type seen in validation or test but never in training stops here too, before any
compute. The splits hold `words` and `tags` (IOB2, whatever scheme the files used: it is recorded) and `text` (the
words joined by spaces, for deduplication, the gate's frozen set and monitoring).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from core import reporting
from core.errors import PipelineInputError
from core.fingerprint import hash_json
from core.retry import RetryPolicy
from core.workspace import Workspace, exists
from tasks.data.three_way_split import three_way_split
from tasks.kinds.entities.reader import EntityDataError, ReaderConfig, Sentence, read_entities, read_folder
from tasks.results.common import SPLITS
from tasks.results.entities import PreparedEntities
from tasks.stage_configs import SplitConfig


class EntityDataConfig(BaseModel):
    """Where the entity data is and how to read and split it."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        None,
        description="A CoNLL file (token, tag per line; sentences end at an empty or whitespace-only line), a JSONL "
        "file with `text` + character `spans`, or a folder with train/dev/test files.",
    )
    reader: ReaderConfig = ReaderConfig()
    split: SplitConfig = Field(
        SplitConfig(validation=0.1, test=0.1), description="Shares cut for validation and test from a single file."
    )
    max_train_sentences: int | None = Field(None, gt=0, description="Cap on training sentences (CPU budgets).")
    retry: RetryPolicy = RetryPolicy()


def read_splits(cfg: EntityDataConfig) -> tuple[dict[str, list[Sentence]], str]:
    """train/validation/test sentences and the source's tag scheme; a user's mistake is a `PipelineInputError`."""
    if not cfg.source:
        raise PipelineInputError("entity_data.source is required: a CoNLL or JSONL file, or a train/dev/test folder")
    path = Path(cfg.source)
    try:
        if path.is_dir():
            found = read_folder(path, cfg.reader)
            scheme = found["train"].source_scheme
            splits = {"train": found["train"].sentences}
            splits |= {
                name: found[key].sentences for name, key in (("validation", "dev"), ("test", "test")) if key in found
            }
        else:
            data = read_entities(path, cfg.reader)
            scheme, splits = data.source_scheme, {"train": data.sentences}
    except EntityDataError as e:
        raise PipelineInputError(str(e)) from None
    return _carve(splits, cfg), scheme


def _carve(splits: dict[str, list[Sentence]], cfg: EntityDataConfig) -> dict[str, list[Sentence]]:
    """The splits a source lacks, cut out of its train sentences (seeded)."""
    missing = [s for s in ("validation", "test") if s not in splits]
    if missing:
        frame = pd.DataFrame({"i": range(len(splits["train"]))})
        cut = three_way_split(
            frame, cfg.split.validation, cfg.split.test, cfg.split.seed, stratify=None, missing=missing
        )
        splits = {**splits, **{s: [splits["train"][i] for i in f["i"]] for s, f in cut.items()}}
    if cfg.max_train_sentences:
        splits["train"] = splits["train"][: cfg.max_train_sentences]
    return splits


def check_types(splits: dict[str, list[Sentence]]) -> list[str]:
    """The entity types of training; one held out that training never shows is refused (its F1 could only be 0)."""

    def types(sentences: list[Sentence]) -> set[str]:
        return {t[2:] for s in sentences for t in s.tags if t != "O"}

    known = types(splits["train"])
    for split in ("validation", "test"):
        if unseen := sorted(types(splits[split]) - known):
            first = next(s for s in splits[split] if {t[2:] for t in s.tags if t != "O"} & set(unseen))
            raise PipelineInputError(f"{first.source}: {split} has entity type(s) {unseen} that training never shows")
    if not known:
        raise PipelineInputError(f"{splits['train'][0].source}: the training split holds no entity at all")
    return sorted(known)


def prepare_entities(cfg: EntityDataConfig, ws: Workspace) -> PreparedEntities:
    """Read, check and split `cfg.source`; save it under `<workspace>/entity_data/<fingerprint>/`."""
    splits, scheme = read_splits(cfg)
    types = check_types(splits)
    columns = {s: {"words": [x.words for x in splits[s]], "tags": [x.tags for x in splits[s]]} for s in SPLITS}
    fingerprint = hash_json(columns, types)
    result = PreparedEntities(
        uri=ws.uri("entity_data", fingerprint),
        fingerprint=fingerprint,
        sizes={s: len(splits[s]) for s in SPLITS},
        dropped={},
        source=cfg.source,
        types=types,
        scheme=scheme,
        corpus_size=len(splits["train"]),
    )
    if not exists(result.splits_uri + "/dataset_dict.json"):
        _save(result, columns)
    reporting.logger().info(
        "prepared %s (%s -> IOB2): %s sentences, types %s -> %s", cfg.source, scheme, result.sizes, types, result.uri
    )
    return result


def _save(result: PreparedEntities, columns: dict[str, dict[str, list]]) -> None:
    import datasets

    dd = datasets.DatasetDict(
        {s: datasets.Dataset.from_dict({"text": [" ".join(w) for w in c["words"]], **c}) for s, c in columns.items()}
    )
    datasets.Dataset.from_dict({"text": dd["train"]["text"]}).save_to_disk(result.corpus_uri)
    dd.save_to_disk(result.splits_uri)  # written last: its presence marks the folder complete
