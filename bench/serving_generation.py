"""Generation serving on loopback: our OpenAI-compatible service vs naive endpoints calling the model per request.

All serve the same registered generator (a random Llama of the chosen shape with the project's byte-level
tokenizer, logged with `log_generator` into a throwaway SQLite MLflow, with its int8 ONNX graph as the optimize
stage registers one that passed parity) as separate processes. One aiohttp load generator drives each in turn with
N clients sending requests back to back. The sides:

- ours, streaming (server-sent events, continuous batching in `serving/generation_engine.py`), decoding with the
  int8 graph (what `generation_runtime: auto` serves) and, as a second process, with PyTorch;
- naive FastAPI `def` routes, no streaming, no batching across requests: transformers' `generate()` per request
  side by side (FastAPI's thread pool, as a first endpoint would; every call brings torch's thread pool); the same
  with one torch thread per request (what a user does after seeing those pools fight over the cores); `generate()`
  one at a time (a lock); and the int8 graph through ONNX Runtime GenAI one request at a time.

Greedy decoding and an end-of-sequence logit pinned to 0 make every answer exactly `--max-tokens` long on every side,
so tokens/s compare like for like. The sides run in rounds, each side once per round, the order rotated every round
(`bench/_common.alternating_rounds`); tokens/s are medians over the rounds and each ratio is the median of the
rounds' ratios. Beside the headline (ours, int8, vs each naive side) it prints like-for-like ratios: batching at the
same runtime (PyTorch engine vs PyTorch one at a time; int8 engine vs int8 one at a time) apart from the runtime
(int8 vs PyTorch, engine and one at a time). Time to first token is compared only between the streaming sides (a
naive side's first token arrives with its last). Then a soak on ours (int8) checks for zero errors and, once the
service has stopped (its shutdown moves the journal into the log), that the prediction log holds exactly one row per
answered request.

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

from bench._common import SCRATCH, alternating_rounds, load_text, median, ratio_text, round_ratios  # noqa: E402

NAME = "bench-generator"
INT8, TORCH = "ours, int8 ONNX graph (streaming)", "ours, PyTorch (streaming)"
NAIVE, ONE_THREAD = "naive, generate() side by side", "naive, side by side, 1 torch thread each"
SERIAL, SERIAL_INT8 = "naive, one generate() at a time", "naive, int8 graph one at a time"
NAIVE_MODES = {NAIVE: "side-by-side", ONE_THREAD: "one-thread", SERIAL: "one-at-a-time", SERIAL_INT8: "int8-serial"}
COMPARISONS = [  # (what it measures, numerator, denominator)
    *[("headline", INT8, naive) for naive in NAIVE_MODES],
    ("batching, PyTorch", TORCH, SERIAL),
    ("batching, int8", INT8, SERIAL_INT8),
    ("runtime, engine", INT8, TORCH),
    ("runtime, one at a time", SERIAL_INT8, SERIAL),
]
PROMPTS = [
    "State the verdict and the aspects of this review.\nReview: The battery of this phone is great.",
    "Which product is this review about?\nReview: The screen is awful and the price is not fair.",
    "Hi",
    "State the verdict.\nReview: I bought it last week and the delivery was slow, but the sound is excellent.",
]


class NaiveRequest(BaseModel):  # module level: FastAPI resolves the (string) annotation from here
    prompt: str
    max_tokens: int = 64


def naive_server(port: int, model_dir: str, graph_dir: str, mode: str) -> None:
    """A baseline: the model once per request, no batching across requests, no streaming.

    `mode`: side-by-side (FastAPI's thread pool runs concurrent `generate()` calls at once, each with torch's own
    thread pool); one-thread (the same, one torch thread per call); one-at-a-time (a lock around `generate()`);
    int8-serial (the int8 graph in `graph_dir` through ONNX Runtime GenAI, one request at a time).
    """
    import threading

    import torch
    import uvicorn
    from fastapi import FastAPI

    from models.generator import TextGenerator

    gen = TextGenerator(model_dir)
    app = FastAPI()
    lock = threading.Lock() if mode in ("one-at-a-time", "int8-serial") else contextlib.nullcontext()
    if mode == "int8-serial":
        from models.onnx_decoder import OrtDecoder

        decoder = OrtDecoder(graph_dir, threads=0)  # 0: one thread per core, as our engine's session has

    def run(ids: list[int], max_tokens: int) -> list[int]:
        if mode == "int8-serial":
            return decoder.generate([ids], max_tokens)[0]
        if mode == "one-thread":
            torch.set_num_threads(1)  # per calling thread: FastAPI's pool threads each set their own
        x = torch.tensor([ids])
        out = gen.model.generate(
            x, attention_mask=torch.ones_like(x), max_new_tokens=max_tokens, do_sample=False, pad_token_id=0
        )
        return out[0, len(ids) :].tolist()

    @app.post("/v1/completions")
    def completions(req: NaiveRequest) -> dict:
        ids = gen.tokenizer(gen.render(req.prompt), add_special_tokens=False)["input_ids"]
        with lock, torch.inference_mode():
            new = run(ids, req.max_tokens)
        text = gen.tokenizer.decode(new, skip_special_tokens=True)
        return {"choices": [{"text": text}], "usage": {"completion_tokens": len(new)}}

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


def build_champion(ws: Path, shape_name: str) -> tuple[Path, Path]:
    """A random generator of `shape_name`, registered as `NAME@champion` in the workspace's MLflow: (model, graph)."""
    import mlflow

    from core.registry_names import TASK
    from core.tracking import Tracking, TrackingConfig
    from core.workspace import Workspace
    from models.decoder import SHAPES, build_causal_lm
    from models.onnx_decoder import build_decoder
    from tasks.kinds.generation.registry import log_generator
    from tasks.kinds.generation.tokenizer import train_byte_bpe

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
    return folder, graph


async def _one(session, url: str, i: int, max_tokens: int, stream: bool) -> tuple[int, float | None, float]:
    """One request: (completion tokens, seconds to the first token - None when not streaming -, to the answer)."""
    body = {"model": NAME, "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens}
    start = time.perf_counter()
    if not stream:
        async with session.post(url, json=body) as r:
            r.raise_for_status()
            return (await r.json())["usage"]["completion_tokens"], None, time.perf_counter() - start
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
    return tokens, first or 0.0, time.perf_counter() - start


async def load(url: str, clients: int, seconds: float, max_tokens: int, stream: bool) -> dict:
    """`clients` clients sending requests back to back for `seconds`: tokens/s, answered, errors, latency p50s."""
    import aiohttp

    answered, errors, tokens, firsts, answers = 0, 0, 0, [], []
    deadline = time.perf_counter() + seconds

    async def client(k: int, session) -> None:
        nonlocal answered, errors, tokens
        i = k
        while time.perf_counter() < deadline:
            try:
                n, first, whole = await _one(session, url, i, max_tokens, stream)
                answered, tokens = answered + 1, tokens + n
                answers.append(whole)
                if first is not None:
                    firsts.append(first)
            except Exception:
                errors += 1
            i += clients

    start = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        await asyncio.gather(*(client(k, session) for k in range(clients)))
    wall = time.perf_counter() - start
    p50 = {"first_p50": median(firsts) if firsts else float("nan"), "answer_p50": median(answers) if answers else 0.0}
    return {"tokens_s": tokens / wall, "answered": answered, "errors": errors, "tokens": tokens} | p50


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
    head = f"{'server':<42}{'clients':>8}{'tokens/s':>10}{'answered':>10}{'errors':>8}"
    print(f"\n{head}{'1st token p50':>15}{'answer p50':>12}")
    for r in rows:
        first = f"{r['first_p50'] * 1000:>12.0f} ms" if r["first_p50"] == r["first_p50"] else f"{'-':>15}"  # nan: -
        print(
            f"{r['server']:<42}{r['clients']:>8}{r['tokens_s']:>10.1f}{r['answered']:>10}{r['errors']:>8}"
            f"{first}{r['answer_p50'] * 1000:>9.0f} ms"
        )


def _comparisons(clients: int, rounds: list[dict]) -> None:
    """Median of per-round tokens/s ratios, headline and like for like; first-token p50 between streaming sides."""
    print(f"\n{clients} client(s), tokens/s ratios (median of rounds, then each round):")
    for what, num, den in COMPARISONS:
        ratios = round_ratios(rounds, num, den, lambda m: m["tokens_s"])
        print(f"  {what:<24}{num} / {den}: {ratio_text(ratios)}")
    ttft = round_ratios(rounds, TORCH, INT8, lambda m: m["first_p50"])
    print(f"  time to first token (streaming sides only): {TORCH} / {INT8}: {ratio_text(ttft)}")


def _measure(procs: dict, args, counter: list[int]) -> list[dict]:
    """Every side at 1 and `--clients` clients, in rounds with the order rotated; one row per side and count."""
    rows = []

    def side(name: str, clients: int):
        def run() -> dict:
            _, port, stream = procs[name]
            url = f"http://127.0.0.1:{port}/v1/completions"
            warm = asyncio.run(load(url, clients, 1.0, args.max_tokens, stream))
            measured = asyncio.run(load(url, clients, args.seconds, args.max_tokens, stream))
            counter[0] += (warm["answered"] + measured["answered"]) if stream else 0  # ours log every answer
            return measured

        return run

    for clients in sorted({1, args.clients}):
        rounds = alternating_rounds({name: side(name, clients) for name in procs}, args.rounds)
        for name in procs:
            runs = [m[name] for m in rounds]
            row = {k: median([r[k] for r in runs]) for k in ("tokens_s", "first_p50", "answer_p50")}
            row |= {k: sum(r[k] for r in runs) for k in ("answered", "errors")}
            rows.append({"server": name, "clients": clients} | row)
        _comparisons(clients, rounds)
    return rows


def _servers(ws: Path, shape: str) -> dict:
    """Start every side's server (ours twice: int8 graph and PyTorch), {name: (process, port, streams)}."""
    from serving.config import ServeConfig
    from tests.servers import free_port

    folder, graph = build_champion(ws, shape)
    base = ServeConfig(model_name=NAME, workspace=str(ws), follow_events=False, log_flush_seconds=5)
    procs = {}
    for name, runtime in ((INT8, "onnx"), (TORCH, "pytorch")):  # one journal each, one prediction log
        update = {"port": free_port(), "generation_runtime": runtime, "journal": str(ws / f"journal-{runtime}.db")}
        cfg = base.model_copy(update=update)
        procs[name] = (_start(["--serve-ours", cfg.model_dump_json()]), cfg.port, True)
    for name, mode in NAIVE_MODES.items():
        port = free_port()
        procs[name] = (_start(["--serve-naive", str(port), str(folder), str(graph), mode]), port, False)
    return procs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=8.0, help="Length of each side's run in a round.")
    p.add_argument("--rounds", type=int, default=3, help="Rounds of all sides; tokens/s and ratios are medians.")
    p.add_argument("--soak", type=float, default=60.0, help="Length of the soak on our service (0: none).")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--shape", default="tiny", help="A models/decoder.py SHAPES name: tiny (CPU) or 100m.")
    args = p.parse_args()

    from core.prediction_log import read_window

    ws = SCRATCH / "ws"
    procs = _servers(ws, args.shape)
    answered_by_ours = [0]
    try:
        for proc, port, _ in procs.values():
            _wait_ready(f"http://127.0.0.1:{port}/ready", proc)
        print(f"before the load: {load_text()}", flush=True)
        rows = _measure(procs, args, answered_by_ours)
        print(f"after the rounds: {load_text()}")
        _table(rows)
        if args.soak > 0:
            url = f"http://127.0.0.1:{procs[INT8][1]}/v1/completions"
            soak = asyncio.run(load(url, args.clients, args.soak, args.max_tokens, True))
            answered_by_ours[0] += soak["answered"]
            print(
                f"\nsoak: {args.soak:.0f} s at {args.clients} streaming clients (int8): {soak['answered']} answered, "
                f"{soak['errors']} errors, {soak['tokens_s']:.1f} tokens/s"
            )
    finally:
        for proc, _, _ in procs.values():
            if proc.poll() is None:
                _stop(proc)
    log = read_window(str(ws / "predictions"))  # after the graceful stop: the journal has moved into the log
    same = len(log) == answered_by_ours[0] and log["request_id"].is_unique
    print(
        f"prediction log: {len(log)} rows, requests answered by ours (warm-ups included): {answered_by_ours[0]}: "
        f"{'equal' if same else 'NOT EQUAL'}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-ours":
        our_server(sys.argv[2])
    elif len(sys.argv) > 5 and sys.argv[1] == "--serve-naive":
        naive_server(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        main()
