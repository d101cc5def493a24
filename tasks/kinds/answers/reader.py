"""Read extractive-QA data (SQuAD JSON v1.1/v2.0, JSONL) and refuse bad rows before any compute.

Every error is one line naming the file, the row (question id or JSONL line) and the offending value, because a
user fixing a 10k-question file needs to find the row, not read a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Offsets = Literal["refuse", "repair"]
REPAIR_WINDOW = 16  # chars: the shared sets' misplaced answer_starts are 1-3 chars off; further is a different answer


class QADataError(ValueError):
    """A QA file that cannot be used as it is."""


@dataclass(frozen=True)
class Answer:
    """A gold answer; start -1 marks a text-only gold (scored by text, never trained on)."""

    text: str
    start: int


@dataclass(frozen=True)
class QAExample:
    """One question on one context; `answers` is empty when the question has no answer (v2 `is_impossible`)."""

    id: str
    question: str
    context: str
    answers: tuple[Answer, ...] = field(default_factory=tuple)
    doc_id: str = ""

    @property
    def is_impossible(self) -> bool:
        return not self.answers


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _check(where: str, qid: str, question, context, impossible: bool, n_answers: int) -> None:
    if not isinstance(context, str) or not context.strip():
        raise QADataError(f"{where}: question {qid!r}: context missing or empty")
    if not isinstance(question, str) or not question.strip():
        raise QADataError(f"{where}: question {qid!r}: empty question")
    if not n_answers and not impossible:
        raise QADataError(f"{where}: question {qid!r}: no answers and not marked is_impossible")


def _locate(where: str, qid: str, context: str, ans: Answer, offsets: Offsets, notes: list[str] | None) -> Answer:
    """Keep an answer that sits at its answer_start; under "repair", move it to the nearest copy within a few chars,
    or keep it as a text-only gold (start -1) when the text is nowhere near (CMRC dev's extra human answers)."""
    found = context[ans.start : ans.start + len(ans.text)] if ans.start >= 0 else ""
    if found == ans.text:
        return ans
    if offsets == "refuse":
        raise QADataError(
            f"{where}: question {qid!r}: answer {_short(ans.text)} is not at answer_start {ans.start}; "
            f"the context there reads {_short(found)}"
        )
    lo = max(0, ans.start - REPAIR_WINDOW)
    hits = [lo + i for i in _all(context[lo : ans.start + len(ans.text) + REPAIR_WINDOW], ans.text)]
    start = min(hits, key=lambda h: abs(h - ans.start)) if hits else -1
    if notes is not None:
        notes.append(f"{where}: question {qid!r}: answer_start {ans.start} -> {start}")
    return Answer(ans.text, start)


def _all(haystack: str, needle: str) -> list[int]:
    out, i = [], haystack.find(needle)
    while i >= 0 and needle:
        out.append(i)
        i = haystack.find(needle, i + 1)
    return out


def _answers(where: str, qid: str, raw) -> list[Answer]:
    if isinstance(raw, dict):  # JSONL / HF datasets layout: {"text": [...], "answer_start": [...]}
        texts, starts = raw.get("text", []), raw.get("answer_start", [])
        if isinstance(texts, str):
            texts, starts = [texts], [starts]
        raw = [{"text": t, "answer_start": s} for t, s in zip(texts, starts, strict=False)]
    out = []
    for item in raw or []:
        text, start = item.get("text"), item.get("answer_start")
        if not isinstance(text, str) or not isinstance(start, int) or isinstance(start, bool):
            raise QADataError(
                f"{where}: question {qid!r}: answer needs text (str) and answer_start (int), got {item!r}"
            )
        out.append(Answer(text, start))
    return out


def _example(where: str, qa: dict, context, doc_id: str, offsets: Offsets, notes: list[str] | None) -> QAExample:
    qid = str(qa.get("id", "?"))
    impossible = bool(qa.get("is_impossible", False))
    answers = [] if impossible else _answers(where, qid, qa.get("answers"))
    _check(where, qid, qa.get("question"), context, impossible, len(answers))
    answers = [_locate(where, qid, context, a, offsets, notes) for a in answers]
    return QAExample(qid, qa["question"], context, tuple(answers), doc_id)


def read_squad(path: str | Path, offsets: Offsets = "refuse", notes: list[str] | None = None) -> list[QAExample]:
    """SQuAD JSON (`data` → `paragraphs` → `qas`), v1.1 or v2.0; CMRC 2018 and COVID-QA use this layout.

    `offsets="repair"` fixes answer_starts a few chars off (both shared sets have them) and appends one line per
    repair to `notes`; the default refuses them, as the issue asks."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise QADataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise QADataError(f"{path}: not SQuAD JSON: no top-level 'data' list")
    out = []
    for a, article in enumerate(doc["data"]):
        for p, para in enumerate(article.get("paragraphs", [])):
            doc_id = str(para.get("document_id", article.get("id", article.get("title", a))))
            where = f"{path} (data[{a}].paragraphs[{p}])"
            for qa in para.get("qas", []):
                out.append(_example(where, qa, para.get("context"), doc_id, offsets, notes))
    if not out:
        raise QADataError(f"{path}: no questions found")
    return out


def read_jsonl(path: str | Path, offsets: Offsets = "refuse", notes: list[str] | None = None) -> list[QAExample]:
    """JSONL, one question a line: `context`, `question`, `answers` {`text`, `answer_start`}, optional `id`."""
    path = Path(path)
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise QADataError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise QADataError(f"{where}: expected a JSON object, got {_short(line)}")
        row.setdefault("id", f"line{n}")
        answers = row.get("answers")
        if isinstance(answers, dict) and not answers.get("text") and "is_impossible" not in row:
            row["is_impossible"] = True  # the HF squad_v2 layout marks "no answer" by empty lists
        doc_id = str(row.get("doc_id", row.get("title", "")))
        out.append(_example(where, row, row.get("context"), doc_id, offsets, notes))
    if not out:
        raise QADataError(f"{path}: no questions found")
    return out


def read_qa(path: str | Path, offsets: Offsets = "refuse", notes: list[str] | None = None) -> list[QAExample]:
    """Read a QA file by its suffix: .jsonl → JSONL, anything else → SQuAD JSON."""
    path = Path(path)
    if not path.is_file():
        raise QADataError(f"{path}: no such file")
    reader = read_jsonl if path.suffix == ".jsonl" else read_squad
    return reader(path, offsets, notes)
