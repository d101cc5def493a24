"""Serving throughput on loopback: our service vs a naive PyTorch-eager endpoint without batching.

Both servers run as separate processes serving the same registered model; one async load generator
drives each in turn at concurrency 1, 8 and 32 and prints requests/s, p50/p99 latency and the
ratio. Then a soak at concurrency 32 checks for zero errors and, once the service has shut down
(which moves its journal into the log), that the prediction log holds exactly the texts sent.

The load generator is aiohttp, not httpx: on this 2-core machine httpx's connection pool topped
out near 350 requests/s at concurrency 32 against an endpoint that does nothing (aiohttp: over
9,000), so it measured itself rather than the servers.

    python bench/serving.py [--seconds 10] [--soak 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pydantic import BaseModel  # noqa: E402

from bench._common import ROOT, SCRATCH  # noqa: E402

TEXTS = [
    "the battery is great and the screen is excellent",
    "the hinge is not sturdy at all",
    "I bought it last week and the delivery was slow",
    "the price is fair but the sound is awful",
]


class NaiveRequest(BaseModel):  # module level: FastAPI resolves the (string) annotation from here
    texts: list[str]


def naive_server(port: int, model_dir: str) -> None:
    """The baseline: one forward pass per request, PyTorch eager, no batching."""
    import uvicorn
    from fastapi import FastAPI

    from models.classifier import TextClassifier

    clf = TextClassifier(model_dir)
    app = FastAPI()

    @app.post("/predict")
    def predict(req: NaiveRequest) -> dict:
        probs = clf.predict_proba(req.texts)
        return {"predictions": [{"label": clf.labels[p.argmax()], "score": float(p.max())} for p in probs]}

    @app.get("/ready")
    def ready() -> dict:
        return {"ready": True}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str) -> None:
    import httpx

    for _ in range(300):
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


async def _load(url: str, concurrency: int, seconds: float) -> dict:
    """`concurrency` clients, each sending one-text requests back to back for `seconds`."""
    import aiohttp

    latencies, errors, sent = [], 0, 0
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession, k: int) -> None:
        nonlocal errors, sent
        i = k
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                async with session.post(f"{url}/predict", json={"texts": [TEXTS[i % len(TEXTS)]]}) as r:
                    await r.read()
                    ok = r.status == 200
            except aiohttp.ClientError:
                ok = False
            latencies.append(time.perf_counter() - t0)
            sent += 1
            errors += not ok
            i += concurrency

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session, k) for k in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rps": sent / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": errors,
        "sent": sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--soak", type=float, default=60)
    parser.add_argument("--naive-server", nargs=2, metavar=("PORT", "MODEL_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_server:
        return naive_server(int(args.naive_server[0]), args.naive_server[1])

    from flows.config import load_config
    from flows.pipeline import pipeline
    from tasks.prediction_log import read_window

    ws = SCRATCH / "ws"
    print("training and registering a tiny model ...", flush=True)
    result = pipeline(
        load_config(
            ROOT / "configs" / "tiny.yaml",
            [
                f"workspace.root={ws}",
                "pretrain.max_steps=100",
                "finetune.epochs=2",
            ],
        )
    )
    reg = result.registered
    from tasks.tracking import Tracking, TrackingConfig
    from tasks.workspace import Workspace

    Tracking.resolve(TrackingConfig(), Workspace(root=str(ws))).client().set_registered_model_alias(
        reg.name, "champion", reg.version
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ours_port, naive_port = _port(), _port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "serve", "--workspace", str(ws), "--port", str(ours_port)],
            cwd=ROOT,
            env=env,
        ),
        subprocess.Popen([sys.executable, __file__, "--naive-server", str(naive_port), result.model.uri], env=env),
    ]
    try:
        ours, naive = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{naive_port}"
        _wait_ready(ours)
        _wait_ready(naive)
        print(
            f"\n{'concurrency':>11} | {'ours rps':>9} {'p50 ms':>7} {'p99 ms':>7} | {'naive rps':>9} {'p50 ms':>7} "
            f"{'p99 ms':>7} | ratio"
        )
        texts_sent = 0  # one text per request: every one must end up in the prediction log
        for c in (1, 8, 32):
            a = asyncio.run(_load(ours, c, args.seconds))
            texts_sent += a["sent"]
            b = asyncio.run(_load(naive, c, args.seconds))
            print(
                f"{c:>11} | {a['rps']:9.1f} {a['p50']:7.1f} {a['p99']:7.1f} | {b['rps']:9.1f} {b['p50']:7.1f} "
                f"{b['p99']:7.1f} | {a['rps'] / b['rps']:.2f}x  (errors: ours {a['errors']}, naive {b['errors']})"
            )
        soak = asyncio.run(_load(ours, 32, args.soak))
        texts_sent += soak["sent"]
        procs[0].terminate()  # a graceful stop moves the journal's last rows into the log
        procs[0].wait(timeout=60)
        logged = len(read_window(str(ws / "predictions")))
        print(
            f"\nsoak: {args.soak:.0f} s at concurrency 32: {soak['sent']} requests, {soak['errors']} errors, "
            f"{soak['rps']:.1f} rps, p99 {soak['p99']:.0f} ms\nprediction log after shutdown: {logged} rows for "
            f"{texts_sent} texts sent in the whole run ({'equal' if logged == texts_sent else 'NOT equal'})"
        )
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)


if __name__ == "__main__":
    main()
