"""One sentence of entity data: words, IOB2 tags and where it came from.

What the reader makes, and what the trainer, the baselines, the metrics and the monitor take; apart from the
reader so that those stand on this leaf, not on the reader and its span handling.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Sentence:
    """One sentence: words, their IOB2 tags, and where it came from (file:line of its first word)."""

    words: list[str]
    tags: list[str]
    source: str = ""
    text: str | None = None  # JSONL only: the original text ...
    offsets: list[tuple[int, int]] = field(default_factory=list)  # ... and each word's character span in it
