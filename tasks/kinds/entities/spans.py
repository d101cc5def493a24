"""Character spans <-> words with IOB2 tags, for JSONL input and for predictions on raw text."""

from __future__ import annotations

import re
import unicodedata

# Words: runs of word characters (joined by ' or -), or one other non-space character. WNUT-style tokens such as
# '@user' and '#tag' come out as two words; entity spans cut words wherever they need to (see spans_to_words).
WORD = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")


def words_of(text: str, cuts: set[int] = frozenset()) -> list[tuple[int, int]]:
    """Character spans of the words in `text`, split further at every offset in `cuts`."""
    spans = []
    for m in WORD.finditer(text):
        start = m.start()
        for cut in sorted(c for c in cuts if m.start() < c < m.end()):
            spans.append((start, cut))
            start = cut
        spans.append((start, m.end()))
    return spans


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


def tags_to_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """IOB2 tags -> (first word, last word + 1, type); a stray I-X starts an entity, as seqeval reads it leniently."""
    found: list[tuple[int, int, str]] = []
    for i, tag in enumerate(tags):
        if tag == "O":
            continue
        prefix, kind = tag[0], tag[2:]
        if prefix == "I" and found and found[-1][1] == i and found[-1][2] == kind:
            found[-1] = (found[-1][0], i + 1, kind)
        else:
            found.append((i, i + 1, kind))
    return found
