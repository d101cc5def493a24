"""Start/end logits over windows → one answer per question: n-best span decoding with a maximum answer length,
and a no-answer threshold tuned on validation for SQuAD v2-style data.

Hand-written because transformers ships this only inside its example scripts (utils_qa.postprocess_qa_predictions),
not as an importable function.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from tasks.kinds.answers.metrics import Scoring, score_one
from tasks.kinds.answers.reader import QAExample


class DecodeConfig(BaseModel):
    n_best: int = Field(20, ge=1, description="start and end candidates looked at per window")
    max_answer_tokens: int = Field(30, ge=1, description="longest span considered, in tokens")
    null_threshold: float | None = Field(None, description="answer '' when null score - best span score > this")


@dataclass(frozen=True)
class Span:
    """One decoded answer; text '' (start = end = -1) means "no answer"."""

    text: str
    start: int
    end: int
    score: float  # softmax probability of the chosen answer among the n-best candidates and the null answer
    null_margin: float  # null score minus best span score: what the no-answer threshold compares against


def _candidates(start: np.ndarray, end: np.ndarray, offsets: list, cfg: DecodeConfig):
    for s in np.argsort(start)[::-1][: cfg.n_best]:
        for e in np.argsort(end)[::-1][: cfg.n_best]:
            if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > cfg.max_answer_tokens:
                continue
            yield float(start[s] + end[e]), offsets[s][0], offsets[e][1]


def decode_example(context: str, windows: Sequence[tuple[np.ndarray, np.ndarray, list]], cfg: DecodeConfig) -> Span:
    """Best span over all windows of one question (windows: start logits, end logits, offset map)."""
    spans, null = [], np.inf
    for start, end, offsets in windows:
        null = min(null, float(start[0] + end[0]))  # [CLS]: the least confident window's no-answer score counts
        spans.extend(_candidates(start, end, offsets, cfg))
    if not spans:
        return Span("", -1, -1, 1.0, np.inf)
    best = max(spans, key=lambda c: c[0])
    scores = np.array([c[0] for c in spans] + [null])
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    margin = null - best[0]
    if cfg.null_threshold is not None and margin > cfg.null_threshold:
        return Span("", -1, -1, float(probs[-1]), margin)
    return Span(context[best[1] : best[2]], best[1], best[2], float(probs[int(np.argmax(scores[:-1]))]), margin)


def decode(
    examples: Sequence[QAExample], features: Mapping[str, list], start_logits, end_logits, cfg: DecodeConfig
) -> dict[str, Span]:
    """One Span per example id from the logits of `eval_features(...)` windows (same order)."""
    by_example = defaultdict(list)
    for i, ex_i in enumerate(features["example_index"]):
        by_example[ex_i].append((np.asarray(start_logits[i]), np.asarray(end_logits[i]), features["offset_mapping"][i]))
    return {ex.id: decode_example(ex.context, by_example[k], cfg) for k, ex in enumerate(examples)}


def tune_null_threshold(
    examples: Sequence[QAExample], spans: Mapping[str, Span], scoring: Scoring = "squad"
) -> tuple[float, float]:
    """(threshold, F1 %) maximising validation F1 when answers with null_margin > threshold become "no answer".

    The official SQuAD v2 find_best_thresh idea: sweep the margins actually seen, plus "never abstain"."""
    rows = []
    for ex in examples:
        span = spans[ex.id]
        golds = [a.text for a in ex.answers]
        rows.append((span.null_margin, score_one(span.text, golds, scoring)[1], score_one("", golds, scoring)[1]))
    rows.sort(key=lambda r: r[0])
    total = sum(r[1] for r in rows)  # threshold above every margin: answer everything
    best_f1, best_t = total, (rows[-1][0] + 1.0 if rows else 0.0)
    for i in range(len(rows) - 1, -1, -1):  # lower the threshold one margin at a time: row i abstains
        total += rows[i][2] - rows[i][1]
        if total > best_f1:
            best_f1, best_t = total, rows[i][0] - 1e-6
    return best_t, 100 * best_f1 / max(len(rows), 1)
