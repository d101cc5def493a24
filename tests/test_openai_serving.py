"""The OpenAI-compatible routes for a generator champion, through the official `openai` client and a real uvicorn
server on 127.0.0.1: answers streamed and not, shared forward passes, limits, cancellation, the prediction log, and a
promotion while streams are running.

The champion is a tiny random Llama with the project's byte-level tokenizer, logged with the project's
`log_generator` and registered into a temporary SQLite MLflow (seconds, no training). Its end-of-sequence logit is
pinned to 0 so greedy answers run to `max_tokens` (a random model would otherwise stop at random places).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import mlflow
import openai
import pytest
import uvicorn

from core.prediction_log import read_window
from core.registry_names import TASK
from core.tracking import Tracking, TrackingConfig
from core.workspace import Workspace
from models.decoder import DecoderShape, build_causal_lm
from models.generator import TextGenerator
from serving.config import ServeConfig
from serving.service import Service
from tasks.kinds.generation.registry import log_generator
from tasks.kinds.generation.tokenizer import train_byte_bpe
from tests.servers import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent

NAME, TOKEN = "generator-serving-test", "s3cret"
CANCELLED: list[str] = []  # requests whose client hung up: answered with 200 headers, but never finished or logged
PROMPTS = [
    "State the verdict.",
    "Which product is this review about?\nReview: The battery of this phone is great.",
    "Hi",
    "State the verdict and the aspects of this review.\nReview: The screen is awful and the price is not fair.",
]


def _save_tiny_generator(folder: Path) -> Path:
    texts = ["The battery of this phone is great.", "Verdict: positive. Aspects: battery (positive)."] * 20
    tok = train_byte_bpe(texts + PROMPTS, vocab_size=320)
    shape = DecoderShape(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128, max_length=512)
    model = build_causal_lm(
        shape.model_copy(update={"tie_embeddings": False}), len(tok), tok.pad_token_id, tok.eos_token_id
    )
    model.lm_head.weight.data[tok.eos_token_id] = 0.0  # see the module docstring
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _register(tracking: Tracking, folder: Path) -> str:
    tracking.activate()
    with mlflow.start_run():
        info = log_generator(folder, PROMPTS[:1])
    version = mlflow.register_model(info.model_uri, NAME, tags={TASK: "generation"}).version
    tracking.client().set_registered_model_alias(NAME, "champion", version)
    return str(version)


class _Server:
    """The service under uvicorn in a thread; `service` is reachable for its engine and journal."""

    def __init__(self, cfg: ServeConfig):
        self.service = Service(cfg)
        self.server = uvicorn.Server(
            uvicorn.Config(self.service.app, host="127.0.0.1", port=cfg.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{cfg.port}"

    def start(self) -> _Server:
        self.thread.start()
        wait_until(lambda: httpx.get(f"{self.url}/ready", timeout=2).status_code == 200, "the service", 60)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def active(self) -> int:
        engine = self.service.openai.engine
        return engine.active if engine else 0


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One registered tiny generator and one running service for the whole module (~10 s)."""
    root = tmp_path_factory.mktemp("openai-serving")
    ws = Workspace(root=str(root / "ws"))
    tracking = Tracking.resolve(TrackingConfig(), ws)
    folder = _save_tiny_generator(root / "model")
    version = _register(tracking, folder)
    cfg = ServeConfig(
        model_name=NAME,
        workspace=str(root / "ws"),
        port=free_port(),
        token=TOKEN,
        follow_events=False,
        poll_seconds=3600,
        log_flush_seconds=3600,  # the test flushes itself
        max_tokens_ceiling=400,
        max_body_bytes=8000,
        max_batch_size=8,
    )
    server = _Server(cfg).start()
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0, timeout=60)
    try:
        yield server, client, TextGenerator(folder), tracking, folder, version
    finally:
        server.stop()


def _stream_text(stream, chat: bool) -> tuple[str, list[str], str | None]:
    parts, finish = [], None
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        parts.append((choice.delta.content or "") if chat else choice.text)
        finish = choice.finish_reason or finish
    return "".join(parts), [p for p in parts if p], finish


def test_completions_and_chat_streamed_and_not(served):
    server, client, generator, *_ = served
    assert [m.id for m in client.models.list().data] == [NAME]
    prompt = PROMPTS[1]
    expected = generator.generate([prompt], max_new_tokens=12)[0]  # transformers' generate(), greedy

    done = client.completions.create(model=NAME, prompt=prompt, max_tokens=12)
    assert done.choices[0].text.strip() == expected and done.choices[0].finish_reason == "length"
    assert done.usage.completion_tokens == 12 and done.usage.prompt_tokens > 5

    text, parts, finish = _stream_text(
        client.completions.create(model=NAME, prompt=prompt, max_tokens=12, stream=True), chat=False
    )
    assert text == done.choices[0].text and len(parts) > 1 and finish == "length"

    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": prompt}]
    chat = client.chat.completions.create(model=NAME, messages=messages, max_tokens=10)
    assert chat.choices[0].message.role == "assistant" and chat.choices[0].message.content
    streamed = client.chat.completions.create(
        model=NAME, messages=messages, max_tokens=10, stream=True, stream_options={"include_usage": True}
    )
    text, parts, _ = _stream_text(streamed, chat=True)
    assert text == chat.choices[0].message.content and len(parts) > 1

    one_turn = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": prompt}], max_tokens=12)
    assert one_turn.choices[0].message.content == done.choices[0].text  # a completion's prompt is one user turn

    sampled = [
        client.completions.create(model=NAME, prompt=prompt, max_tokens=8, temperature=1.0, top_p=0.9, seed=7)
        for _ in range(2)
    ]
    assert sampled[0].choices[0].text == sampled[1].choices[0].text  # same seed, same sample
    full = done.choices[0].text
    cut = client.completions.create(model=NAME, prompt=prompt, max_tokens=12, stop=["\n\n\n", full[3:6]])
    assert cut.choices[0].finish_reason == "stop" and cut.choices[0].text == full[: full.find(full[3:6])]
    stream = client.completions.create(model=NAME, prompt=prompt, max_tokens=12, stop=[full[3:6]], stream=True)
    assert _stream_text(stream, chat=False)[0::2] == (cut.choices[0].text, "stop")  # no part of the stop string leaks


def test_concurrent_requests_share_forward_passes_and_get_their_own_answers(served):
    server, client, generator, *_ = served
    expected = {p: generator.generate([p], max_new_tokens=16)[0] for p in PROMPTS}
    sample = server.service.metrics.registry.get_sample_value
    steps_before, rows_before = (sample(f"zero2one_generation_batch_size_{k}") for k in ("count", "sum"))

    def ask(i: int) -> tuple[str, str]:
        prompt = PROMPTS[i % len(PROMPTS)]
        time.sleep(0.01 * i)  # arrivals spread out: later requests join a batch that is already decoding
        stream = client.completions.create(model=NAME, prompt=prompt, max_tokens=16, stream=True)
        return prompt, _stream_text(stream, chat=False)[0]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert all(text.strip() == expected[prompt] for prompt, text in answers)  # left padding changes no answer
    steps = sample("zero2one_generation_batch_size_count") - steps_before
    rows = sample("zero2one_generation_batch_size_sum") - rows_before
    assert rows / steps > 1.5, f"{rows:.0f} sequence-steps in {steps:.0f} forward passes: requests did not share"
    assert server.active == 0


def test_limits_give_clear_errors(served):
    server, client, generator, *_ = served
    long_prompt = " ".join(["battery"] * 600)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=NAME, prompt=long_prompt, max_tokens=4)
    n = len(generator.tokenizer(generator.render(long_prompt), add_special_tokens=False)["input_ids"])
    assert f"the prompt is {n} tokens" in str(e.value) and "context is 512 tokens" in str(e.value)
    with pytest.raises(openai.UnprocessableEntityError, match="max_tokens=401 is above this service's ceiling of 400"):
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Hi"}], max_tokens=401)
    with pytest.raises(openai.APIStatusError, match="larger than this service's limit of 8000 bytes") as e:
        client.completions.create(model=NAME, prompt="x" * 10000, max_tokens=4)
    assert e.value.status_code == 413
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=client.base_url, api_key="wrong", max_retries=0).models.list()
    r = httpx.post(f"{server.url}/predict", json={"texts": ["hi"]}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400 and "is a generator: use POST /v1/completions" in r.json()["detail"]
    assert server.active == 0


def test_a_client_that_goes_away_mid_stream_leaves_nothing_behind(served):
    server, client, *_ = served
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(client.completions.create, model=NAME, prompt=PROMPTS[0], max_tokens=400)
        stream = client.completions.create(model=NAME, prompt=PROMPTS[1], max_tokens=400, stream=True)
        chunks = iter(stream)
        received = [next(chunks) for _ in range(3)]
        stream.close()  # the client hangs up after 3 chunks
        CANCELLED.append(received[0].id)
        assert other.result().choices[0].finish_reason == "length"  # its neighbour in the batch finished
    wait_until(lambda: server.active == 0, "the cancelled sequence to leave the engine", 10)
    assert server.service.metrics.registry.get_sample_value("zero2one_generation_active_sequences") == 0
    server.service.journal.flush()  # had it run to its 400 tokens instead of stopping, it would be logged
    assert CANCELLED[-1] not in set(read_window(server.service.journal.log_uri)["request_id"])


def test_hot_reload_during_streaming_traffic_fails_no_request(served):
    server, client, _, tracking, folder, version = served

    def ask(i: int) -> str:
        stream = client.completions.create(model=NAME, prompt=PROMPTS[i % 4], max_tokens=40, stream=True)
        text, _, finish = _stream_text(stream, chat=False)
        assert finish == "length" and text
        return text

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(ask, i) for i in range(24)]
        time.sleep(0.3)
        new = _register(tracking, folder)  # a promotion: the alias moves to a new version
        reload = httpx.post(f"{server.url}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        assert reload.json() == {"changed": True, "version": new}
        answers = [f.result() for f in futures]  # raises if any request failed
    assert len(answers) == 24 and new != version
    assert httpx.get(f"{server.url}/ready").json()["version"] == new
    wait_until(lambda: not server.service.openai._draining, "the old version's engine to drain", 10)
    assert server.active == 0


def test_every_answered_request_is_in_the_prediction_log(served):
    """Runs last: every request the tests above got an answer for is one row, with what the monitor needs."""
    server, client, *_ = served
    chat = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
    server.service.journal.flush()
    log = read_window(server.service.journal.log_uri)
    answered = server.service.metrics.registry.get_sample_value("zero2one_requests_total", {"status": "200"})
    answered -= len(CANCELLED)
    assert len(log) == answered and log["request_id"].is_unique and not set(CANCELLED) & set(log["request_id"])
    row = log[log["request_id"] == chat.id].iloc[0]
    details = json.loads(row["generation"])
    assert row["text"] == "Hi" and row["response"] == chat.choices[0].message.content and row["label"] == "length"
    assert details["messages"] == [{"role": "user", "content": "Hi"}] and details["params"]["max_tokens"] == 5
    assert details["completion_tokens"] == 5 and details["prompt_tokens"] == chat.usage.prompt_tokens
    assert details["latency_ms"] > 0 and 0 < row["score"] <= 1 and row["model_name"] == NAME


def test_kill_9_under_streaming_load_loses_no_answered_request(served):
    """`zero2one serve` killed mid-traffic: every stream that got its last chunk is in the log after a restart."""
    import signal
    import subprocess
    import sys

    server, _, _, tracking, *_ = served
    ws = Path(server.service.cfg.workspace)
    port = free_port()
    args = ["--workspace", str(ws), "--model", NAME, "--port", str(port), "--log-flush-seconds", "3600"]
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", *args, "--no-follow-events"], cwd=ROOT)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=30)
    answered: list[str] = []
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200, "serve", 90)

        def ask(i: int) -> None:
            try:
                stream = client.completions.create(model=NAME, prompt=PROMPTS[i % 4], max_tokens=30, stream=True)
                ids = {chunk.id for chunk in stream if chunk.choices and chunk.choices[0].finish_reason}
            except (openai.APIError, httpx.HTTPError):
                return  # killed before its last chunk: not answered
            answered.extend(ids)
            if len(answered) >= 20 and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(ask, range(200)))
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert 20 <= len(answered) < 200
    restarted = _Server(server.service.cfg.model_copy(update={"port": free_port()})).start()  # moves the journal
    restarted.stop()
    logged = set(read_window(server.service.journal.log_uri)["request_id"])
    assert not set(answered) - logged, f"{len(set(answered) - logged)} answered requests are not in the log"


def test_a_version_with_a_graph_that_passed_parity_is_served_by_onnx_runtime(tmp_path):
    """The optimize stage registers the graph that passed its parity gate as the version's `onnx` artifact; the
    service then decodes with it (continuous batching over its right-padded cache) and answers as PyTorch does."""
    from models.onnx_decoder import build_decoder

    folder = _save_tiny_generator(tmp_path / "model")
    graph = build_decoder(folder, tmp_path / "fp32", "fp32")  # fp32: greedy answers equal PyTorch's exactly
    tracking = Tracking.resolve(TrackingConfig(), Workspace(root=str(tmp_path / "ws")))
    tracking.activate()
    with mlflow.start_run():
        info = log_generator(folder, PROMPTS[:1], onnx_dir=graph)
    version = mlflow.register_model(info.model_uri, NAME, tags={TASK: "generation"}).version
    tracking.client().set_registered_model_alias(NAME, "champion", version)
    cfg = ServeConfig(
        model_name=NAME, workspace=str(tmp_path / "ws"), port=free_port(), follow_events=False, max_batch_size=8
    )
    server = _Server(cfg).start()
    try:
        assert httpx.get(f"{server.url}/ready").json()["runtime"] == "onnx"
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=60)

        def ask(i: int) -> tuple[str, str]:
            time.sleep(0.01 * i)  # later requests join a batch that is already decoding
            stream = client.completions.create(model=NAME, prompt=PROMPTS[i % 4], max_tokens=16, stream=True)
            return PROMPTS[i % 4], _stream_text(stream, chat=False)[0]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(8)))
    finally:
        server.stop()
    expected = {p: a for p, a in zip(PROMPTS, TextGenerator(folder).generate(PROMPTS, max_new_tokens=16), strict=True)}
    assert all(text.strip() == expected[prompt] for prompt, text in answers)
