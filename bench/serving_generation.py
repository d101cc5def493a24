"""Generation serving on loopback: our OpenAI-compatible service vs a naive endpoint calling `generate()` per request.

All serve the same registered generator (a random Llama of the chosen shape with the project's byte-level
tokenizer, logged with `log_generator` into a throwaway SQLite MLflow, with its int8 ONNX graph as the optimize
stage registers one that passed parity) as separate processes. One aiohttp load generator drives each in turn with
N clients sending requests back to back: ours with `stream: true` (server-sent events, continuous batching in
`serving/generation_engine.py`), once decoding with the int8 graph (what `generation_runtime: auto` serves) and once
with PyTorch; the naive one a FastAPI `def` route that runs transformers' `generate()` for its one prompt (FastAPI's
thread pool runs concurrent requests side by side, as a first endpoint would), and the same with a lock so
requests run one at a time, as a user does once side-by-side calls fight over the cores. Greedy decoding and an
end-of-sequence logit pinned to 0 make every answer exactly `--max-tokens` long on every side, so tokens/s compare
like for like. The sides run in rounds, back to back; tokens/s are medians over the rounds and each ratio is the
median of the rounds' side-by-side ratios (a load change on a shared machine hits a round, not a side). Then a soak
on ours (int8) checks for zero errors and, once the service has stopped (its shutdown
moves the journal into the log), that the prediction log holds exactly one row per answered request.

    python bench/serving_generation.py [--clients 8] [--seconds 8] [--rounds 3] [--soak 60] [--max-tokens 64]
        [--shape tiny]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pydantic import BaseModel  # noqa: E402

from bench._common import SCRATCH, median  # noqa: E402

NAME = "bench-generator"
NAIVE, SERIAL = "naive (generate() per request)", "naive, one generate() at a time"
PROMPTS = [
    "State the verdict and the aspects of this review.\nReview: The battery of this phone is great.",
    "Which product is this review about?\nReview: The screen is awful and the price is not fair.",
    "Hi",
    "State the verdict.\nReview: I bought it last week and the delivery was slow, but the sound is excellent.",
]


class NaiveRequest(BaseModel):  # module level: FastAPI resolves the (string) annotation from here
    prompt: str
    max_tokens: int = 64


def naive_server(port: int, model_dir: str, one_at_a_time: bool) -> None:
    """The baseline: transformers' `generate()` once per request, no batching across requests, no streaming.

    `one_at_a_time`: a lock around `generate()`, what a user does once concurrent calls fight over the cores (each
    brings torch's own thread pool: 8 at once on 2 cores run slower together than one by one).
    """
    import threading

    import torch
    import uvicorn
    from fastapi import FastAPI

    from models.generator import TextGenerator

    gen = TextGenerator(model_dir)
    app = FastAPI()
    lock = threading.Lock() if one_at_a_time else contextlib.nullcontext()

    @app.post("/v1/completions")
    def completions(req: NaiveRequest) -> dict:
        enc = gen.tokenizer([gen.render(req.prompt)], add_special_tokens=False, return_tensors="pt")
        with lock, torch.inference_mode():
            out = gen.model.generate(**enc, max_new_tokens=req.max_tokens, do_sample=False)
        new = out[0, enc["input_ids"].shape[1] :]
        text = gen.tokenizer.decode(new, skip_special_tokens=True)
        return {"choices": [{"text": text}], "usage": {"completion_tokens": int(new.numel())}}

    @app.get("/ready")
    def ready() -> dict:
        return {"ready": True}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def our_server(cfg_json: str) -> None:
    import uvicorn

    from serving.app import create_app
    from serving.config import ServeConfig

    cfg = ServeConfig.model_validate_json(cfg_json)
    uvicorn.run(create_app(cfg), host=cfg.host, port=cfg.port, log_level="warning")


def build_champion(ws: Path, shape_name: str) -> Path:
    """A random generator of `shape_name`, registered as `NAME@champion` in the workspace's MLflow."""
    import mlflow

    from models.decoder import SHAPES, build_causal_lm
    from models.onnx_decoder import build_decoder
    from tasks.causal_tokenizer import train_byte_bpe
    from tasks.generation_registry import log_generator
    from tasks.registry_names import TASK
    from tasks.tracking import Tracking, TrackingConfig
    from tasks.workspace import Workspace

    texts = ["The battery of this phone is great.", "Verdict: positive. Aspects: battery (positive)."] * 50
    tok = train_byte_bpe(texts + PROMPTS, vocab_size=800)
    shape = SHAPES[shape_name].model_copy(update={"tie_embeddings": False})
    model = build_causal_lm(shape, len(tok), tok.pad_token_id, tok.eos_token_id)
    model.lm_head.weight.data[tok.eos_token_id] = 0.0  # greedy answers never end early: same length on both sides
    folder = ws / "model"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    graph = build_decoder(folder, ws / "int8", "int8")
    tracking = Tracking.resolve(TrackingConfig(), Workspace(root=str(ws)))
    tracking.activate()
    with mlflow.start_run():
        info = log_generator(folder, PROMPTS[:1], onnx_dir=graph)
    version = mlflow.register_model(info.model_uri, NAME, tags={TASK: "generation"}).version
    tracking.client().set_registered_model_alias(NAME, "champion", version)
    return folder


async def _one(session, url: str, i: int, max_tokens: int, stream: bool) -> tuple[int, float]:
    """One request: (completion tokens, seconds to the first token - the whole answer when not streaming)."""
    body = {"model": NAME, "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens}
    start = time.perf_counter()
    if not stream:
        async with session.post(url, json=body) as r:
            r.raise_for_status()
            return (await r.json())["usage"]["completion_tokens"], time.perf_counter() - start
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    first, tokens, done = None, 0, False
    async with session.post(url, json=body) as r:
        r.raise_for_status()
        async for line in r.content:
            if not line.startswith(b"data: "):
                continue
            if line.strip() == b"data: [DONE]":
                done = True
                break
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif first is None and chunk["choices"][0]["text"]:
                first = time.perf_counter() - start
    if not done:
        raise RuntimeError("the stream ended without [DONE]")
    return tokens, first or 0.0


async def load(url: str, clients: int, seconds: float, max_tokens: int, stream: bool) -> dict:
    """`clients` clients sending requests back to back for `seconds`: tokens/s, answered, errors, first-token p50."""
    import aiohttp

    answered, errors, tokens, firsts = 0, 0, 0, []
    deadline = time.perf_counter() + seconds

    async def client(k: int, session) -> None:
        nonlocal answered, errors, tokens
        i = k
        while time.perf_counter() < deadline:
            try:
                n, first = await _one(session, url, i, max_tokens, stream)
                answered, tokens = answered + 1, tokens + n
                firsts.append(first)
            except Exception:
                errors += 1
            i += clients

    start = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        await asyncio.gather(*(client(k, session) for k in range(clients)))
    wall = time.perf_counter() - start
    first_p50 = median(firsts) if firsts else float("nan")
    return {"tokens_s": tokens / wall, "answered": answered, "errors": errors, "first_p50": first_p50, "tokens": tokens}


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args])


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


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown: our lifespan moves the journal into the log
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()


def _table(rows: list[dict]) -> None:
    print(f"\n{'server':<36}{'clients':>8}{'tokens/s':>10}{'answered':>10}{'errors':>8}{'1st token p50':>15}")
    for r in rows:
        print(
            f"{r['server']:<36}{r['clients']:>8}{r['tokens_s']:>10.1f}{r['answered']:>10}{r['errors']:>8}"
            f"{r['first_p50'] * 1000:>12.0f} ms"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=8.0, help="Length of each side's run in a round.")
    p.add_argument("--rounds", type=int, default=3, help="Rounds of all sides; tokens/s and ratios are medians.")
    p.add_argument("--soak", type=float, default=60.0, help="Length of the soak on our service (0: none).")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--shape", default="tiny", help="A models/decoder.py SHAPES name: tiny (CPU) or 100m.")
    args = p.parse_args()

    from serving.config import ServeConfig
    from tasks.prediction_log import read_window
    from tests.servers import free_port

    ws = SCRATCH / "ws"
    folder = build_champion(ws, args.shape)
    base = ServeConfig(model_name=NAME, workspace=str(ws), follow_events=False, log_flush_seconds=5)
    ours = {  # one journal each (two processes); both move their rows into the same prediction log
        runtime: base.model_copy(
            update={"port": free_port(), "generation_runtime": runtime, "journal": str(ws / f"journal-{runtime}.db")}
        )
        for runtime in ("onnx", "pytorch")
    }
    onnx, torch_cfg = ours["onnx"], ours["pytorch"]
    naive_port, serial_port = free_port(), free_port()
    procs = {
        "ours, int8 ONNX graph (streaming)": (_start(["--serve-ours", onnx.model_dump_json()]), onnx.port, True),
        "ours, PyTorch (streaming)": (_start(["--serve-ours", torch_cfg.model_dump_json()]), torch_cfg.port, True),
        NAIVE: (_start(["--serve-naive", str(naive_port), str(folder), "side-by-side"]), naive_port, False),
        SERIAL: (_start(["--serve-naive", str(serial_port), str(folder), "one-at-a-time"]), serial_port, False),
    }
    rows, answered_by_ours = [], 0
    try:
        for proc, port, _ in procs.values():
            _wait_ready(f"http://127.0.0.1:{port}/ready", proc)
        for clients in sorted({1, args.clients}):
            rounds = []  # each round runs every side once, back to back: a load change on the shared machine
            for _ in range(args.rounds):  # hits one round's sides alike, and the median round drops it
                measured = {}
                for name, (_, port, stream) in procs.items():
                    url = f"http://127.0.0.1:{port}/v1/completions"
                    warm = asyncio.run(load(url, clients, 1.0, args.max_tokens, stream))
                    measured[name] = asyncio.run(load(url, clients, args.seconds, args.max_tokens, stream))
                    answered_by_ours += (warm["answered"] + measured[name]["answered"]) if stream else 0
                rounds.append(measured)
            for name in procs:
                runs = [m[name] for m in rounds]
                row = {k: median([r[k] for r in runs]) for k in ("tokens_s", "first_p50")}
                row |= {k: sum(r[k] for r in runs) for k in ("answered", "errors")}
                ratios = {k: [m[name]["tokens_s"] / m[k]["tokens_s"] for m in rounds] for k in (NAIVE, SERIAL)}
                rows.append({"server": name, "clients": clients, "ratios": ratios} | row)
        _table(rows)
        for r in rows:
            if r["server"] not in (NAIVE, SERIAL):
                vs = [f"{median(x):.1f}x {k} ({', '.join(f'{v:.1f}' for v in x)})" for k, x in r["ratios"].items()]
                print(f"{r['clients']} clients, {r['server']}: " + "; ".join(vs))
        if args.soak > 0:
            url = f"http://127.0.0.1:{onnx.port}/v1/completions"
            soak = asyncio.run(load(url, args.clients, args.soak, args.max_tokens, True))
            answered_by_ours += soak["answered"]
            print(
                f"\nsoak: {args.soak:.0f} s at {args.clients} streaming clients (int8): {soak['answered']} answered, "
                f"{soak['errors']} errors, {soak['tokens_s']:.1f} tokens/s"
            )
    finally:
        for proc, _, _ in procs.values():
            if proc.poll() is None:
                _stop(proc)
    log = read_window(str(ws / "predictions"))  # after the graceful stop: the journal has moved into the log
    same = len(log) == answered_by_ours and log["request_id"].is_unique
    print(
        f"prediction log: {len(log)} rows, requests answered by ours (warm-ups included): {answered_by_ours}: "
        f"{'equal' if same else 'NOT EQUAL'}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-ours":
        our_server(sys.argv[2])
    elif len(sys.argv) > 4 and sys.argv[1] == "--serve-naive":
        naive_server(int(sys.argv[2]), sys.argv[3], sys.argv[4] == "one-at-a-time")
    else:
        main()
