"""Read entity data (CoNLL columns, JSONL with character spans, or a train/dev/test folder) into IOB2 sentences.

Every bad input is one line naming the file, the line and the value, raised while reading: before any compute.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from tasks.kinds.entities.schemes import SCHEMES, TagError, detect_scheme, to_iob2
from tasks.kinds.entities.sentence import Sentence
from tasks.kinds.entities.spans import spans_to_words

SPLITS = {"train": ("train",), "dev": ("dev", "valid", "validation"), "test": ("test",)}


class EntityDataError(ValueError):
    """Bad entity data: the message is one line with the file, the line and the value."""


class ReaderConfig(BaseModel):
    """How to read entity files. The defaults read WNUT-17 and CoNLL-2003 as they ship."""

    scheme: Literal["auto", "IOB2", "BIO", "IOB1", "BIOES", "BMES"] = "auto"  # 'auto' reads it from the prefixes
    repair_orphan_inside: bool = True  # an I-X that continues nothing becomes B-X; False refuses the file
    types: list[str] | None = None  # declared entity types; a tag of another type is refused
    skip_empty_sentences: bool = False  # two separator lines in a row: refused unless set (DOCSTART aside)


@dataclass
class EntityData:
    """Sentences of one file, plus the tag scheme the file was written in (recorded, then converted to IOB2)."""

    sentences: list[Sentence]
    source_scheme: str
    path: str

    @property
    def types(self) -> list[str]:
        return sorted({t[2:] for s in self.sentences for t in s.tags if t != "O"})


def _conll_blocks(path: Path, cfg: ReaderConfig) -> list[tuple[list[str], list[str], list[int]]]:
    """Raw (words, tags, line numbers) per sentence. Separators: an empty line or a line of whitespace only."""
    blocks, words, tags, lines = [], [], [], []
    after_docstart, last_sep, pending = True, 0, ""
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            if words:
                blocks.append((words, tags, lines))
                words, tags, lines = [], [], []
            elif not after_docstart and not cfg.skip_empty_sentences:  # refused only if a sentence follows it
                pending = f"{path}:{n}: empty sentence (separator line {n} follows separator line {last_sep})"
            last_sep = n
            continue
        if raw.startswith("-DOCSTART-"):
            after_docstart, pending = True, ""
            continue
        if pending:
            raise EntityDataError(pending)
        parts = raw.split("\t") if "\t" in raw else raw.split()
        parts = [p.strip() for p in parts]
        if len(parts) < 2 or not parts[0] or not parts[-1]:
            raise EntityDataError(f"{path}:{n}: expected 'token<TAB or space>tag', got {raw!r}")
        words.append(parts[0])
        tags.append(parts[-1])
        lines.append(n)
        after_docstart = False
    if words:
        blocks.append((words, tags, lines))
    return blocks


def _scheme(cfg: ReaderConfig, all_tags: list[str]) -> str:
    chosen = {"BIO": "IOB2"}.get(cfg.scheme, cfg.scheme)
    return detect_scheme(all_tags) if chosen == "auto" else chosen


def read_conll(path: str | Path, cfg: ReaderConfig | None = None) -> EntityData:
    """A CoNLL file: one `token<TAB or spaces>...<tag>` a line (token first, tag last), `-DOCSTART-` skipped."""
    cfg, path = cfg or ReaderConfig(), Path(path)
    blocks = _conll_blocks(path, cfg)
    if not blocks:
        raise EntityDataError(f"{path}:1: no sentences in the file")
    scheme = _scheme(cfg, [t for _, tags, _ in blocks for t in tags])
    types = set(cfg.types) if cfg.types is not None else None
    sentences = []
    for words, tags, lines in blocks:
        try:
            iob2 = to_iob2(tags, scheme, cfg.repair_orphan_inside, lambda i, ln=lines: f"{path}:{ln[i]}", types)
        except TagError as exc:
            raise EntityDataError(str(exc)) from None
        sentences.append(Sentence(words, iob2, f"{path}:{lines[0]}"))
    return EntityData(sentences, scheme, str(path))


def read_jsonl(path: str | Path, cfg: ReaderConfig | None = None) -> EntityData:
    """JSONL: one `{"text": ..., "spans": [{"start", "end", "label"}]}` a line; offsets are Python str indices."""
    cfg, path = cfg or ReaderConfig(), Path(path)
    types = set(cfg.types) if cfg.types is not None else None
    sentences = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EntityDataError(f"{path}:{n}: not JSON ({exc.msg}): {raw[:80]!r}") from None
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise EntityDataError(f"{path}:{n}: empty sentence: 'text' is {text!r}")
        try:
            words, offsets, tags = spans_to_words(text, row.get("spans", []), types)
        except ValueError as exc:
            raise EntityDataError(f"{path}:{n}: {exc}") from None
        sentences.append(Sentence(words, tags, f"{path}:{n}", text, offsets))
    if not sentences:
        raise EntityDataError(f"{path}:1: no sentences in the file")
    return EntityData(sentences, "spans", str(path))


def read_entities(path: str | Path, cfg: ReaderConfig | None = None) -> EntityData:
    """One file, by its suffix: `.jsonl` -> spans, anything else -> CoNLL columns."""
    path = Path(path)
    if not path.is_file():
        raise EntityDataError(f"{path}:0: no such file")
    return read_jsonl(path, cfg) if path.suffix == ".jsonl" else read_conll(path, cfg)


def read_folder(folder: str | Path, cfg: ReaderConfig | None = None) -> dict[str, EntityData]:
    """A folder whose files are named train/dev/test (dev may be valid/validation), any suffix."""
    folder = Path(folder)
    found: dict[str, EntityData] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        split = next((s for s, names in SPLITS.items() if path.stem in names), None)
        if split is not None:
            if split in found:
                raise EntityDataError(f"{path}:0: a second {split} file beside {found[split].path}")
            found[split] = read_entities(path, cfg)
    if "train" not in found:
        raise EntityDataError(f"{folder}:0: no train file (expected train.*, dev.*, test.*)")
    return found


__all__ = ["SCHEMES", "EntityData", "EntityDataError", "ReaderConfig", "Sentence", "read_entities", "read_folder"]
