"""`POST /predict` for an entity tagger champion: the entities of each text, with type, character offsets, text and
score (`models/token_classifier.py`). Like a classifier's answers, they are committed to the prediction journal
before they are sent: the row's `label` holds the entity types found, its `probabilities` the entities as JSON.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from serving.journal import PredictionJournal
from serving.model_holder import LoadedModel


class Entity(BaseModel):
    type: str
    start: int = Field(description="Character offset of the entity's first character in the text.")
    end: int = Field(description="Character offset just past its last character.")
    text: str
    score: float = Field(description="Mean probability of its words' tags.")


class EntitiesResponse(BaseModel):
    request_id: str = Field(description="Logged with each prediction, so true entities can be joined on later.")
    model_name: str
    model_version: str
    entities: list[list[Entity]] = Field(description="One list per text, in the order of `texts`.")


def tag_and_journal(model: LoadedModel, journal: PredictionJournal, texts: list[str]) -> EntitiesResponse:
    """One forward pass over the texts (windowed past the model's length), one journal commit, the answer."""
    request_id, now = uuid.uuid4().hex, datetime.now(UTC).isoformat()
    found = model.tagger.entities(texts)
    rows = []
    for text, entities in zip(texts, found, strict=True):
        kinds = ",".join(sorted({e.type for e in entities})) or "none"
        score = min((e.score for e in entities), default=1.0)
        listed = json.dumps([e.model_dump() for e in entities])
        rows.append((now, request_id, text, kinds, score, listed, model.name, model.version))
    journal.write(rows)  # committed before the answer is sent
    answer = [[Entity(**e.model_dump()) for e in entities] for entities in found]
    return EntitiesResponse(request_id=request_id, model_name=model.name, model_version=model.version, entities=answer)


async def predict_entities(model: LoadedModel, journal: PredictionJournal, texts: list[str]) -> EntitiesResponse:
    return await asyncio.to_thread(tag_and_journal, model, journal, texts)
