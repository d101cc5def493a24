"""The inference service over real HTTP on loopback, serving a real registered model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
import uvicorn

from core.prediction_log import is_prediction_log, read_window
from flows.config import load_config
from flows.pipeline import pipeline
from serving.app import create_app
from serving.config import ServeConfig
from tasks.monitoring.windows import WindowSource
from tests.conftest import FAST, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


@pytest.fixture(scope="module")
def registered(prefect_server, tmp_path_factory):
    """One trained and registered model; the tests point `champion` where they need it."""
    ws = tmp_path_factory.mktemp("serving") / "ws"
    result = pipeline(load_config(ROOT / "configs" / "tiny.yaml", [f"workspace.root={ws}", *FAST]))
    client = result.registered
    from core.tracking import Tracking, TrackingConfig
    from core.workspace import Workspace

    tracking = Tracking.resolve(TrackingConfig(), Workspace(root=str(ws)))
    mlflow_client = tracking.client()
    mlflow_client.set_registered_model_alias(client.name, "champion", client.version)
    return ws, client, mlflow_client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn on a free loopback port in a thread; always shut down."""

    def __init__(self, cfg: ServeConfig):
        self.port = cfg.port
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(cfg), host="127.0.0.1", port=cfg.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{cfg.port}"

    def __enter__(self):
        self.thread.start()
        _wait_ready(self.url)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _cfg(ws, **kw) -> ServeConfig:
    return ServeConfig(workspace=str(ws), port=_free_port(), **kw)


def _wait_ready(url: str, proc: subprocess.Popen | None = None, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the service exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("service did not become ready")


def test_predict_metrics_and_prediction_log(registered):
    ws, reg, _ = registered
    with Server(_cfg(ws, token="s3cret", max_texts=4, max_text_chars=50, on_too_long="reject")) as srv:
        auth = {"Authorization": "Bearer s3cret"}
        texts = ["the battery is great", "the screen is awful and the price is not fair"]
        r = httpx.post(f"{srv.url}/predict", json={"texts": texts}, headers=auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_version"] == reg.version and len(body["predictions"]) == 2
        for p in body["predictions"]:
            assert p["label"] in {"negative", "neutral", "positive"}
            assert sum(p["probabilities"].values()) == pytest.approx(1, abs=1e-5)

        assert httpx.post(f"{srv.url}/predict", json={"texts": texts}).status_code == 401
        assert httpx.post(f"{srv.url}/predict", json={"texts": []}, headers=auth).status_code == 400
        wrong = httpx.post(f"{srv.url}/predict", json={"texts": "not a list"}, headers=auth)
        assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "texts"]
        bad_json = httpx.post(
            f"{srv.url}/predict", content=b"{not json", headers={**auth, "Content-Type": "application/json"}
        )
        assert bad_json.status_code == 422
        assert httpx.post(f"{srv.url}/predict", json={"texts": ["a"] * 5}, headers=auth).status_code == 413
        assert httpx.post(f"{srv.url}/predict", json={"texts": ["x" * 51]}, headers=auth).status_code == 413
        assert httpx.get(f"{srv.url}/health").json() == {"status": "ok"}

        metrics = httpx.get(f"{srv.url}/metrics").text
        assert 'zero2one_requests_total{status="200"} 1.0' in metrics
        assert 'zero2one_requests_total{status="422"} 2.0' in metrics
        assert f'zero2one_model_version{{model="{reg.name}"}} {float(reg.version)}' in metrics
        assert "zero2one_batch_size_bucket" in metrics
        assert "zero2one_journal_rows 2.0" in metrics  # answered and journaled; the log gets them at shutdown

    logged = read_window(str(ws / "predictions"))
    assert list(logged["text"]) == texts  # only the accepted request was logged
    assert set(logged["model_version"].astype(str)) == {reg.version}


def test_micro_batching_and_truncation(registered):
    ws, _, _ = registered
    with Server(_cfg(ws, max_wait_ms=50, max_text_chars=20)) as srv:
        with ThreadPoolExecutor(16) as pool:
            codes = list(
                pool.map(
                    lambda i: (
                        httpx.post(f"{srv.url}/predict", json={"texts": [f"text {i} " * 10]}, timeout=30).status_code
                    ),
                    range(32),
                )
            )
        assert codes == [200] * 32
        metrics = httpx.get(f"{srv.url}/metrics").text
    # 32 concurrent one-text requests took fewer than 32 forward passes.
    batches = float(
        next(line.split()[-1] for line in metrics.splitlines() if line.startswith("zero2one_batch_size_count"))
    )
    assert batches < 32
    logged = read_window(str(ws / "predictions"), last_n=32)
    assert sorted(logged["text"]) == sorted((f"text {i} " * 10)[:20] for i in range(32))  # truncated, all logged


def test_hot_reload_switches_version_without_failed_requests(registered):
    ws, reg, client = registered
    source = client.get_model_version(reg.name, reg.version)
    v2 = client.create_model_version(reg.name, source.source, run_id=source.run_id, tags=source.tags)
    with Server(_cfg(ws, poll_seconds=0.5)) as srv:
        seen, codes = [], []
        stop = time.time() + 60
        moved = False
        while time.time() < stop:
            r = httpx.post(f"{srv.url}/predict", json={"texts": ["great phone"]}, timeout=30)
            codes.append(r.status_code)
            seen.append(r.json()["model_version"])
            if not moved and len(seen) >= 3:
                client.set_registered_model_alias(reg.name, "champion", v2.version)
                moved = True
            if seen[-1] == str(v2.version):
                break
        assert set(codes) == {200}
        assert seen[0] == reg.version and seen[-1] == str(v2.version)
    client.set_registered_model_alias(reg.name, "champion", reg.version)


def test_acknowledged_predictions_survive_a_killed_server(registered):
    """Kill -9 under load: every answered request is in the log once the service is back."""
    ws, _, _ = registered
    log = str(ws / "predictions")
    before = len(read_window(log)) if is_prediction_log(log) else 0
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--workspace", str(ws), "--port", str(port)]
        + ["--log-flush-seconds", "3600"],  # nothing moves to the log before the kill: only the journal has it
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    acknowledged: dict[str, list[str]] = {}
    try:
        _wait_ready(url, proc)

        def send(i: int) -> tuple[list[str], str] | None:
            texts = [f"review {i} the screen is great", f"review {i} the hinge is weak"]
            try:
                r = httpx.post(f"{url}/predict", json={"texts": texts}, timeout=30)
            except httpx.TransportError:
                return None  # the server was killed before answering: not acknowledged
            return (texts, r.json()["request_id"]) if r.status_code == 200 else None

        with ThreadPoolExecutor(8) as pool:
            for future in as_completed([pool.submit(send, i) for i in range(400)]):
                if (result := future.result()) is not None:
                    acknowledged[result[1]] = result[0]
                if len(acknowledged) == 60:
                    proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert 60 <= len(acknowledged) < 400
    assert (len(read_window(log)) if is_prediction_log(log) else 0) == before  # still only in the journal

    with Server(_cfg(ws)):  # start-up moves what the killed process journaled
        pass
    logged = read_window(log).iloc[before:]
    pairs = list(zip(logged["request_id"], logged["text"], strict=True))
    assert len(pairs) == len(set(pairs)), "a prediction was logged twice"
    missing = [(rid, t) for rid, texts in acknowledged.items() for t in texts if (rid, t) not in set(pairs)]
    assert not missing, f"{len(missing)} answered predictions are not in the log, e.g. {missing[:2]}"


def test_monitor_flow_reads_what_the_server_logged(registered):
    from flows.monitor import monitor

    ws, reg, _ = registered
    texts = pd.read_csv(ws / "demo" / "reviews.csv")["review"].head(240).tolist()
    start = datetime.now(UTC)
    with Server(_cfg(ws)) as srv:
        with ThreadPoolExecutor(4) as pool:
            codes = list(
                pool.map(
                    lambda i: (
                        httpx.post(f"{srv.url}/predict", json={"texts": texts[i : i + 8]}, timeout=30).status_code
                    ),
                    range(0, len(texts), 8),
                )
            )
        assert set(codes) == {200}

    config = load_config(ROOT / "configs" / "tiny.yaml", [f"workspace.root={ws}", *FAST])
    report = monitor(model_name=reg.name, window=WindowSource(since=start), pipeline_config=config).report
    assert report.window_rows == len(texts)
    assert report.status == "no_drift", report.reasons  # the same kind of reviews the model was trained on


def test_promotion_event_reloads_without_waiting_for_the_poll(registered):
    from core.tracking import Tracking, TrackingConfig
    from core.workspace import Workspace
    from tasks.registry.promotion import promote

    ws, reg, client = registered
    source = client.get_model_version(reg.name, reg.version)
    new = client.create_model_version(reg.name, source.source, run_id=source.run_id, tags=source.tags)
    tracking = Tracking.resolve(TrackingConfig(), Workspace(root=str(ws)))
    try:
        with Server(_cfg(ws, poll_seconds=3600)) as srv:  # polling alone would not notice within the test
            assert httpx.get(f"{srv.url}/ready").json()["version"] == reg.version
            promote(reg.name, str(new.version), tracking, force=True, reason="test: reload on the event")
            deadline, version = time.time() + 30, None
            while time.time() < deadline and version != str(new.version):
                time.sleep(0.2)
                version = httpx.get(f"{srv.url}/ready").json()["version"]
            assert version == str(new.version)
    finally:
        client.set_registered_model_alias(reg.name, "champion", reg.version)


def test_a_log_store_outage_keeps_answered_predictions_in_the_journal(registered, tmp_path):
    from serving.journal import PredictionJournal

    ws, _, _ = registered
    unreachable = tmp_path / "not-a-folder"
    unreachable.write_text("a file where the prediction log should be: every write to it fails")
    journal = tmp_path / "journal.sqlite"
    cfg = _cfg(ws, prediction_log=str(unreachable), journal=str(journal), log_flush_seconds=0.2)
    with Server(cfg) as srv:
        assert httpx.post(f"{srv.url}/predict", json={"texts": ["great phone"]}).status_code == 200
        deadline, metrics = time.time() + 30, ""
        while time.time() < deadline and "zero2one_log_flush_failures_total 0.0" in (
            metrics := httpx.get(f"{srv.url}/metrics").text
        ):
            time.sleep(0.2)
        assert "zero2one_log_flush_failures_total 0.0" not in metrics and "zero2one_journal_rows 1.0" in metrics
    # Still there after the (also failing) shutdown flush; moved once the store is back.
    recovered = PredictionJournal(journal, str(tmp_path / "log"))
    assert recovered.flush() == 1
    assert list(read_window(str(tmp_path / "log"))["text"]) == ["great phone"]


def test_a_graceful_stop_during_a_slow_flush_logs_every_answered_prediction(registered, tmp_path, monkeypatch):
    """Issue 12, item 1: on a loaded machine a periodic flush can still be writing its Parquet file when the
    service is told to stop; the predictions answered while it was writing must reach the log too."""
    import serving.journal

    ws, _, _ = registered
    real_append, moving = serving.journal.append_predictions, threading.Event()

    def slow_first_append(*args, **kwargs):  # what CPU contention does to the first flush's file write
        if not moving.is_set():
            moving.set()
            time.sleep(3)
        return real_append(*args, **kwargs)

    monkeypatch.setattr(serving.journal, "append_predictions", slow_first_append)
    log = str(tmp_path / "log")
    cfg = _cfg(ws, prediction_log=log, journal=str(tmp_path / "journal.sqlite"), log_flush_seconds=0.2)
    with Server(cfg) as srv:
        assert httpx.post(f"{srv.url}/predict", json={"texts": ["first"]}, timeout=30).status_code == 200
        assert moving.wait(30), "no flush started"
        # Answered (so journaled) after the running flush chose its rows; the stop comes while it still writes.
        assert httpx.post(f"{srv.url}/predict", json={"texts": ["second"]}, timeout=30).status_code == 200
    assert sorted(read_window(log)["text"]) == ["first", "second"]


def _metric(metrics: str, name: str) -> float:
    return float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith(name)))


def test_batch_size_limit_empty_texts_and_truncation_are_reported(registered):
    """Issue 12, item 13: --max-batch-size was not enforced (one forward pass of 256 texts with a maximum of
    32), an empty text was answered, and texts longer than the model's window were cut silently."""
    ws, _, _ = registered
    with Server(_cfg(ws, max_batch_size=8, max_texts=100)) as srv:
        many = [f"review {i}: the screen is great" for i in range(40)]
        assert httpx.post(f"{srv.url}/predict", json={"texts": many}, timeout=60).status_code == 200
        metrics = httpx.get(f"{srv.url}/metrics").text
        # Every forward pass had at most 8 texts: all of them are in the histogram's `le="8.0"` bucket.
        assert _metric(metrics, "zero2one_batch_size_count") >= 5
        assert _metric(metrics, 'zero2one_batch_size_bucket{le="8.0"}') == _metric(metrics, "zero2one_batch_size_count")

        empty = httpx.post(f"{srv.url}/predict", json={"texts": ["fine", "great", "", "  "]})
        assert empty.status_code == 422 and "texts[2], texts[3]" in empty.json()["detail"][0]["msg"], empty.text

        long_text = " ".join(["the battery is great"] * 100)  # ~400 tokens; the tiny model's window is 64
        r = httpx.post(f"{srv.url}/predict", json={"texts": ["short and fine", long_text]}, timeout=30)
        assert [p["truncated"] for p in r.json()["predictions"]] == [False, True]
        metrics = httpx.get(f"{srv.url}/metrics").text
        assert _metric(metrics, "zero2one_truncated_texts_total") == 1.0


def mlflow_models_predict(tracking_uri: str, model_uri: str, given: dict | Path, cwd: Path) -> list:
    """`mlflow models predict` as a user types it - the venv's `mlflow`, run outside the repository (the model
    carries its own code) - on an input file or a payload written to one: its predictions."""
    if isinstance(given, dict):
        (cwd / "input.json").write_text(json.dumps(given))
        given = cwd / "input.json"
    out = subprocess.run(
        [str(Path(sys.executable).parent / "mlflow"), "models", "predict", "-m", model_uri, "-i", str(given)]
        + ["-t", "json", "--env-manager", "local"],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}, capture_output=True, text=True, timeout=300, cwd=cwd,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])["predictions"]


def test_mlflow_models_predict_on_the_champion_with_the_readme_input(registered, tmp_path):
    """Issue 12, item 15: the exact command and sample input the README gives, and plain lists in the pyfunc."""
    import mlflow

    from core.tracking import Tracking, TrackingConfig
    from core.workspace import Workspace

    ws, reg, _ = registered
    tracking = Tracking.resolve(TrackingConfig(), Workspace(root=str(ws)))
    example = ROOT / "serving" / "examples" / "predict_input.json"
    predictions = mlflow_models_predict(tracking.uri, f"models:/{reg.name}@champion", example, tmp_path)
    assert [p["label"] in {"negative", "neutral", "positive"} for p in predictions] == [True, True]

    tracking.activate()
    model = mlflow.pyfunc.load_model(f"models:/{reg.name}@champion")
    texts = json.loads(example.read_text())["inputs"]
    frame = model.predict(pd.DataFrame({"text": texts}))
    records = json.loads((ROOT / "serving" / "examples" / "predict_records.json").read_text())["dataframe_records"]
    python_model = model.unwrap_python_model()  # what MLflow hands over when no signature stands in the way
    for plain in (texts, records, pd.Series(texts)):
        assert python_model.predict(None, plain)["label"].tolist() == frame["label"].tolist()
