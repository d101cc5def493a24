"""The HTTP service: `POST /predict`, `GET /health`, `GET /ready`, `GET /metrics`, `POST /admin/reload`.

Every prediction is written to the prediction log (the monitor flow's "current data") before the
response is sent: a request is never acknowledged without being logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from datetime import UTC, datetime

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from serving.batcher import MicroBatcher
from serving.config import ServeConfig
from serving.metrics import ServiceMetrics
from serving.model_holder import ModelHolder
from tasks.prediction_log import append_predictions
from tasks.tracking import Tracking, TrackingConfig
from tasks.workspace import Workspace

log = logging.getLogger("zero2one.serving")


class PredictRequest(BaseModel):
    texts: list[str] = Field(description="Texts to classify.")


class Prediction(BaseModel):
    label: str
    score: float
    probabilities: dict[str, float]


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[Prediction]


def create_app(cfg: ServeConfig) -> FastAPI:
    ws = Workspace(root=cfg.workspace).resolved()
    tracking = Tracking.resolve(TrackingConfig(uri=cfg.tracking_uri), ws)
    tracking.activate()
    log_uri = cfg.prediction_log or ws.uri("predictions")
    holder = ModelHolder(tracking.client(), cfg.model_name, cfg.alias)
    metrics = ServiceMetrics()

    async def run_batch(texts: list[str]) -> list[tuple[str, Prediction]]:
        model = holder.current  # taken once: the whole batch runs on one version, even during a swap
        frame = await asyncio.to_thread(model.predict, texts)
        prob_cols = [c for c in frame.columns if c.startswith("prob_")]
        now = datetime.now(UTC)
        preds, rows = [], []
        for text, rec in zip(texts, frame.to_dict("records"), strict=True):
            probs = {c.removeprefix("prob_"): float(rec[c]) for c in prob_cols}
            preds.append(
                (model.version, Prediction(label=rec["label"], score=float(rec["score"]), probabilities=probs))
            )
            rows.append(
                {
                    "timestamp": now,
                    "text": text,
                    "label": rec["label"],
                    "score": float(rec["score"]),
                    "probs": json.dumps(probs),
                    "model_name": model.name,
                    "model_version": model.version,
                }
            )
        await asyncio.to_thread(append_predictions, log_uri, rows)  # one write per batch, before anyone is answered
        return preds

    batcher = MicroBatcher(run_batch, cfg.max_batch_size, cfg.max_wait_ms, on_batch=metrics.batch_size.observe)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            await holder.refresh()
        except Exception:
            log.exception("no model loaded at start-up; /ready reports 503 until one is")
        if holder.current:
            metrics.model_version.labels(cfg.model_name).set(float(holder.current.version))
        batcher.start()
        watcher = asyncio.get_running_loop().create_task(holder.watch(cfg.poll_seconds))
        yield
        watcher.cancel()
        await batcher.stop()

    app = FastAPI(title="zero2one", summary=f"Serves models:/{cfg.model_name}@{cfg.alias}", lifespan=lifespan)

    def authorize(authorization: str | None = Header(None)) -> None:
        if cfg.token and not (
            authorization and secrets.compare_digest(authorization.encode(), f"Bearer {cfg.token}".encode())
        ):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.middleware("http")
    async def count_predictions(request: Request, call_next):
        if request.url.path != "/predict":
            return await call_next(request)
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            metrics.errors.inc()
            metrics.requests.labels("500").inc()
            raise
        metrics.latency.observe(time.perf_counter() - start)
        metrics.requests.labels(str(response.status_code)).inc()
        return response

    @app.post("/predict", response_model=PredictResponse, dependencies=[Depends(authorize)])
    async def predict(req: PredictRequest) -> PredictResponse:
        if not req.texts:
            raise HTTPException(400, "texts is empty: send at least one text")
        if len(req.texts) > cfg.max_texts:
            raise HTTPException(413, f"{len(req.texts)} texts in one request; the limit is {cfg.max_texts}")
        texts = req.texts
        too_long = [i for i, t in enumerate(texts) if len(t) > cfg.max_text_chars]
        if too_long and cfg.on_too_long == "reject":
            raise HTTPException(
                413, f"texts[{too_long[0]}] has {len(texts[too_long[0]])} characters; the limit is {cfg.max_text_chars}"
            )
        texts = [t[: cfg.max_text_chars] for t in texts]
        if holder.current is None:
            raise HTTPException(503, f"no model loaded: models:/{cfg.model_name}@{cfg.alias} does not exist yet")
        try:
            results = await batcher.submit(texts)
        except Exception as e:
            metrics.errors.inc()
            log.exception("prediction failed")
            raise HTTPException(500, f"prediction failed: {type(e).__name__}") from e
        metrics.texts.inc(len(texts))
        version = results[0][0]
        metrics.model_version.labels(cfg.model_name).set(float(version))
        return PredictResponse(model_name=cfg.model_name, model_version=version, predictions=[p for _, p in results])

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready(response: Response) -> dict:
        if holder.current is None:
            response.status_code = 503
            return {"ready": False, "model": f"{cfg.model_name}@{cfg.alias}", "version": None}
        return {"ready": True, "model": f"{cfg.model_name}@{cfg.alias}", "version": holder.current.version}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/admin/reload", dependencies=[Depends(authorize)])
    async def reload() -> dict:
        """For a Prefect automation on `zero2one.model.promoted`: check the alias now instead of at the next poll."""
        changed = await holder.refresh()
        return {"changed": changed, "version": holder.current.version if holder.current else None}

    return app
