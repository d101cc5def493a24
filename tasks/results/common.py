"""Names and shapes every result module shares: what a pretraining stage and a tuning stage save, of any kind."""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel

SPLITS = ("train", "validation", "test")
Messages = list[dict[str, str]]  # a chat: {role, content} dicts, the last one the assistant's answer
Variant = Literal["int8", "fp32", "pytorch"]
METRIC_LABELS = {"macro_f1": "macro-F1", "accuracy": "accuracy", "chrf": "chrF", "exact_match": "exact match"}
C = TypeVar("C", bound=BaseModel)


class PretrainedModel(BaseModel):
    """A model a pretraining stage saved, either track: where it is, how far it trained, how well."""

    uri: str
    global_step: int
    resumed_from_step: int
    eval_loss: float
    perplexity: float
    parameters: int
    mlflow_run_id: str
    train_seconds: float = 0.0  # the training loop alone (this attempt), for throughput comparisons


class TunedModel(BaseModel):
    """A model a tuning stage saved, either track: where it is, what it started from, how far it trained."""

    uri: str
    base_model: str
    method: str
    global_step: int
    resumed_from_step: int
    mlflow_run_id: str
    pretrain_run_id: str | None = None
