"""OpenAI-compatible routes for a generator champion: `POST /v1/completions`, `POST /v1/chat/completions`,
`GET /v1/models`; `stream: true` answers as server-sent events (`data: {chunk}` ... `data: [DONE]`).

Requests go to the `GenerationEngine` of the version being served (a new engine per version: after a promotion the
old one finishes its sequences and stops). A completion's prompt is rendered as one user turn through the chat
template, as the registered pyfunc and the evaluation do, so the served answers are the evaluated ones. Every answer
is committed to the prediction journal (in the engine's step, before its final chunk or response is sent).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from serving.config import ServeConfig
from serving.generation_engine import Decoding, Event, GenerationEngine, Sampling
from serving.journal import PredictionJournal
from serving.metrics import ServiceMetrics
from serving.model_holder import LoadedModel, ModelHolder

log = logging.getLogger("zero2one.serving")


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")  # other OpenAI fields (user, logit_bias, ...) are accepted and unused

    model: str | None = Field(None, description="Any name: this service serves one model (see GET /v1/models).")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate; default: the service's.")
    temperature: float = Field(0.0, ge=0, le=2, description="0 = greedy (the evaluated answers); else sampling.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling: the smallest token set with this mass.")
    seed: int | None = Field(None, description="Same seed, same sample.")
    stop: str | list[str] | None = Field(None, description="Up to 4 strings; the answer ends before the first.")
    stream: bool = False
    stream_options: dict | None = Field(None, description='{"include_usage": true} adds a usage chunk.')
    n: int = Field(1, ge=1, le=1, description="One choice per request.")


class CompletionRequest(_Sampling):
    prompt: str | list[str] = Field(description="The prompt (one; a list must hold exactly one).")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: [{"type": "text", "text": ...}, ...]
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1, description="The conversation, ending with the user's turn.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Newer name of max_tokens.")


class OpenAIAPI:
    """The generation routes; `stop()` drains the engines (a sequence in flight is finished and journaled)."""

    def __init__(self, cfg: ServeConfig, holder: ModelHolder, journal: PredictionJournal, metrics: ServiceMetrics):
        self.cfg, self.holder, self.journal, self.metrics = cfg, holder, journal, metrics
        self.engine: GenerationEngine | None = None
        self._engine_version: str | None = None
        self._draining: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ engines

    def engine_for(self, model: LoadedModel) -> GenerationEngine:
        """The engine of `model` (the current version); the previous version's engine drains in the background."""
        if self.engine is None or self._engine_version != model.version:
            old = self.engine
            size = self.cfg.max_batch_size
            self.engine = GenerationEngine(model.runtime, model.generator.tokenizer, size, self._journal, self.metrics)
            self._engine_version = model.version
            self.engine.start()
            if old is not None:
                task = asyncio.create_task(old.stop())
                self._draining.add(task)
                task.add_done_callback(self._draining.discard)
        return self.engine

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
        if self._draining:
            await asyncio.gather(*self._draining)

    def _journal(self, seqs: list[Decoding]) -> None:
        """Engine callback, in its worker thread: the finished sequences' rows in one commit."""
        now = time.perf_counter()
        rows = []
        for s in seqs:
            r = s.record
            details = {
                "endpoint": r["endpoint"],
                "messages": r["messages"],
                "params": r["params"],
                "prompt_tokens": len(s.prompt_ids),
                "completion_tokens": len(s.generated),
                "latency_ms": round((now - r["started"]) * 1000, 3),
            }
            rows.append(
                (
                    datetime.now(UTC).isoformat(),
                    r["request_id"],
                    r["text"],
                    s.finish_reason,  # the log's `label` for generation rows
                    s.mean_token_prob,  # its `score`
                    "{}",
                    r["model_name"],
                    r["model_version"],
                    s.text,
                    json.dumps(details, ensure_ascii=False),
                )
            )
        self.journal.write(rows)

    # ------------------------------------------------------------------ routes

    async def models(self) -> dict:
        created = int(time.time())
        return {
            "object": "list",
            "data": [{"id": self.cfg.model_name, "object": "model", "created": created, "owned_by": "zero2one"}],
        }

    async def completions(self, req: CompletionRequest, request: Request):
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if len(prompts) != 1:
            raise HTTPException(400, f"prompt holds {len(prompts)} prompts; send one per request")
        return await self._answer(req, request, "completions", prompts[0], None)

    async def chat_completions(self, req: ChatCompletionRequest, request: Request):
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), messages[-1]["content"])
        return await self._answer(req, request, "chat", last_user, messages)

    async def _answer(self, req: _Sampling, request: Request, endpoint: str, text: str, messages: list | None):
        model, prompt_ids, sampling = await self._prepare(req, messages or text)
        request_id = ("chatcmpl-" if endpoint == "chat" else "cmpl-") + uuid.uuid4().hex
        params = {k: getattr(sampling, k) for k in ("max_tokens", "temperature", "top_p", "seed", "stop")}
        record = {
            "request_id": request_id,
            "endpoint": endpoint,
            "text": text,
            "messages": messages,
            "params": params,
            "model_name": model.name,
            "model_version": model.version,
            "started": time.perf_counter(),
        }
        seq = self.engine_for(model).submit(prompt_ids, sampling, record)
        chunks = _Chunks(endpoint, request_id, model.name)
        if req.stream:
            usage = bool((req.stream_options or {}).get("include_usage"))
            return StreamingResponse(
                self._stream(seq, chunks, usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return JSONResponse(await self._collect(seq, chunks))

    # ------------------------------------------------------------------ limits and tokenization

    async def _prepare(self, req: _Sampling, chat) -> tuple[LoadedModel, list[int], Sampling]:
        """Checks, then the prompt's tokens on the current version (again if a promotion swapped it meanwhile)."""
        requested = getattr(req, "max_completion_tokens", None) or req.max_tokens
        if requested is not None and requested > self.cfg.max_tokens_ceiling:
            raise HTTPException(
                422, f"max_tokens={requested} is above this service's ceiling of {self.cfg.max_tokens_ceiling}"
            )
        stop = [req.stop] if isinstance(req.stop, str) else [s for s in req.stop or [] if s]
        if len(stop) > 4:
            raise HTTPException(400, f"stop holds {len(stop)} strings; the limit is 4")
        while True:
            model = self.holder.current
            if model is None:
                where = f"models:/{self.cfg.model_name}@{self.cfg.alias}"
                raise HTTPException(503, f"no model loaded: {where} does not exist yet")
            if model.generator is None:
                raise HTTPException(
                    400, f"{model.name} v{model.version} is a classifier: use POST /predict, not the /v1 routes"
                )
            ids = await asyncio.to_thread(_prompt_ids, model.generator, chat)
            if model is self.holder.current:
                break
        context = model.generator.context
        max_tokens = requested or self.cfg.default_max_tokens
        if len(ids) >= context or (requested and len(ids) + requested > context):
            raise HTTPException(
                400,
                f"the prompt is {len(ids)} tokens and max_tokens is {requested or 'not set'}; "
                f"the model's context is {context} tokens (prompt + max_tokens must fit)",
            )
        sampling = Sampling(min(max_tokens, context - len(ids)), req.temperature, req.top_p, req.seed, stop)
        return model, ids, sampling

    # ------------------------------------------------------------------ answers

    async def _events(self, seq: Decoding) -> AsyncIterator[Event]:
        """The sequence's events up to its last; if the consumer goes away first, the engine drops the sequence."""
        done = False
        try:
            while not done:
                event = _coalesce(await seq.queue.get(), seq.queue)
                if event.error is not None:
                    raise event.error
                done = event.finish_reason is not None
                yield event
        finally:
            if not done:
                self.engine_cancel(seq)

    def engine_cancel(self, seq: Decoding) -> None:
        seq.cancelled = True  # whichever engine holds it drops it at the next token boundary
        if self.engine is not None:
            self.engine.cancel(seq)

    async def _collect(self, seq: Decoding, chunks: _Chunks) -> dict:
        finish = None
        try:
            async for event in self._events(seq):
                finish = event.finish_reason
        except Exception as e:
            log.exception("generation failed")
            raise HTTPException(500, f"generation failed: {type(e).__name__}") from e
        return chunks.full(seq.text, finish, _usage(seq))

    async def _stream(self, seq: Decoding, chunks: _Chunks, include_usage: bool) -> AsyncIterator[str]:
        events = self._events(seq)
        try:
            yield _sse(chunks.delta("", None, first=True))
            async for event in events:
                if event.text or event.finish_reason:
                    yield _sse(chunks.delta(event.text, event.finish_reason))
            if include_usage:
                yield _sse(chunks.usage(_usage(seq)))
            yield "data: [DONE]\n\n"
        except Exception as e:  # headers are sent: the error goes in the stream, as OpenAI does
            log.exception("generation failed")
            yield _sse({"error": {"message": f"generation failed: {type(e).__name__}", "type": "server_error"}})
        finally:
            await events.aclose()  # a disconnect lands here: the sequence leaves the batch


def _coalesce(event: Event, queue: asyncio.Queue) -> Event:
    """`event` plus the text deltas queued behind it, as one: under load a client gets fewer, longer chunks instead of
    falling behind the engine one chunk per token (each chunk costs more to send than a token costs to decode)."""
    while event.error is None and event.finish_reason is None and not queue.empty():
        following = queue.get_nowait()
        if following.error is not None:
            return following
        event = Event(text=event.text + following.text, finish_reason=following.finish_reason)
    return event


def _prompt_ids(generator, chat) -> list[int]:
    return generator.tokenizer(generator.render(chat), add_special_tokens=False)["input_ids"]


def _usage(seq: Decoding) -> dict:
    prompt, completion = len(seq.prompt_ids), len(seq.generated)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


class _Chunks:
    """Response and stream-chunk bodies in OpenAI's shapes, for completions (`text`) or chat (`message`/`delta`)."""

    def __init__(self, endpoint: str, request_id: str, model: str):
        self.chat, self.id, self.model, self.created = endpoint == "chat", request_id, model, int(time.time())

    def _base(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def full(self, text: str, finish: str | None, usage: dict) -> dict:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            return self._base("chat.completion") | {"choices": [choice], "usage": usage}
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        return self._base("text_completion") | {"choices": [choice], "usage": usage}

    def delta(self, text: str, finish: str | None, first: bool = False) -> dict:
        if self.chat:
            delta = {"role": "assistant", "content": text} if first else ({"content": text} if text else {})
            return self._base("chat.completion.chunk") | {
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
            }
        return self._base("text_completion") | {
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]
        }

    def usage(self, usage: dict) -> dict:
        return self._base("chat.completion.chunk" if self.chat else "text_completion") | {
            "choices": [],
            "usage": usage,
        }
