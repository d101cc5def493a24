"""A prepared split read back as the reader's questions, and the seeded sample the stages score.

Apart from the prepare stage so that the finetune, evaluate, optimize and gate stages stand on this helper, not on a
sibling stage; the prepare stage re-exports these for its callers.
"""

from __future__ import annotations

import random

from tasks.kinds.answers.reader import Answer, QAExample
from tasks.results.answers import PreparedQuestions


def rows_to_questions(rows) -> list[QAExample]:
    """Arrow rows (a split of `PreparedQuestions`) as the reader's questions."""
    return [
        QAExample(
            id=i, question=q, context=c, answers=tuple(Answer(t, s) for t, s in zip(texts, starts, strict=True)),
            doc_id=d,
        )
        for i, q, c, texts, starts, d in zip(
            rows["id"], rows["question"], rows["context"], rows["answer_texts"], rows["answer_starts"], rows["doc_id"],
            strict=True,
        )
    ]  # fmt: skip


def sample(examples: list[QAExample], limit: int | None, seed: int) -> list[QAExample]:
    """A seeded sample of `limit` questions, in file order (all of them when `limit` is None or not smaller)."""
    if limit is None or len(examples) <= limit:
        return examples
    keep = set(random.Random(seed).sample(range(len(examples)), limit))
    return [ex for i, ex in enumerate(examples) if i in keep]


def questions(data: PreparedQuestions, split: str, limit: int | None = None, seed: int = 0) -> list[QAExample]:
    """A prepared split as the reader's questions; `limit`: a seeded sample of that many, in file order."""
    from tasks.data.loaders import load_splits

    return sample(rows_to_questions(load_splits(data)[split]), limit, seed)
