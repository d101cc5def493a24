"""`POST /predict` for a classifier champion: request/response models and the micro-batched predict path.

Each micro-batch runs in a worker thread: one forward pass, one journal commit, then the answers. A request is
never acknowledged before its predictions are committed to the journal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime

from fastapi import HTTPException
from pydantic import BaseModel, Field, field_validator

from serving.batcher import MicroBatcher
from serving.config import ServeConfig
from serving.entities_api import EntitiesResponse, predict_entities
from serving.journal import PredictionJournal
from serving.metrics import ServiceMetrics
from serving.model_holder import ModelHolder

log = logging.getLogger("zero2one.serving")


class PredictRequest(BaseModel):
    texts: list[str] = Field(description="Texts to classify; none may be empty or only spaces (training has none).")

    @field_validator("texts")
    @classmethod
    def _no_empty_text(cls, texts: list[str]) -> list[str]:
        if empty := [i for i, t in enumerate(texts) if not t.strip()]:
            where = ", ".join(f"texts[{i}]" for i in empty[:5]) + (f" and {len(empty) - 5} more" if empty[5:] else "")
            raise ValueError(f"{where}: empty or only spaces; every text needs at least one word")
        return texts


class Prediction(BaseModel):
    label: str
    score: float
    probabilities: dict[str, float]
    truncated: bool = Field(
        description="The text was longer than the model's window (or the service's max_text_chars): "
        "only its beginning was classified."
    )


class PredictResponse(BaseModel):
    request_id: str = Field(description="Logged with each prediction, so true labels can be joined on later.")
    model_name: str
    model_version: str
    predictions: list[Prediction]


Item = tuple[str, str, bool]  # (request id, text cut to max_text_chars, whether it was cut)


class ClassifierAPI:
    """The classifier's predict path: validation, micro-batching, forward pass and journal commit."""

    def __init__(self, cfg: ServeConfig, holder: ModelHolder, journal: PredictionJournal, metrics: ServiceMetrics):
        self.cfg, self.holder, self.journal, self.metrics = cfg, holder, journal, metrics
        self.batcher = MicroBatcher(self._run_batch, cfg.max_batch_size, cfg.max_wait_ms, on_batch=self._observe)

    def _observe(self, size: int) -> None:
        self.metrics.batch_size.observe(size)

    def predict_and_journal(self, items: list[Item]) -> list[tuple[str, Prediction]]:
        """One micro-batch, in a worker thread: one forward pass, journal commit, answers."""
        model = self.holder.current  # taken once: the whole batch runs on one version, even during a swap
        probs, cut = model.classify([text for _, text, _ in items])
        now = datetime.now(UTC).isoformat()
        results, rows = [], []
        for (request_id, text, cut_chars), p, cut_tokens in zip(items, probs.tolist(), cut.tolist(), strict=True):
            best = max(range(len(p)), key=p.__getitem__)
            label, by_label = model.labels[best], dict(zip(model.labels, p, strict=True))
            answer = Prediction(label=label, score=p[best], probabilities=by_label, truncated=cut_chars or cut_tokens)
            results.append((model.version, answer))
            rows.append((now, request_id, text, label, p[best], json.dumps(by_label), model.name, model.version))
        self.journal.write(rows)  # committed before anyone in the batch is answered
        return results

    async def _run_batch(self, items: list[Item]) -> list[tuple[str, Prediction]]:
        return await asyncio.to_thread(self.predict_and_journal, items)

    def _check(self, texts: list[str]) -> None:
        cfg = self.cfg
        if not texts:
            raise HTTPException(400, "texts is empty: send at least one text")
        if len(texts) > cfg.max_texts:
            raise HTTPException(413, f"{len(texts)} texts in one request; the limit is {cfg.max_texts}")
        too_long = [i for i, t in enumerate(texts) if len(t) > cfg.max_text_chars]
        if too_long and cfg.on_too_long == "reject":
            raise HTTPException(
                413, f"texts[{too_long[0]}] has {len(texts[too_long[0]])} characters; the limit is {cfg.max_text_chars}"
            )
        if (model := self.holder.current) is None:
            raise HTTPException(503, f"no model loaded: models:/{cfg.model_name}@{cfg.alias} does not exist yet")
        if model.classifier is None and model.tagger is None:
            raise HTTPException(
                400, f"{model.name} v{model.version} is a generator: use POST /v1/completions or /v1/chat/completions"
            )

    async def predict(self, req: PredictRequest) -> PredictResponse | EntitiesResponse:
        """The `/predict` route: labels from a classifier, entities from a tagger (`serving/entities_api.py`)."""
        cfg, texts = self.cfg, req.texts
        self._check(texts)
        if (model := self.holder.current).tagger is not None:
            answer = await predict_entities(model, self.journal, [t[: cfg.max_text_chars] for t in texts])
            self.metrics.texts.inc(len(texts))
            return answer
        request_id = uuid.uuid4().hex
        try:
            results = await self.batcher.submit(
                [(request_id, t[: cfg.max_text_chars], len(t) > cfg.max_text_chars) for t in texts]
            )
        except Exception as e:
            log.exception("prediction failed")
            raise HTTPException(500, f"prediction failed: {type(e).__name__}") from e
        self.metrics.texts.inc(len(texts))
        self.metrics.truncated.inc(sum(p.truncated for _, p in results))
        version = results[0][0]
        self.metrics.model_version.labels(cfg.model_name).set(float(version))
        return PredictResponse(
            request_id=request_id, model_name=cfg.model_name, model_version=version, predictions=[p for _, p in results]
        )
