"""MLflow registry webhooks received by the service: the alias it serves moved, so it reloads now, not at its next
poll, whoever moved it (zero2one's promotion, the MLflow UI, a script with MlflowClient). A `champion` move that
zero2one did not make joins the promotion history as "moved outside zero2one" (tasks/registry/outside_moves.py).

Received by `zero2one serve` itself rather than a separate receiver: the service is the one that must reload, it
already runs an HTTP server, and every replica gets its own webhook (MLflow calls each URL registered). MLflow
(3.3+, a SQL-backed `mlflow server`) signs each delivery: base64 HMAC-SHA256 of `<delivery id>.<timestamp>.<body>`
with the webhook's secret, sent as `X-MLflow-Signature: v1,<signature>` (mlflow/webhooks/delivery.py). A wrong or
missing signature, or a timestamp outside `webhook_max_age_seconds` (a replayed delivery), is refused with 401 and
counted in `zero2one_webhook_deliveries_total{result="refused"}`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timezone

from fastapi import Request
from fastapi.responses import JSONResponse

from core.registry_names import CHAMPION
from tasks.registry.outside_moves import OUTSIDE, record_outside_move

log = logging.getLogger("zero2one.serving")
ALIAS_EVENTS = ("model_version_alias.created", "model_version_alias.deleted")  # what `create_webhook` subscribes


def signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The `X-MLflow-Signature` value MLflow sends for this delivery."""
    signed = delivery_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def refusal(secret: str, headers, body: bytes, max_age_seconds: float, now: float | None = None) -> str | None:
    """Why this delivery is not MLflow's (None: it is)."""
    delivery_id, timestamp = headers.get("x-mlflow-delivery-id"), headers.get("x-mlflow-timestamp")
    sent = headers.get("x-mlflow-signature")
    if not (delivery_id and timestamp and sent):
        return "missing X-MLflow-Delivery-Id, X-MLflow-Timestamp or X-MLflow-Signature"
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        return f"X-MLflow-Timestamp {timestamp!r} is not a Unix time"
    if abs(age) > max_age_seconds:
        return f"X-MLflow-Timestamp is {age:.0f} s old (at most {max_age_seconds:.0f}): a replayed delivery?"
    if not hmac.compare_digest(sent.encode(), signature(secret, delivery_id, timestamp, body).encode()):
        return "X-MLflow-Signature does not match the body"
    return None


class RegistryWebhooks:
    """`POST /webhooks/mlflow`: checks the signature, then reloads when the served model's alias moved."""

    def __init__(self, cfg, holder, metrics, tracking=None):
        self.cfg, self.holder, self.metrics, self.tracking = cfg, holder, metrics, tracking
        self._background: set[asyncio.Task] = set()

    async def _record(self, version: str, event: dict) -> None:
        """A `champion` move no zero2one record explains joins the history as "moved outside zero2one"."""
        try:
            at = event.get("timestamp") or datetime.now(timezone.utc).isoformat(timespec="seconds")
            move = await asyncio.to_thread(record_outside_move, self.cfg.model_name, version, self.tracking, at)
        except Exception:
            log.exception("could not record the move of %s@%s to v%s", self.cfg.model_name, CHAMPION, version)
            return
        if move:
            log.warning("%s@%s -> v%s was %s; recorded as move %d", move.model, CHAMPION, version, OUTSIDE, move.seq)

    async def receive(self, request: Request) -> JSONResponse:
        body = await request.body()
        if not self.cfg.webhook_secret:
            return JSONResponse({"detail": "webhooks are off: serve with --webhook-secret"}, 404)
        why = refusal(self.cfg.webhook_secret, request.headers, body, self.cfg.webhook_max_age_seconds)
        if why:
            self.metrics.webhooks.labels("refused").inc()
            log.warning("refused a webhook delivery from %s: %s", request.client and request.client.host, why)
            return JSONResponse({"detail": why}, 401)
        try:
            event = json.loads(body)
            kind, data = f"{event['entity']}.{event['action']}", event["data"]
        except (ValueError, KeyError, TypeError):
            self.metrics.webhooks.labels("invalid").inc()
            return JSONResponse({"detail": "not an MLflow webhook payload (entity, action, data)"}, 422)
        if kind not in ALIAS_EVENTS or data.get("name") != self.cfg.model_name:
            self.metrics.webhooks.labels("ignored").inc()
            return JSONResponse({"reloaded": False, "detail": f"not about {self.cfg.model_name}"})
        self.metrics.webhooks.labels("accepted").inc()
        log.info("MLflow: %s %s@%s -> v%s", kind, data["name"], data.get("alias"), data.get("version"))
        if kind == ALIAS_EVENTS[0] and data.get("alias") == CHAMPION and self.tracking is not None:
            self._background.add(task := asyncio.create_task(self._record(str(data["version"]), event)))
            task.add_done_callback(self._background.discard)
        if data.get("alias") != self.cfg.alias:
            return JSONResponse({"reloaded": False, "detail": f"not {self.cfg.model_name}@{self.cfg.alias}"})
        changed = await self.holder.refresh()
        version = self.holder.current.version if self.holder.current else None
        return JSONResponse({"reloaded": changed, "version": version})
