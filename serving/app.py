"""The HTTP service: `POST /predict`, `GET /health`, `GET /ready`, `GET /metrics`, `POST /admin/reload`.

Every prediction is committed to the prediction journal before the response is sent (a request is
never acknowledged without being logged), and moves from there into the Parquet prediction log that
the monitor flow reads as its "current data" within `log_flush_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import uuid
from datetime import UTC, datetime

from fastapi import Depends, FastAPI, Header, HTTPException, Response
from prefect.settings import PREFECT_API_URL
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, field_validator

from serving.batcher import MicroBatcher
from serving.config import ServeConfig
from serving.journal import PredictionJournal, flush_until_stopped
from serving.metrics import RequestMetrics, ServiceMetrics
from serving.model_holder import ModelHolder
from tasks.prediction_log import log_uri
from tasks.tracking import Tracking, TrackingConfig
from tasks.workspace import Workspace

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


def create_app(cfg: ServeConfig) -> FastAPI:
    ws = Workspace(root=cfg.workspace).resolved()
    tracking = Tracking.resolve(TrackingConfig(uri=cfg.tracking_uri), ws)
    tracking.activate()
    journal = PredictionJournal(
        cfg.journal or ws.local_dir("serving") / "prediction-journal.sqlite", cfg.prediction_log or log_uri(ws)
    )
    holder = ModelHolder(tracking.client(), cfg.model_name, cfg.alias)
    metrics = ServiceMetrics()
    metrics.journal_rows.set_function(journal.pending)  # counted when Prometheus scrapes

    def predict_and_journal(items: list[tuple[str, str, bool]]) -> list[tuple[str, Prediction]]:
        """One micro-batch of (request id, text, cut to max_text_chars), in a worker thread: one forward pass,
        journal commit, answers."""
        model = holder.current  # taken once: the whole batch runs on one version, even during a swap
        probs, cut = model.classify([text for _, text, _ in items])
        now = datetime.now(UTC).isoformat()
        results, rows = [], []
        for (request_id, text, cut_chars), p, cut_tokens in zip(items, probs.tolist(), cut.tolist(), strict=True):
            best = max(range(len(p)), key=p.__getitem__)
            label, by_label = model.labels[best], dict(zip(model.labels, p, strict=True))
            answer = Prediction(label=label, score=p[best], probabilities=by_label, truncated=cut_chars or cut_tokens)
            results.append((model.version, answer))
            rows.append((now, request_id, text, label, p[best], json.dumps(by_label), model.name, model.version))
        journal.write(rows)  # committed before anyone in the batch is answered
        return results

    async def run_batch(items: list[tuple[str, str, bool]]) -> list[tuple[str, Prediction]]:
        return await asyncio.to_thread(predict_and_journal, items)

    batcher = MicroBatcher(run_batch, cfg.max_batch_size, cfg.max_wait_ms, on_batch=metrics.batch_size.observe)

    def flush_failed() -> None:  # the rows stay in the journal; the next flush (or start) retries them
        metrics.flush_failures.inc()
        log.exception("moving predictions from the journal to %s failed", journal.log_uri)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        recovered = await asyncio.to_thread(journal.flush)  # rows a previous run answered but did not move
        if recovered:
            log.info("moved %d journaled predictions of an earlier run into %s", recovered, journal.log_uri)
        try:
            await holder.refresh()
        except Exception:
            log.exception("no model loaded at start-up; /ready reports 503 until one is")
        if holder.current:
            metrics.model_version.labels(cfg.model_name).set(float(holder.current.version))
        batcher.start()
        watchers = [asyncio.create_task(holder.watch(cfg.poll_seconds))]
        if cfg.follow_events and PREFECT_API_URL.value():
            watchers.append(asyncio.create_task(holder.follow_promotions()))
        stopping = asyncio.Event()
        flusher = asyncio.create_task(flush_until_stopped(journal, cfg.log_flush_seconds, stopping, flush_failed))
        yield
        for task in watchers:
            task.cancel()
        await batcher.stop()  # lets a batch in flight finish its journal commit
        stopping.set()
        await flusher  # its last round moves what the final batches journaled
        log.info("prediction journal flushed into %s (%d rows left)", journal.log_uri, journal.pending())
        journal.close()

    app = FastAPI(title="zero2one", summary=f"Serves models:/{cfg.model_name}@{cfg.alias}", lifespan=lifespan)
    app.add_middleware(RequestMetrics, metrics=metrics)

    async def authorize(authorization: str | None = Header(None)) -> None:
        if cfg.token and not (
            authorization and secrets.compare_digest(authorization.encode(), f"Bearer {cfg.token}".encode())
        ):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

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
        if holder.current is None:
            raise HTTPException(503, f"no model loaded: models:/{cfg.model_name}@{cfg.alias} does not exist yet")
        request_id = uuid.uuid4().hex
        try:
            results = await batcher.submit(
                [(request_id, t[: cfg.max_text_chars], len(t) > cfg.max_text_chars) for t in texts]
            )
        except Exception as e:
            log.exception("prediction failed")
            raise HTTPException(500, f"prediction failed: {type(e).__name__}") from e
        metrics.texts.inc(len(texts))
        metrics.truncated.inc(sum(p.truncated for _, p in results))
        version = results[0][0]
        metrics.model_version.labels(cfg.model_name).set(float(version))
        return PredictResponse(
            request_id=request_id,
            model_name=cfg.model_name,
            model_version=version,
            predictions=[p for _, p in results],
        )

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
