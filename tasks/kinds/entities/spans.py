"""Character spans <-> words with IOB2 tags, for JSONL input and for predictions on raw text."""

from __future__ import annotations

import unicodedata

from models.token_classifier import tags_to_spans, words_of


def _check_span(text: str, span: object, types: set[str] | None) -> tuple[int, int, str]:
    if not isinstance(span, dict) or not {"start", "end", "label"} <= span.keys():
        raise ValueError(f"span {span!r} needs 'start', 'end' and 'label'")
    start, end, label = span["start"], span["end"], span["label"]
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
        raise ValueError(f"span {start}..{end} ({label}) lies outside its text of {len(text)} characters")
    for at in (start, end):
        if at < len(text) and unicodedata.combining(text[at]):
            raise ValueError(
                f"span {start}..{end} ({label}) cuts a character at offset {at}: {text[at - 1 : at + 1]!r}"
            )
    if not text[start:end].strip():
        raise ValueError(f"span {start}..{end} ({label}) covers only whitespace")
    if not isinstance(label, str) or not label or (types is not None and label not in types):
        raise ValueError(f"span {start}..{end} has label {label!r}, not one of the declared {sorted(types or [])}")
    return start, end, label


def spans_to_words(
    text: str, spans: list, types: set[str] | None = None
) -> tuple[list[str], list[tuple[int, int]], list[str]]:
    """Words, their offsets and IOB2 tags for a text with entity character spans. Overlapping spans are refused."""
    checked = sorted(_check_span(text, s, types) for s in spans)
    for (s1, e1, l1), (s2, e2, l2) in zip(checked, checked[1:], strict=False):
        if s2 < e1:
            raise ValueError(f"span {s2}..{e2} ({l2}) overlaps span {s1}..{e1} ({l1})")
    offsets = words_of(text, {c for s, e, _ in checked for c in (s, e)})
    tags = ["O"] * len(offsets)
    for start, end, label in checked:
        inside = [i for i, (ws, we) in enumerate(offsets) if ws >= start and we <= end]
        for k, i in enumerate(inside):
            tags[i] = f"{'B' if k == 0 else 'I'}-{label}"
    return [text[s:e] for s, e in offsets], offsets, tags


__all__ = ["spans_to_words", "tags_to_spans", "words_of"]
