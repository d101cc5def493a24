"""`POST /predict` for a question-answerer champion: `{"pairs": [{"question", "context"}, ...]}` in, one answer per
pair out (text, character offsets into its context, score, or "no answer"), from the span reader the version's
pyfunc carries (`models/span_reader.py`).

Contexts are read whole, in the stride windows the model was trained with (cutting one would silently turn its
answer into "no answer"); the request body limit bounds them. Like a classifier's answers, they are committed to the
prediction journal before they are sent: the row's `text` holds the question, `label` the answer ("" for none),
`score` its score, and `probs` a JSON object with the context, the offsets and the no-answer flag, which is what the
drift monitor (`tasks/monitoring/answer_detect.py`) reads back.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

from fastapi import HTTPException
from pydantic import BaseModel, Field, field_validator, model_validator

from serving.classifier_api import PredictRequest
from serving.config import ServeConfig
from serving.journal import PredictionJournal
from serving.metrics import ServiceMetrics
from serving.model_holder import LoadedModel, ModelHolder

PAIRS_SHAPE = '{"pairs": [{"question": ..., "context": ...}]}'
OTHERS = {  # what to send the other kinds instead of pairs
    "classification": 'a classifier: send {"texts": [...]}',
    "entities": 'an entity tagger: send {"texts": [...]}',
    "generation": "a generator: use POST /v1/completions or /v1/chat/completions",
}


class Pair(BaseModel):
    question: str = Field(description="The question; its first max_question_tokens tokens are read.")
    context: str = Field(description="The passage the answer is taken from, read whole in stride windows.")


class PredictBody(BaseModel):
    """The `/predict` body: `texts` for a classifier or a tagger, `pairs` for a question answerer."""

    texts: list[str] | None = Field(None, description=PredictRequest.model_fields["texts"].description)
    pairs: list[Pair] | None = Field(None, description="{question, context} pairs, for a question answerer.")

    @field_validator("texts")
    @classmethod
    def _texts(cls, texts: list[str] | None) -> list[str] | None:
        return None if texts is None else PredictRequest._no_empty_text(texts)  # the classifier's own check

    @field_validator("pairs")
    @classmethod
    def _no_empty_field(cls, pairs: list[Pair] | None) -> list[Pair] | None:
        empty = [f"pairs[{i}].{f}" for i, p in enumerate(pairs or []) for f in ("question", "context")
                 if not getattr(p, f).strip()]  # fmt: skip
        if empty:
            more = f" and {len(empty) - 5} more" if empty[5:] else ""
            raise ValueError(f"{', '.join(empty[:5])}{more}: empty or only spaces; questions and contexts need text")
        return pairs

    @model_validator(mode="after")
    def _one_of(self) -> PredictBody:
        if (self.texts is None) == (self.pairs is None):
            raise ValueError(f'send either {{"texts": [...]}} (a classifier or a tagger) or {PAIRS_SHAPE}')
        return self


class Answer(BaseModel):
    answer: str | None = Field(description="The answer's text, as it stands in the context; null: no answer.")
    start: int | None = Field(description="Character offset of its first character in the context.")
    end: int | None = Field(description="Character offset just past its last character.")
    score: float = Field(description="Probability of this answer among the n-best spans and the null answer.")
    no_answer: bool = Field(description="The context holds no answer (the null score beat the best span).")


class AnswersResponse(BaseModel):
    request_id: str = Field(description="Logged with each prediction, so true answers can be joined on later.")
    model_name: str
    model_version: str
    answers: list[Answer] = Field(description="One per pair, in the order of `pairs`.")


def answer_and_journal(model: LoadedModel, journal: PredictionJournal, pairs: list[Pair]) -> AnswersResponse:
    """One reading of all pairs' windows (batched by length), one journal commit, the answers."""
    request_id, now = uuid.uuid4().hex, datetime.now(UTC).isoformat()
    spans = model.reader.spans([p.question for p in pairs], [p.context for p in pairs])
    answers = [Answer(**s.response()) for s in spans]
    rows = []
    for pair, a in zip(pairs, answers, strict=True):
        logged = json.dumps({"context": pair.context, "start": a.start, "end": a.end, "no_answer": a.no_answer})
        rows.append((now, request_id, pair.question, a.answer or "", a.score, logged, model.name, model.version))
    journal.write(rows)  # committed before the answer is sent
    return AnswersResponse(request_id=request_id, model_name=model.name, model_version=model.version, answers=answers)


def reader_of(model: LoadedModel | None):
    """The span reader a loaded version carries (None: not a question answerer)."""
    return getattr(model, "reader", None)


class AnswersAPI:
    """The question answerer's predict path: the checks of the classifier's, one thread per request."""

    def __init__(self, cfg: ServeConfig, holder: ModelHolder, journal: PredictionJournal, metrics: ServiceMetrics):
        self.cfg, self.holder, self.journal, self.metrics = cfg, holder, journal, metrics

    def refuse_texts(self) -> None:
        """`texts` sent to a question answerer: say what it takes instead."""
        if reader_of(model := self.holder.current) is not None:
            raise HTTPException(400, f"{model.name} v{model.version} is a question answerer: send {PAIRS_SHAPE}")

    async def predict(self, pairs: list[Pair]) -> AnswersResponse:
        cfg = self.cfg
        if not pairs:
            raise HTTPException(400, "pairs is empty: send at least one {question, context} pair")
        if len(pairs) > cfg.max_texts:
            raise HTTPException(413, f"{len(pairs)} pairs in one request; the limit is {cfg.max_texts}")
        if (model := self.holder.current) is None:
            raise HTTPException(503, f"no model loaded: models:/{cfg.model_name}@{cfg.alias} does not exist yet")
        if reader_of(model) is None:
            raise HTTPException(400, f"{model.name} v{model.version} is {OTHERS.get(model.task, model.task)}")
        answer = await asyncio.to_thread(answer_and_journal, model, self.journal, pairs)
        self.metrics.texts.inc(len(pairs))
        return answer
