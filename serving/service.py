"""The inference service as one small class: its parts (model holder, journal, flusher, metrics, predict path)
are attributes, its start-up/shutdown and routes are methods. `serving.app.create_app` builds one.

Every answer is committed to the prediction journal before it is sent, and moves from there into the Parquet
prediction log that the monitor flow reads as its "current data" within `log_flush_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prefect.settings import PREFECT_API_URL
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.prediction_log import log_uri
from core.tracking import Tracking, TrackingConfig
from core.workspace import Workspace
from serving.answers_api import AnswersAPI, AnswersResponse, PredictBody
from serving.classifier_api import ClassifierAPI, PredictRequest, PredictResponse
from serving.config import ServeConfig
from serving.entities_api import EntitiesResponse
from serving.journal import PredictionJournal, flush_until_stopped
from serving.limits import BodySizeLimit, error_body
from serving.metrics import RequestMetrics, ServiceMetrics
from serving.model_holder import ModelHolder
from serving.openai_api import OpenAIAPI
from serving.webhooks import RegistryWebhooks

log = logging.getLogger("zero2one.serving")
PREDICTION_PATHS = ("/predict", "/v1/completions", "/v1/chat/completions")  # counted and timed in /metrics


class Service:
    """Serves `models:/<model_name>@<alias>` as configured by `cfg`; `service.app` is the ASGI app."""

    def __init__(self, cfg: ServeConfig):
        self.cfg = cfg
        ws = Workspace(root=cfg.workspace).resolved()
        tracking = Tracking.resolve(TrackingConfig(uri=cfg.tracking_uri), ws)
        tracking.activate()
        journal_path = cfg.journal or ws.local_dir("serving") / "prediction-journal.sqlite"
        self.journal = PredictionJournal(journal_path, cfg.prediction_log or log_uri(ws))
        self.holder = ModelHolder(tracking.client(), cfg.model_name, cfg.alias, cfg.generation_runtime)
        self.metrics = ServiceMetrics()
        self.metrics.journal_rows.set_function(self.journal.pending)  # counted when Prometheus scrapes
        self.metrics.journal_age.set_function(self.journal.oldest_age_seconds)
        self.metrics.flush_interval.set(cfg.log_flush_seconds)
        self.metrics.model_loaded.set_function(lambda: float(self.holder.current is not None))
        self.classifier = ClassifierAPI(cfg, self.holder, self.journal, self.metrics)
        self.answers = AnswersAPI(cfg, self.holder, self.journal, self.metrics)
        self.openai = OpenAIAPI(cfg, self.holder, self.journal, self.metrics)
        self.webhooks = RegistryWebhooks(cfg, self.holder, self.metrics, tracking)
        self._stopping = asyncio.Event()
        self._background: list[asyncio.Task] = []
        self._flusher: asyncio.Task | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------------ start-up and shutdown

    async def _load_first_model(self) -> None:
        recovered = await asyncio.to_thread(self.journal.flush)  # rows a previous run answered but did not move
        if recovered:
            log.info("moved %d journaled predictions of an earlier run into %s", recovered, self.journal.log_uri)
        try:
            await self.holder.refresh()
        except Exception:
            log.exception("no model loaded at start-up; /ready reports 503 until one is")
        if self.holder.current:
            self.metrics.model_version.labels(self.cfg.model_name).set(float(self.holder.current.version))

    def _flush_failed(self) -> None:  # the rows stay in the journal; the next flush (or start) retries them
        self.metrics.flush_failures.inc()
        log.exception("moving predictions from the journal to %s failed", self.journal.log_uri)

    async def start(self) -> None:
        await self._load_first_model()
        self.classifier.batcher.start()
        self._background = [asyncio.create_task(self.holder.watch(self.cfg.poll_seconds))]
        if self.cfg.follow_events and PREFECT_API_URL.value():
            self._background.append(asyncio.create_task(self.holder.follow_promotions()))
        self._stopping = asyncio.Event()
        self._flusher = asyncio.create_task(
            flush_until_stopped(self.journal, self.cfg.log_flush_seconds, self._stopping, self._flush_failed)
        )

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await self.classifier.batcher.stop()  # lets a batch in flight finish its journal commit
        await self.openai.stop()  # sequences in flight finish and are journaled
        self._stopping.set()
        await self._flusher  # its last round moves what the final batches journaled
        log.info("prediction journal flushed into %s (%d rows left)", self.journal.log_uri, self.journal.pending())
        self.journal.close()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI):
        await self.start()
        yield
        await self.stop()

    # ------------------------------------------------------------------ routes

    async def authorize(self, authorization: str | None = Header(None)) -> None:
        token = self.cfg.token
        if token and not (authorization and secrets.compare_digest(authorization.encode(), f"Bearer {token}".encode())):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    async def health(self) -> dict:
        return {"status": "ok"}

    async def ready(self, response: Response) -> dict:
        model = f"{self.cfg.model_name}@{self.cfg.alias}"
        if self.holder.current is None:
            response.status_code = 503
            return {"ready": False, "model": model, "version": None}
        current = self.holder.current
        runtime = {"runtime": current.runtime.name} if current.runtime else {}  # a generator: "onnx" or "pytorch"
        return {"ready": True, "model": model, "version": current.version} | runtime

    async def prometheus(self) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def predict(self, body: PredictBody) -> PredictResponse | EntitiesResponse | AnswersResponse:
        """`/predict`: texts to a classifier or a tagger (`classifier_api.py`), {question, context} pairs to a
        question answerer (`answers_api.py`)."""
        if body.pairs is not None:
            return await self.answers.predict(body.pairs)
        self.answers.refuse_texts()
        return await self.classifier.predict(PredictRequest.model_construct(texts=body.texts))

    async def reload(self) -> dict:
        """For a Prefect automation on `zero2one.model.promoted`: check the alias now instead of at the next poll."""
        changed = await self.holder.refresh()
        return {"changed": changed, "version": self.holder.current.version if self.holder.current else None}

    @staticmethod
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not request.url.path.startswith("/v1/"):
            return await http_exception_handler(request, exc)
        body = error_body(request.url.path, exc.status_code, str(exc.detail))
        return JSONResponse(body, exc.status_code, exc.headers)

    @staticmethod
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if not request.url.path.startswith("/v1/"):
            return await request_validation_exception_handler(request, exc)
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse(error_body(request.url.path, 422, where), 422)

    def _build_app(self) -> FastAPI:
        cfg = self.cfg
        app = FastAPI(title="zero2one", summary=f"Serves models:/{cfg.model_name}@{cfg.alias}", lifespan=self.lifespan)
        app.add_middleware(RequestMetrics, metrics=self.metrics, paths=PREDICTION_PATHS)
        app.add_middleware(BodySizeLimit, max_bytes=cfg.max_body_bytes)
        app.add_exception_handler(StarletteHTTPException, self._http_error)
        app.add_exception_handler(RequestValidationError, self._invalid_request)
        auth = [Depends(self.authorize)]
        app.add_api_route(
            "/predict",
            self.predict,
            methods=["POST"],
            response_model=PredictResponse | EntitiesResponse | AnswersResponse,
            dependencies=auth,
        )
        app.add_api_route("/v1/completions", self.openai.completions, methods=["POST"], dependencies=auth)
        app.add_api_route("/v1/chat/completions", self.openai.chat_completions, methods=["POST"], dependencies=auth)
        app.add_api_route("/v1/models", self.openai.models, methods=["GET"], dependencies=auth)
        app.add_api_route("/health", self.health, methods=["GET"])
        app.add_api_route("/ready", self.ready, methods=["GET"])
        app.add_api_route("/metrics", self.prometheus, methods=["GET"])
        app.add_api_route("/admin/reload", self.reload, methods=["POST"], dependencies=auth)
        app.add_api_route("/webhooks/mlflow", self.webhooks.receive, methods=["POST"])  # signed, not bearer
        return app
