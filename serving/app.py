"""The HTTP service's entry point: `create_app(cfg)` is what `zero2one serve` and the tests run under uvicorn.

Routes: `POST /predict`, `GET /health`, `GET /ready`, `GET /metrics`, `POST /admin/reload`. The parts live in
`serving/service.py` (the `Service` class: start-up, shutdown, auth, common routes) and `serving/classifier_api.py`
(the micro-batched predict path and its request/response models).
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
