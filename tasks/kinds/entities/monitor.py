"""Per-text descriptors the drift monitor compares between the champion's data and served traffic.

One flat row per text with fixed columns (one count column per entity type the model knows), so reference and
current frames line up for Evidently's column drift tests.
"""

from __future__ import annotations

from collections import Counter

from tasks.kinds.entities.sentence import Sentence
from tasks.kinds.entities.spans import tags_to_spans


def vocabulary(sentences: list[Sentence]) -> set[str]:
    """Lower-cased training words: what 'unknown word' is measured against."""
    return {w.lower() for s in sentences for w in s.words}


def descriptors(
    words: list[str], tags: list[str], scores: list[float], types: list[str], vocab: set[str]
) -> dict[str, float]:
    """entities, entities_<type> for each type, unknown_word_share, mean_confidence, words: for one text."""
    if not (len(words) == len(tags) == len(scores)):
        raise ValueError(f"{len(words)} words, {len(tags)} tags and {len(scores)} scores: one of each per word")
    found = Counter(kind for _, _, kind in tags_to_spans(tags))
    row: dict[str, float] = {"words": len(words), "entities": sum(found.values())}
    row |= {f"entities_{t}": found.get(t, 0) for t in types}
    row["unknown_word_share"] = sum(w.lower() not in vocab for w in words) / len(words) if words else 0.0
    row["mean_confidence"] = sum(scores) / len(scores) if scores else 1.0
    return row


def descriptor_rows(tagged: list[tuple[list[str], list[str], list[float]]], types: list[str], vocab: set[str]):
    """Rows for many (words, tags, scores) triples, e.g. `zip(words, *zip(*Tagger.tag(words)))`."""
    return [descriptors(w, t, s, types, vocab) for w, t, s in tagged]


def type_shares(rows: list[dict[str, float]], types: list[str]) -> dict[str, float]:
    """Entity-type distribution over a window of rows (shares sum to 1 when any entity was found)."""
    totals = {t: sum(r[f"entities_{t}"] for r in rows) for t in types}
    n = sum(totals.values())
    return {t: (v / n if n else 0.0) for t, v in totals.items()}
