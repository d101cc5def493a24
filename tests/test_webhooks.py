"""MLflow registry webhooks into `zero2one serve`: signatures as MLflow makes them, forged and replayed deliveries
refused and counted, and (slow) an alias moved with MlflowClient through a real `mlflow server` reloads the
service within 2 s while its poll is an hour away.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from starlette.datastructures import Headers

from serving.webhooks import refusal, signature
from tests.conftest import ROOT
from tests.servers import free_port, wait_until

SECRET = "webhook-test-secret"


def _headers(body: bytes, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    delivery, stamp = str(uuid.uuid4()), str(int(time.time() if at is None else at))
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": signature(secret, delivery, stamp, body),
    }


def test_signature_is_the_one_mlflow_sends():
    from mlflow.webhooks.delivery import _generate_hmac_signature

    body = json.dumps({"entity": "model_version_alias", "action": "created", "data": {"name": "m", "alias": "a"}})
    assert signature(SECRET, "d-1", "1700000000", body.encode()) == _generate_hmac_signature(
        SECRET, "d-1", "1700000000", body
    )


def test_forged_replayed_and_unsigned_deliveries_are_refused():
    body = b'{"entity": "model_version_alias", "action": "created", "data": {}}'
    assert refusal(SECRET, Headers(_headers(body)), body, 300) is None
    assert "does not match" in refusal(SECRET, Headers(_headers(body, secret="guessed")), body, 300)
    assert "does not match" in refusal(SECRET, Headers(_headers(body)), body.replace(b"{}", b'{"x": 1}'), 300)
    assert "replayed" in refusal(SECRET, Headers(_headers(body, at=time.time() - 3600)), body, 300)
    assert "missing" in refusal(SECRET, Headers({"Content-Type": "application/json"}), body, 300)


# ---------------------------------------------------------------------------------------------- live


def _mlflow_server(tracking_uri: str, log_path) -> tuple[subprocess.Popen, str]:
    """`mlflow server` on the workspace's own SQLite registry; webhooks may call 127.0.0.1 over http."""
    port = free_port()
    env = {**os.environ, "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true", "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https"}
    args = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri]
    args += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(args, env=env, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{url}/health", timeout=3).status_code == 200, "mlflow server", 120)
    return proc, url


def _accepted(url: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    families = text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
    deliveries = [s for f in families for s in f.samples if s.name == "zero2one_webhook_deliveries_total"]
    return sum(s.value for s in deliveries if s.labels["result"] == "accepted")


def _move(remote, url: str, name: str, version: str) -> tuple[float, float | None, float]:
    """Set `name@champion` through the MLflow server; seconds until the call returned, the service accepted the
    delivery, and the service served `version`."""
    before, moved = _accepted(url), time.monotonic()
    remote.set_registered_model_alias(name, "champion", version)
    returned, received = time.monotonic() - moved, None
    while httpx.get(f"{url}/ready").json()["version"] != version and time.monotonic() - moved < 30:
        if received is None and _accepted(url) > before:
            received = time.monotonic() - moved
        time.sleep(0.02)
    return round(returned, 2), received and round(received, 2), round(time.monotonic() - moved, 2)


@pytest.mark.ops  # a real mlflow server and zero2one serve process (~6 min under load): `make test-ops`
def test_an_alias_moved_with_mlflowclient_reloads_the_service_within_2_s(
    prefect_server, make_config, workspace, tmp_path
):
    from mlflow import MlflowClient

    from core.tracking import Tracking, TrackingConfig
    from core.workspace import Workspace
    from flows.pipeline import pipeline
    from tasks.registry.outside_moves import OUTSIDE, record_outside_move
    from tasks.registry.promotion import history, promote

    small = ["data.max_rows=300", "pretrain.max_steps=10", "pretrain.save_steps=10", "finetune.epochs=1"]
    v1 = pipeline(make_config(*small, "optimize.enabled=false")).registered
    tracking = Tracking.resolve(TrackingConfig(), Workspace(root=str(workspace)))
    local = tracking.client()
    promote(v1.name, v1.version, tracking, force=True, reason="the test's first champion")
    source = local.get_model_version(v1.name, v1.version)
    v2 = local.create_model_version(v1.name, source.source, run_id=source.run_id)  # the same model, a new version

    mlflow_proc, mlflow_url = _mlflow_server(tracking.uri, tmp_path / "mlflow.log")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "cli", "serve", "--workspace", str(workspace), "--port", str(port)]
    args += ["--poll-seconds", "3600", "--no-follow-events"]  # only the webhook can explain a reload in the test
    env = {**os.environ, "ZERO2ONE_WEBHOOK_SECRET": SECRET}
    log = open(tmp_path / "serve.log", "ab")  # noqa: SIM115 - the service outlives this statement
    service = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: httpx.get(f"{url}/ready", timeout=2).status_code == 200, "zero2one serve", 120)
        assert httpx.get(f"{url}/ready").json()["version"] == v1.version
        remote = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
        remote.create_webhook(
            "zero2one-serve", f"{url}/webhooks/mlflow", events=["model_version_alias.created"], secret=SECRET
        )

        new = str(v2.version)
        # The first delivery of a fresh `mlflow server` (behind zero2one's back), then one from a warm server.
        cold = _move(remote, url, v1.name, new)
        wait_until(lambda: OUTSIDE in history(v1.name, tracking)[-1].reason, "the history record", 30)
        last = history(v1.name, tracking)[-1]  # recorded after the grace period a zero2one promotion would need
        assert (last.version, last.previous_version, last.forced) == (new, v1.version, True)
        aliases = local.get_registered_model(v1.name).aliases
        assert str(aliases["previous-champion"]) == v1.version  # `zero2one rollback` undoes it
        warm = _move(remote, url, v1.name, v1.version)
        print(f"\nalias set with MlflowClient -> (set_alias returned, delivery accepted, serving it) s: {cold} {warm}")
        assert cold[1] is not None and cold[2] <= 10.0 and warm[2] <= 2.0
        wait_until(lambda: history(v1.name, tracking)[-1].version == v1.version, "the second history record", 30)
        # A move zero2one made itself is not recorded twice.
        back = promote(v1.name, new, tracking, force=True, reason="moved by zero2one")
        assert record_outside_move(v1.name, new, tracking, "now", grace_seconds=0) is None
        assert history(v1.name, tracking)[-1].seq == back.seq

        body = json.dumps(
            {"entity": "model_version_alias", "action": "created", "data": {"name": v1.name, "alias": "champion"}}
        ).encode()
        forged = httpx.post(f"{url}/webhooks/mlflow", content=body, headers=_headers(body, secret="guessed"))
        assert forged.status_code == 401 and "does not match" in forged.json()["detail"]
        metrics = httpx.get(f"{url}/metrics").text
        assert 'zero2one_webhook_deliveries_total{result="refused"} 1.0' in metrics
        assert 'zero2one_webhook_deliveries_total{result="accepted"} 2.0' in metrics
    finally:
        service.terminate()
        service.wait(timeout=60)
        mlflow_proc.terminate()
        mlflow_proc.wait(timeout=30)
