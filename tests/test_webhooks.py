"""MLflow registry webhooks into `zero2one serve`: signatures as MLflow makes them, forged and replayed deliveries
refused and counted, and (slow) an alias moved with MlflowClient through a real `mlflow server` reloads the
service within 2 s while its poll is an hour away.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest
import uvicorn
from starlette.datastructures import Headers

from serving.webhooks import refusal, signature
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


@pytest.mark.slow
def test_an_alias_moved_with_mlflowclient_reloads_the_service_within_2_s(
    prefect_server, make_config, workspace, tmp_path
):
    from mlflow import MlflowClient

    from flows.pipeline import pipeline
    from serving.app import create_app
    from serving.config import ServeConfig
    from tasks.outside_moves import OUTSIDE, record_outside_move
    from tasks.promotion import history, promote
    from tasks.tracking import Tracking, TrackingConfig
    from tasks.workspace import Workspace

    small = ["data.max_rows=300", "pretrain.max_steps=10", "pretrain.save_steps=10", "finetune.epochs=1"]
    v1 = pipeline(make_config(*small, "optimize.enabled=false")).registered
    tracking = Tracking.resolve(TrackingConfig(), Workspace(root=str(workspace)))
    local = tracking.client()
    promote(v1.name, v1.version, tracking, force=True, reason="the test's first champion")
    source = local.get_model_version(v1.name, v1.version)
    v2 = local.create_model_version(v1.name, source.source, run_id=source.run_id)  # the same model, a new version

    mlflow_proc, mlflow_url = _mlflow_server(tracking.uri, tmp_path / "mlflow.log")
    port = free_port()
    cfg = ServeConfig(
        workspace=str(workspace), port=port, poll_seconds=3600, follow_events=False, webhook_secret=SECRET
    )
    server = uvicorn.Server(uvicorn.Config(create_app(cfg), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    url = f"http://127.0.0.1:{port}"
    try:
        thread.start()
        wait_until(lambda: httpx.get(f"{url}/ready", timeout=2).status_code == 200, "zero2one serve", 120)
        assert httpx.get(f"{url}/ready").json()["version"] == v1.version
        remote = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
        remote.create_webhook(
            "zero2one-serve", f"{url}/webhooks/mlflow", events=["model_version_alias.created"], secret=SECRET
        )

        moved, new, received = time.monotonic(), str(v2.version), None
        remote.set_registered_model_alias(v1.name, "champion", new)  # behind zero2one's back
        while httpx.get(f"{url}/ready").json()["version"] != new and time.monotonic() - moved < 30:
            if received is None and 'result="accepted"} 1.0' in httpx.get(f"{url}/metrics").text:
                received = time.monotonic() - moved
            time.sleep(0.05)
        took = time.monotonic() - moved
        print(f"\nalias set through mlflow server -> delivery accepted {received} s, serving v{new} {took:.2f} s")
        # The delivery arrives at once; the rest is loading the version (seconds on a loaded 2-core machine).
        assert received is not None and received <= 2.0 and took <= 10.0

        # In the promotion history as an outside move (after the grace period a zero2one promotion would need).
        wait_until(lambda: OUTSIDE in history(v1.name, tracking)[-1].reason, "the history record", 30)
        last = history(v1.name, tracking)[-1]
        assert (last.version, last.previous_version, last.forced) == (new, v1.version, True)
        aliases = local.get_registered_model(v1.name).aliases
        assert str(aliases["previous-champion"]) == v1.version  # `zero2one rollback` undoes it
        # A move zero2one made itself is not recorded twice.
        back = promote(v1.name, v1.version, tracking, force=True, reason="rolled forward by hand")
        assert record_outside_move(v1.name, v1.version, tracking, "now", grace_seconds=0) is None
        assert history(v1.name, tracking)[-1].seq == back.seq

        body = json.dumps(
            {"entity": "model_version_alias", "action": "created", "data": {"name": v1.name, "alias": "champion"}}
        ).encode()
        forged = httpx.post(f"{url}/webhooks/mlflow", content=body, headers=_headers(body, secret="guessed"))
        assert forged.status_code == 401 and "does not match" in forged.json()["detail"]
        metrics = httpx.get(f"{url}/metrics").text
        assert 'zero2one_webhook_deliveries_total{result="refused"} 1.0' in metrics
        assert 'zero2one_webhook_deliveries_total{result="accepted"} 1.0' in metrics
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        mlflow_proc.terminate()
        mlflow_proc.wait(timeout=30)
