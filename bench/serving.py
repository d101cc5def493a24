"""Serving throughput on loopback: our service vs `mlflow models serve` vs a naive endpoint, and the model's own limit.

Three servers run as separate processes serving the same registered model: ours (`zero2one serve`),
MLflow's (`mlflow models serve -m models:/NAME@champion --env-manager local`, what an MLflow user
has without us: the headline's peer, no batching either way) and a naive PyTorch-eager endpoint without
batching. One async load generator (in this process, on the same cores) drives each in turn at
concurrency 1, 8 and 32 (one text per request). At each concurrency the three sides run in `--rounds`
rounds, each once per round for `--seconds`, the order rotated every round
(`bench/_common.alternating_rounds`); it prints the medians over the rounds of requests/s and p50/p99
latency, and each ratio as the median of the rounds' ratios with every round's value. The model-only
limit is the served graph called directly in this process, right after our side in each round, at the
mean batch size our service formed in that round: texts/s with no HTTP, JSON, queueing or journal. Then a
soak at concurrency 32 checks for zero errors and, once the service has shut down (which moves its
journal into the log), that the prediction log holds exactly the texts answered.

The load generator is aiohttp, not httpx: on this 2-core machine httpx's connection pool topped
out near 350 requests/s at concurrency 32 against an endpoint that does nothing (aiohttp: over
9,000), so it measured itself rather than the servers.

    python bench/serving.py [--seconds 10] [--rounds 3] [--soak 60] [--busy 2]

`--busy N` keeps N extra processes spinning on the CPU from the servers' start to the end (the
"log rows = texts answered on a loaded machine" check).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pydantic import BaseModel  # noqa: E402

from bench._common import ROOT, SCRATCH, alternating_rounds, load_text, median, ratio_text, round_ratios  # noqa: E402

TEXTS = [
    "the battery is great and the screen is excellent",
    "the hinge is not sturdy at all",
    "I bought it last week and the delivery was slow",
    "the price is fair but the sound is awful",
]
CONCURRENCY = (1, 8, 32)
TARGETS = {"mlflow-serve": 5.0, "limit": 0.70}  # at concurrency 32: ours / mlflow serve, ours / model-only limit


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


class Side(BaseModel):
    """One server under test: where to send a text and how to wrap it."""

    name: str
    url: str
    path: str
    ready_path: str
    mlflow_format: bool = False  # MLflow's scoring protocol instead of ours

    def body(self, text: str) -> dict:
        return {"dataframe_split": {"columns": ["text"], "data": [[text]]}} if self.mlflow_format else {"texts": [text]}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen) -> None:
    import httpx

    for _ in range(900):
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


async def _load(side: Side, concurrency: int, seconds: float) -> dict:
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
                async with session.post(f"{side.url}{side.path}", json=side.body(TEXTS[i % len(TEXTS)])) as r:
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
        "answered": sent - errors,
    }


def _batches(url: str) -> tuple[float, float]:
    """(texts, forward passes) so far, from our service's `zero2one_batch_size` histogram."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    value = {m[0]: float(m[1]) for m in re.findall(r"^zero2one_batch_size_(sum|count) (\S+)$", text, re.M)}
    return value["sum"], value["count"]


def model_limit(classify: Callable, batch_size: int, seconds: float = 3.0) -> float:
    """Texts/s of the served predictor called directly on batches of `batch_size` (no HTTP, no queue)."""
    texts = [TEXTS[i % len(TEXTS)] for i in range(batch_size)]
    classify(texts)  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        classify(texts)
        done += batch_size
    return done / (time.perf_counter() - start)


def _served_predictor(name: str, version: str) -> Callable:
    """The predictor our service calls, loaded the same way (through the registered pyfunc)."""
    import mlflow

    classifier = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model().classifier
    return lambda texts: classifier.classify(texts, batch_size=len(texts))


class Served(BaseModel):
    """The registered version all three servers serve."""

    name: str
    version: str
    model_dir: str  # the fine-tuned checkpoint (the naive server's PyTorch model)
    tracking_uri: str


def _champion(ws: Path, train: bool) -> Served:
    """Train and register a tiny model in `ws` (and make it champion), or take the champion already there."""
    from core.tracking import Tracking, TrackingConfig
    from core.workspace import Workspace

    tracking = Tracking.resolve(TrackingConfig(), Workspace(root=str(ws)))
    if train:
        from flows.config import load_config
        from flows.pipeline import pipeline

        print("training and registering a tiny model ...", flush=True)
        overrides = [f"workspace.root={ws}", "pretrain.max_steps=100", "finetune.epochs=2"]
        reg = pipeline(load_config(ROOT / "configs" / "tiny.yaml", overrides)).registered
        tracking.activate()
        tracking.client().set_registered_model_alias(reg.name, "champion", reg.version)
    tracking.activate()
    from core.registry_names import DEFAULT_MODEL_NAME as name

    mv = tracking.client().get_model_version_by_alias(name, "champion")
    from core.registry_names import LINEAGE_CHECKPOINT_URI, read_tag

    checkpoint = read_tag(mv.tags, LINEAGE_CHECKPOINT_URI)
    return Served(name=name, version=str(mv.version), model_dir=checkpoint, tracking_uri=tracking.uri)


def _start(ws: Path, served: Served) -> tuple[list[Side], list[subprocess.Popen]]:
    venv_bin = str(Path(sys.executable).parent)  # `mlflow models serve` starts `uvicorn` from PATH
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": served.tracking_uri}
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    ports = {name: _port() for name in ("ours", "mlflow-serve", "naive")}
    commands = {
        "ours": [sys.executable, "-m", "cli", "serve", "--workspace", str(ws), "--port", str(ports["ours"])],
        "mlflow-serve": [f"{venv_bin}/mlflow", "models", "serve", "-m", f"models:/{served.name}@champion"]
        + ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(ports["mlflow-serve"])],
        "naive": [sys.executable, __file__, "--naive-server", str(ports["naive"]), served.model_dir],
    }
    procs = {name: subprocess.Popen(cmd, cwd=ROOT, env=env) for name, cmd in commands.items()}
    sides = [
        Side(name="ours", url=f"http://127.0.0.1:{ports['ours']}", path="/predict", ready_path="/ready"),
        Side(
            name="mlflow-serve",
            url=f"http://127.0.0.1:{ports['mlflow-serve']}",
            path="/invocations",
            ready_path="/ping",
            mlflow_format=True,
        ),
        Side(name="naive", url=f"http://127.0.0.1:{ports['naive']}", path="/predict", ready_path="/ready"),
    ]
    try:
        for side in sides:
            _wait_ready(f"{side.url}{side.ready_path}", procs[side.name])
    except BaseException:
        for p in procs.values():
            p.terminate()
        raise
    return sides, [procs[s.name] for s in sides]


def _print_rows(rows: list[dict]) -> None:
    """Medians over the rounds; the ratios are medians of per-round ratios (three decimals: a target sits there)."""
    print(
        f"\n{'conc.':>5} | {'ours rps':>8} {'p50':>6} {'p99':>6} | {'mlflow rps':>10} {'p99':>6} | {'naive rps':>9} "
        f"{'p99':>6} | {'batch':>5} {'limit t/s':>9}"
    )
    for r in rows:
        o, m, n = r["ours"], r["mlflow-serve"], r["naive"]
        print(
            f"{r['c']:>5} | {o['rps']:8.1f} {o['p50']:6.1f} {o['p99']:6.1f} | {m['rps']:10.1f} {m['p99']:6.1f} | "
            f"{n['rps']:9.1f} {n['p99']:6.1f} | {r['batch']:5.1f} {r['limit']:9.1f}   (errors: ours {o['errors']}, "
            f"mlflow {m['errors']}, naive {n['errors']})"
        )
    for r in rows:
        ratios = r["ratios"]
        print(
            f"concurrency {r['c']}: ours / mlflow serve {ratio_text(ratios['mlflow-serve'], 3)}; ours / limit "
            f"{ratio_text(ratios['limit'], 3)}; ours / naive {ratio_text(ratios['naive'], 3)}"
        )
    last = rows[-1]["ratios"]
    for key, target in TARGETS.items():
        got = median(last[key])
        print(
            f"target at concurrency 32, ours / {key} >= {target}: {got:.3f} -> {'met' if got >= target else 'NOT met'}"
        )


def _rounds(sides: list[Side], c: int, seconds: float, rounds: int, classify: Callable) -> dict:
    """One concurrency: the three sides in rotated rounds; medians per side, per-round ratios."""
    ours = sides[0]

    def ours_side() -> dict:
        texts_before, passes_before = _batches(ours.url)
        result = asyncio.run(_load(ours, c, seconds))
        texts_after, passes_after = _batches(ours.url)
        result["batch"] = (texts_after - texts_before) / max(passes_after - passes_before, 1)
        # Right after ours (the machine is shared: the closer in time, the fairer the ratio).
        result["limit"] = model_limit(classify, max(round(result["batch"]), 1), seconds=seconds / 2)
        return result

    runs = {"ours": ours_side} | {s.name: (lambda s=s: asyncio.run(_load(s, c, seconds))) for s in sides[1:]}
    results = alternating_rounds(runs, rounds)
    row: dict = {"c": c, "answered": sum(r["ours"]["answered"] for r in results)}
    for name in runs:
        row[name] = {k: median([r[name][k] for r in results]) for k in ("rps", "p50", "p99")}
        row[name]["errors"] = sum(r[name]["errors"] for r in results)
    row["batch"] = median([r["ours"]["batch"] for r in results])
    row["limit"] = median([r["ours"]["limit"] for r in results])
    rps = lambda side: side["rps"]  # noqa: E731
    row["ratios"] = {name: round_ratios(results, "ours", name, rps) for name in ("mlflow-serve", "naive")}
    row["ratios"]["limit"] = [r["ours"]["rps"] / r["ours"]["limit"] for r in results]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="each side's run in a round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per concurrency; medians of per-round ratios")
    parser.add_argument("--soak", type=float, default=60)
    parser.add_argument("--busy", type=int, default=0, help="busy-loop processes to run beside the servers")
    parser.add_argument("--workspace", type=Path, help="serve the champion already in this workspace (no training)")
    parser.add_argument("--naive-server", nargs=2, metavar=("PORT", "MODEL_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_server:
        return naive_server(int(args.naive_server[0]), args.naive_server[1])

    from core.prediction_log import is_prediction_log, read_window

    ws = args.workspace or SCRATCH / "ws"
    served = _champion(ws, train=args.workspace is None)
    log_uri = str(ws / "predictions")
    logged_before = len(read_window(log_uri)) if is_prediction_log(log_uri) else 0
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    procs: list[subprocess.Popen] = []
    try:
        sides, procs = _start(ws, served)
        print(f"before the load: {load_text()}, {args.busy} busy loops", flush=True)
        classify = _served_predictor(served.name, served.version)
        rows = [_rounds(sides, c, args.seconds, args.rounds, classify) for c in CONCURRENCY]
        print(f"after the rounds: {load_text()}", flush=True)
        answered = sum(r["answered"] for r in rows)  # one text per request: every one must reach the prediction log
        soak = asyncio.run(_load(sides[0], 32, args.soak))
        answered += soak["answered"]
        procs[0].terminate()  # a graceful stop moves the journal's last rows into the log
        procs[0].wait(timeout=120)
        load = os.getloadavg()[0]
        for p in procs[1:]:
            p.terminate()
            p.wait(timeout=30)
        _print_rows(rows)
        logged = len(read_window(log_uri)) - logged_before
        print(
            f"\nsoak: {args.soak:.0f} s at concurrency 32: {soak['sent']} requests, {soak['errors']} errors, "
            f"{soak['rps']:.1f} rps, p99 {soak['p99']:.0f} ms; load average at the end {load:.1f}\n"
            f"prediction log after shutdown: {logged} rows for {answered} texts answered in the whole run "
            f"({'equal' if logged == answered else 'NOT equal'})"
        )
    finally:
        for p in procs + busy:
            p.terminate()
            p.wait(timeout=30)


if __name__ == "__main__":
    main()
