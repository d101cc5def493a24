"""{question, context} pairs → answer text, character offsets, score, or "no answer": the serving-side reader.

The same path scores evaluation sets, so what is measured is what is served. A `runner` maps a batch of window
arrays to (start_logits, end_logits); PyTorch and ONNX Runtime each provide one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tasks.kinds.answers.decode import DecodeConfig, Span, decode
from tasks.kinds.answers.features import INPUT_KEYS, Runner, WindowConfig, eval_features
from tasks.kinds.answers.reader import QADataError, QAExample


def torch_runner(model, threads: int = 2) -> Runner:
    import torch

    torch.set_num_threads(threads)

    def run(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
        return out.start_logits.numpy(), out.end_logits.numpy()

    return run


def examples_from_pairs(pairs: Sequence[Mapping]) -> list[QAExample]:
    """Validate request rows before any compute: one line naming the row and what is wrong."""
    out = []
    for i, row in enumerate(pairs):
        question, context = row.get("question"), row.get("context")
        if not isinstance(context, str) or not context.strip():
            raise QADataError(f"request row {i}: context missing or empty")
        if not isinstance(question, str) or not question.strip():
            raise QADataError(f"request row {i}: empty question")
        out.append(QAExample(str(row.get("id", i)), question, context))
    return out


def window_logits(runner: Runner, features: Mapping[str, list], batch_size: int = 16):
    """Logits per window, in batches cut to their longest window (padding costs nothing then)."""
    keys = [k for k in INPUT_KEYS if k in features]
    starts, ends = [], []
    for lo in range(0, len(features["input_ids"]), batch_size):
        arrays = {k: np.asarray(features[k][lo : lo + batch_size], dtype=np.int64) for k in keys}
        lengths = arrays["attention_mask"].sum(axis=1)
        s, e = runner({k: v[:, : int(lengths.max())] for k, v in arrays.items()})
        # Each window's own positions only: a batch's padding must not take n-best slots from real tokens, or a
        # question's answer would depend on which questions share its batch.
        starts.extend(row[: int(n)] for row, n in zip(s, lengths, strict=True))
        ends.extend(row[: int(n)] for row, n in zip(e, lengths, strict=True))
    return starts, ends


def read_answers(
    runner: Runner, tokenizer, examples: Sequence[QAExample], windows: WindowConfig, decoding: DecodeConfig,
    batch_size: int = 16,
) -> dict[str, Span]:  # fmt: skip
    features = eval_features(tokenizer, examples, windows)
    starts, ends = window_logits(runner, features, batch_size)
    return decode(examples, features, starts, ends, decoding)


def as_response(span: Span) -> dict:
    """The served shape: text, character offsets, score, and an explicit no-answer flag."""
    if not span.text:
        return {"answer": None, "start": None, "end": None, "score": span.score, "no_answer": True}
    return {"answer": span.text, "start": span.start, "end": span.end, "score": span.score, "no_answer": False}


def predict(runner: Runner, tokenizer, pairs: Sequence[Mapping], windows=None, decoding=None) -> list[dict]:
    examples = examples_from_pairs(pairs)
    spans = read_answers(runner, tokenizer, examples, windows or WindowConfig(), decoding or DecodeConfig())
    return [as_response(spans[ex.id]) for ex in examples]
