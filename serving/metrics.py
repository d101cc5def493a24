"""Prometheus metrics of the service, in a registry of its own (several apps can live in one test process)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "zero2one_requests", "Prediction and generation requests by status code", ["status"], registry=self.registry
        )
        self.texts = Counter("zero2one_texts", "Texts classified", registry=self.registry)
        self.truncated = Counter(
            "zero2one_truncated_texts",
            "Texts longer than the model's window (or max_text_chars): only their beginning was classified",
            registry=self.registry,
        )
        self.errors = Counter("zero2one_errors", "Requests that failed inside the service", registry=self.registry)
        self.latency = Histogram(
            "zero2one_request_latency_seconds",
            "Time from request to response",
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_size = Histogram(
            "zero2one_batch_size",
            "Texts per forward pass",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        self.journal_rows = Gauge(
            "zero2one_journal_rows",
            "Answered predictions not yet moved into the prediction log",
            registry=self.registry,
        )
        self.flush_failures = Counter(
            "zero2one_log_flush_failures", "Journal flushes into the prediction log that failed", registry=self.registry
        )
        self.model_version = Gauge(
            "zero2one_model_version", "Registered version being served", ["model"], registry=self.registry
        )
        self._health_metrics()
        self._generation_metrics()

    def _health_metrics(self) -> None:
        """What the alert rules in deployments/monitoring/ need beyond the counters: read when Prometheus scrapes."""
        self.model_loaded = Gauge(
            "zero2one_model_loaded", "1 while a model is served, 0 before the first one loads", registry=self.registry
        )
        self.journal_age = Gauge(
            "zero2one_journal_oldest_row_age_seconds",
            "How long the oldest answered prediction has waited to move into the prediction log (0: none waits)",
            registry=self.registry,
        )
        self.webhooks = Counter(
            "zero2one_webhook_deliveries",
            "MLflow registry webhook deliveries by result: accepted, ignored (another model or alias), "
            "refused (bad signature or stale timestamp), invalid",
            ["result"],
            registry=self.registry,
        )
        self.flush_interval = Gauge(
            "zero2one_log_flush_interval_seconds",
            "The configured journal flush interval: the alerts measure the journal's age in flush intervals",
            registry=self.registry,
        )

    def _generation_metrics(self) -> None:
        """For generator champions (`/v1/completions`, `/v1/chat/completions`)."""
        self.gen_tokens = Counter("zero2one_generated_tokens", "Tokens generated", registry=self.registry)
        self.gen_ttft = Histogram(
            "zero2one_time_to_first_token_seconds",
            "Time from a generation request entering the engine to its first token",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.gen_inter_token = Histogram(
            "zero2one_inter_token_latency_seconds",
            "Time between two tokens of one sequence",
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
        )
        self.gen_queue_depth = Gauge(
            "zero2one_generation_queue_depth", "Requests waiting to join the running batch", registry=self.registry
        )
        self.gen_active = Gauge(
            "zero2one_generation_active_sequences", "Sequences waiting or decoding", registry=self.registry
        )
        self.gen_batch_size = Histogram(
            "zero2one_generation_batch_size",
            "Sequences per decoding step",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64),
        )


class RequestMetrics:
    """ASGI middleware that counts and times requests to the prediction paths, by response status.

    Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware took about 40%
    of a small request's CPU time in our measurements.
    """

    def __init__(self, app, metrics: ServiceMetrics, paths: tuple[str, ...] = ("/predict",)):
        self.app, self.metrics, self.paths = app, metrics, paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_and_note_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            self.metrics.latency.observe(time.perf_counter() - start)
            self.metrics.requests.labels(str(status)).inc()
            if status >= 500:
                self.metrics.errors.inc()
