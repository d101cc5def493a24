"""A span reader for serving and scoring: {question, context} pairs in, the answer's text, character offsets and
score (or "no answer") out, from a fine-tuned question-answering model run by PyTorch or ONNX Runtime.

Long contexts are read in overlapping windows (`stride` tokens shared); the best start/end pair over all windows
wins, as transformers' example `postprocess_qa_predictions` decodes (it is no importable function, hence written
here). It mirrors `tasks/kinds/answers/decode.py` step for step, because `models/` may not import `tasks/` and the
registered pyfunc ships `models/` alone; `tests/test_answers_kind.py` checks both give the same spans.
Only numpy and pydantic at import: torch, transformers and onnxruntime load when a reader does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

META = "answers_meta.json"  # beside the weights: the windows and decoding the model was trained and judged with
Logits = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


class ReaderSettings(BaseModel):
    """How a reader cuts windows and decodes spans; saved as `META` with the model."""

    max_length: int = Field(384, ge=32, description="tokens per window, question included")
    stride: int = Field(128, ge=0, description="tokens consecutive windows share")
    max_question_tokens: int = Field(64, ge=4)
    n_best: int = Field(20, ge=1, description="start and end candidates looked at per window")
    max_answer_tokens: int = Field(30, ge=1, description="longest span considered, in tokens")
    null_threshold: float | None = Field(None, description="no answer when null score - best span score > this")


@dataclass(frozen=True)
class Span:
    """One answer; text '' (start = end = -1) means "no answer"."""

    text: str
    start: int
    end: int
    score: float  # softmax probability of the answer among the n-best candidates and the null answer
    null_margin: float  # null score minus best span score: what the no-answer threshold compares

    def response(self) -> dict:
        """The served shape: text, character offsets, score and an explicit no-answer flag."""
        if not self.text:
            return {"answer": None, "start": None, "end": None, "score": self.score, "no_answer": True}
        return {"answer": self.text, "start": self.start, "end": self.end, "score": self.score, "no_answer": False}


@dataclass(frozen=True)
class _Window:
    example: int
    ids: list[int]
    type_ids: list[int] | None
    offsets: list[tuple[int, int] | None]  # None outside the context


def torch_logits(model) -> Logits:
    def run(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
        return out.start_logits.float().numpy(), out.end_logits.float().numpy()

    return run


def ort_logits(session) -> Logits:
    wanted = {i.name for i in session.get_inputs()}

    def run(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, end = session.run(["start_logits", "end_logits"], {k: v for k, v in batch.items() if k in wanted})
        return start, end

    return run


class SpanReader:
    """Question + context -> `Span`, in batches of windows of like length."""

    def __init__(self, tokenizer, logits: Logits, settings: ReaderSettings, batch_size: int = 16):
        self.tokenizer, self.logits, self.settings, self.batch_size = tokenizer, logits, settings, batch_size

    @classmethod
    def load(cls, model_dir: str | Path, onnx_path: str | Path | None = None, threads: int = 2) -> SpanReader:
        """`model_dir` (weights, tokenizer, META) run by PyTorch, or by ONNX Runtime from `onnx_path`."""
        from transformers import AutoTokenizer

        meta = Path(model_dir, META)
        settings = ReaderSettings.model_validate_json(meta.read_text()) if meta.exists() else ReaderSettings()
        if onnx_path is None:
            import torch
            from transformers import AutoModelForQuestionAnswering

            torch.set_num_threads(threads)
            run = torch_logits(AutoModelForQuestionAnswering.from_pretrained(str(model_dir)).eval())
        else:
            from models.ort_sessions import ort_session

            run = ort_logits(ort_session(onnx_path, threads))
        return cls(AutoTokenizer.from_pretrained(str(model_dir)), run, settings)

    def save_settings(self, model_dir: str | Path) -> None:
        Path(model_dir, META).write_text(json.dumps(self.settings.model_dump(), indent=1))

    def _question(self, question: str) -> str:
        offsets = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        limit = self.settings.max_question_tokens
        return question if len(offsets) <= limit else question[: offsets[limit - 1][1]]

    def windows(self, questions: Sequence[str], contexts: Sequence[str]) -> list[_Window]:
        """Every window of every pair; the question first where the tokenizer pads right (BERT-like)."""
        s, right = self.settings, self.tokenizer.padding_side == "right"
        asked = [self._question(q.strip()) for q in questions]
        first, second = (asked, list(contexts)) if right else (list(contexts), asked)
        enc = self.tokenizer(
            first, second, truncation="only_second" if right else "only_first", max_length=s.max_length,
            stride=s.stride, return_overflowing_tokens=True, return_offsets_mapping=True,
        )  # fmt: skip
        context_id, out = (1 if right else 0), []
        for i, example in enumerate(enc["overflow_to_sample_mapping"]):
            seq = enc.sequence_ids(i)
            offsets = [tuple(o) if seq[k] == context_id else None for k, o in enumerate(enc["offset_mapping"][i])]
            type_ids = enc["token_type_ids"][i] if "token_type_ids" in enc else None
            out.append(_Window(example, enc["input_ids"][i], type_ids, offsets))
        return out

    def window_logits(self, wins: list[_Window]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Start and end logits per window, in batches of like lengths (padding costs little then)."""
        order = sorted(range(len(wins)), key=lambda k: len(wins[k].ids))
        out: list = [None] * len(wins)
        pad = self.tokenizer.pad_token_id or 0
        for at in range(0, len(order), self.batch_size):
            batch = order[at : at + self.batch_size]
            width = max(len(wins[k].ids) for k in batch)
            arrays = {"input_ids": np.full((len(batch), width), pad, dtype=np.int64)}
            arrays["attention_mask"] = np.zeros((len(batch), width), dtype=np.int64)
            if wins[batch[0]].type_ids is not None:
                arrays["token_type_ids"] = np.zeros((len(batch), width), dtype=np.int64)
            for row, k in enumerate(batch):
                n = len(wins[k].ids)
                arrays["input_ids"][row, :n], arrays["attention_mask"][row, :n] = wins[k].ids, 1
                if "token_type_ids" in arrays:
                    arrays["token_type_ids"][row, :n] = wins[k].type_ids
            starts, ends = self.logits(arrays)
            for row, k in enumerate(batch):
                n = len(wins[k].ids)
                out[k] = (np.asarray(starts[row][:n]), np.asarray(ends[row][:n]))
        return out

    def spans(self, questions: Sequence[str], contexts: Sequence[str]) -> list[Span]:
        """One `Span` per pair."""
        wins = self.windows(questions, contexts)
        by_example: list[list] = [[] for _ in questions]
        for win, (start, end) in zip(wins, self.window_logits(wins), strict=True):
            by_example[win.example].append((start, end, win.offsets))
        return [decode(c, w, self.settings) for c, w in zip(contexts, by_example, strict=True)]


def _candidates(start: np.ndarray, end: np.ndarray, offsets: list, s: ReaderSettings):
    for i in np.argsort(start)[::-1][: s.n_best]:
        for j in np.argsort(end)[::-1][: s.n_best]:
            if offsets[i] is None or offsets[j] is None or j < i or j - i + 1 > s.max_answer_tokens:
                continue
            yield float(start[i] + end[j]), offsets[i][0], offsets[j][1]


def decode(context: str, windows: list[tuple[np.ndarray, np.ndarray, list]], s: ReaderSettings) -> Span:
    """The best span over one question's windows; [CLS] of the least confident window is its no-answer score."""
    spans, null = [], np.inf
    for start, end, offsets in windows:
        null = min(null, float(start[0] + end[0]))
        spans.extend(_candidates(start, end, offsets, s))
    if not spans:
        return Span("", -1, -1, 1.0, np.inf)
    best = max(spans, key=lambda c: c[0])
    scores = np.array([c[0] for c in spans] + [null])
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    margin = null - best[0]
    if s.null_threshold is not None and margin > s.null_threshold:
        return Span("", -1, -1, float(probs[-1]), margin)
    return Span(context[best[1] : best[2]], best[1], best[2], float(probs[int(np.argmax(scores[:-1]))]), margin)


def _pairs(model_input) -> list[tuple[str, str]]:
    """Rows with `question` and `context`: a DataFrame, a list of dicts, or one dict; a bad row is named."""
    import pandas as pd

    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input if isinstance(model_input.get("question"), list) else [model_input])
    rows = model_input.to_dict("records") if isinstance(model_input, pd.DataFrame) else list(model_input)
    out = []
    for i, row in enumerate(rows):
        question, context = (row.get("question"), row.get("context")) if isinstance(row, dict) else (None, None)
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"row {i}: needs a non-empty 'question' string, got {question!r}")
        if not isinstance(context, str) or not context.strip():
            raise ValueError(f"row {i}: needs a non-empty 'context' string, got {context!r}")
        out.append((question, context))
    return out


class SpanReaderPyfunc:
    """MLflow pyfunc body: rows of {question, context} in, one row each out: answer, start, end, score, no_answer.
    Artifacts: `model` (the saved folder) and, when it passed parity, `onnx`. Subclass `mlflow.pyfunc.PythonModel`
    where it is registered (`models/answers_pyfunc.py`); kept plain here so this module needs no mlflow."""

    def load_context(self, context) -> None:
        self.reader = SpanReader.load(context.artifacts["model"], context.artifacts.get("onnx"))

    def predict(self, context, model_input, params=None):
        import pandas as pd

        pairs = _pairs(model_input)
        spans = self.reader.spans([q for q, _ in pairs], [c for _, c in pairs])
        return pd.DataFrame([s.response() for s in spans], columns=["answer", "start", "end", "score", "no_answer"])
