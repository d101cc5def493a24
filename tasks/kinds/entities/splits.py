"""A prepared split read back as the reader's sentences: what the finetune, evaluate, optimize and gate stages take.

Apart from the prepare stage so that those stages stand on this helper, not on a sibling stage.
"""

from __future__ import annotations

from tasks.data.loaders import load_splits
from tasks.kinds.entities.sentence import Sentence
from tasks.results.entities import PreparedEntities


def sentences(data: PreparedEntities, split: str) -> list[Sentence]:
    """A prepared split as the reader's sentences (what the trainer, baselines and metrics take)."""
    rows = load_splits(data)[split]
    return [
        Sentence(words=w, tags=t, source=f"{data.source} ({split} #{i})")
        for i, (w, t) in enumerate(zip(rows["words"], rows["tags"], strict=True))
    ]
