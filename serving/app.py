"""The HTTP service's entry point: `create_app(cfg)` is what `zero2one serve` and the tests run under uvicorn.

Routes: `POST /predict` (classifier, entity tagger and question answerer champions), the OpenAI-compatible
`POST /v1/completions`, `POST /v1/chat/completions` and `GET /v1/models` (generator champions), `GET /health`,
`GET /ready`, `GET /metrics`, `POST /admin/reload`. The parts live in `serving/service.py` (the `Service` class:
start-up, shutdown, auth, common routes), `serving/classifier_api.py` (the micro-batched predict path),
`serving/entities_api.py` and `serving/answers_api.py` (a tagger's and a question answerer's predict paths),
`serving/openai_api.py` and `serving/generation_engine.py` (continuous batching of generation requests).
"""

from __future__ import annotations

from fastapi import FastAPI

from serving.classifier_api import Prediction, PredictRequest, PredictResponse
from serving.config import ServeConfig
from serving.service import Service

__all__ = ["Prediction", "PredictRequest", "PredictResponse", "Service", "create_app"]


def create_app(cfg: ServeConfig) -> FastAPI:
    """The ASGI app serving `models:/<cfg.model_name>@<cfg.alias>`."""
    return Service(cfg).app
