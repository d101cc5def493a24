"""Start/end logits over windows → one answer per question: n-best span decoding with a maximum answer length,
and a no-answer threshold tuned on validation for SQuAD v2-style data.

Hand-written because transformers ships this only inside its example scripts (utils_qa.postprocess_qa_predictions),
not as an importable function.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, Field

from models.span_reader import Span
from models.span_reader import decode as decode_span
from tasks.kinds.answers.metrics import Scoring, score_one
from tasks.kinds.answers.reader import QAExample


class DecodeConfig(BaseModel):
    n_best: int = Field(20, ge=1, description="start and end candidates looked at per window")
    max_answer_tokens: int = Field(30, ge=1, description="longest span considered, in tokens")
    null_threshold: float | None = Field(None, description="answer '' when null score - best span score > this")


# One decoder for training-time evaluation and for the registered pyfunc (which ships `models/` only): the span,
# its n-best search over windows and the no-answer margin live in `models/span_reader.py`; `DecodeConfig` carries
# the same three settings its `ReaderSettings` does.
decode_example = decode_span


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
