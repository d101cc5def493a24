"""The sliding-window lexical baseline: weak but real, so a fine-tuned reader has to beat something honest.

Pick the context sentence whose TF-IDF vector is closest to the question's, then slide a window of `width` tokens
over that sentence and answer with the window holding the most question-word weight. `width` is the one knob and is
chosen on validation (`fit_width`). Written by hand because no library ships this classical baseline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field
from sklearn.feature_extraction.text import TfidfVectorizer

from tasks.kinds.answers.metrics import Scoring, score
from tasks.kinds.answers.reader import QAExample

_SENTENCE_END = re.compile(r"(?<=[.!?。！？；])\s*")
# Chinese characters are tokens one by one (as CMRC scores them); other scripts split into words.
_TOKEN = re.compile(r"[\u4e00-\u9fff]|[^\W_]+", re.UNICODE)


class LexicalConfig(BaseModel):
    width: int = Field(8, ge=1, description="answer window in tokens, tuned on validation")
    widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)


def sentences(context: str) -> list[tuple[int, int]]:
    """Character (start, end) of each sentence, split after . ! ? and their full-width forms."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(context):
        if m.end() > start and m.start() > start:
            spans.append((start, m.start()))
            start = m.end()
    if start < len(context):
        spans.append((start, len(context)))
    return [(s, e) for s, e in spans if context[s:e].strip()] or [(0, len(context))]


def _tokens(text: str, offset: int = 0) -> list[tuple[str, int, int]]:
    return [(m.group().lower(), offset + m.start(), offset + m.end()) for m in _TOKEN.finditer(text)]


def _best_sentence(example: QAExample, spans: list[tuple[int, int]]) -> tuple[int, int]:
    texts = [example.context[s:e] for s, e in spans]
    vec = TfidfVectorizer(tokenizer=lambda t: [w for w, _, _ in _tokens(t)], lowercase=False, token_pattern=None)
    matrix = vec.fit_transform([*texts, example.question])
    sims = (matrix[:-1] @ matrix[-1].T).toarray().ravel()
    return spans[int(np.argmax(sims))] if sims.size else spans[0]


def answer(example: QAExample, width: int) -> tuple[str, int]:
    """(answer text, character start) of the best window of `width` tokens in the best sentence."""
    start, end = _best_sentence(example, sentences(example.context))
    toks = _tokens(example.context[start:end], start)
    if not toks:
        return example.context[start:end].strip(), start
    question = {w for w, _, _ in _tokens(example.question)}
    hits = np.array([1.0 if w in question else 0.0 for w, _, _ in toks])
    width = min(width, len(toks))
    sums = np.convolve(hits, np.ones(width), mode="valid")  # overlap of every window of `width` tokens
    i = int(np.argmax(sums))
    s, e = toks[i][1], toks[i + width - 1][2]
    return example.context[s:e], s


def predict(examples: Sequence[QAExample], width: int) -> dict[str, str]:
    return {ex.id: answer(ex, width)[0] for ex in examples}


def fit_width(examples: Sequence[QAExample], cfg: LexicalConfig, scoring: Scoring) -> tuple[int, dict[int, float]]:
    """The window width with the best validation F1, and every width's F1 (for the report)."""
    golds = {ex.id: [a.text for a in ex.answers] for ex in examples}
    f1s = {w: score(predict(examples, w), golds, scoring)["f1"] for w in cfg.widths}
    return max(f1s, key=f1s.get), f1s
