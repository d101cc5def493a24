"""Continuous batching for a causal LM: concurrent requests share every forward pass, each streams its own tokens.

A decoding loop written by hand because transformers' `generate()` cannot do this: it decodes a batch that is fixed
when it starts and returns (or streams, with `TextIteratorStreamer`, only batch size 1) to a single caller. Here the
running batch changes at every token boundary:

- a waiting request is prefilled (its prompt through the model once, its own KV cache), then its rows join the
  running batch: from the next step on it decodes with the others;
- a sequence that ends (end-of-sequence token, `max_tokens`, a stop string, or its client went away) leaves the
  batch at once.

How rows of different lengths share one cache is the runtime's business (`serving/kv_batches.py`: PyTorch, or the
registered ONNX graph). Forward passes run in a worker thread; the asyncio side only admits requests and delivers
each sequence's text to its own queue. Sampling (temperature, nucleus `top_p`) uses a `torch.Generator` per
sequence, so a seed gives the same answer whatever else shares the batch (up to float rounding across batch shapes).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from serving.kv_batches import KVBatch, Runtime

log = logging.getLogger("zero2one.serving")


@dataclass
class Sampling:
    """Per-request decoding settings (validated by the API layer)."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


@dataclass
class Event:
    """What a sequence's queue receives: text deltas, then one event with `finish_reason` set (or `error`)."""

    text: str = ""
    finish_reason: str | None = None  # "stop" or "length" on the last event
    error: BaseException | None = None


@dataclass
class Decoding:
    """One request in the engine. `record` is whatever the API layer wants back in `on_finished` (for the journal)."""

    prompt_ids: list[int]
    sampling: Sampling
    record: dict = field(default_factory=dict)
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    generated: list[int] = field(default_factory=list)
    logprob_sum: float = 0.0
    text: str = ""  # decoded answer so far (cut at a stop string once one appears)
    sent: int = 0  # characters of `text` already delivered
    finish_reason: str | None = None
    cancelled: bool = False
    submitted: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    last_token_at: float | None = None
    generator: torch.Generator | None = None

    @property
    def mean_token_prob(self) -> float:
        """Geometric mean probability of the generated tokens: the answer's confidence, 0..1."""
        return math.exp(self.logprob_sum / len(self.generated)) if self.generated else 0.0


@dataclass
class _Batch:
    """The running batch: one row per sequence; `pending` are sampled tokens not yet in the cache."""

    rows: list[Decoding]
    kv: KVBatch
    pending: list[int] = field(default_factory=list)  # the next input token of each row


class GenerationEngine:
    """`seq = engine.submit(prompt_ids, sampling)`, then read `seq.queue` until an event with `finish_reason`.

    `on_finished(seqs)` runs in the worker thread for every step's finished sequences *before* their last event is
    delivered: the service commits them to its journal there, so no answer is sent before it is logged.
    """

    def __init__(
        self,
        runtime: Runtime,
        tokenizer,
        max_batch_size: int,
        on_finished: Callable[[list[Decoding]], None] = lambda seqs: None,
        metrics=None,
    ):
        self.runtime, self.tokenizer, self.max_batch_size = runtime, tokenizer, max_batch_size
        self.on_finished, self.metrics = on_finished, metrics
        self.eos = (runtime.eos | {tokenizer.eos_token_id}) - {None}
        # Every row's answer is decoded at every token. The Rust tokenizer's own decode gives the same text when
        # transformers would not clean up spaces, at a fifth of the cost of transformers' wrapper (profiled).
        fast = getattr(tokenizer, "backend_tokenizer", None)
        plain = fast is not None and not getattr(tokenizer, "clean_up_tokenization_spaces", False)
        self._decode = fast.decode if plain else tokenizer.decode
        self._waiting: list[Decoding] = []
        self._batch: _Batch | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False

    # ------------------------------------------------------------------ asyncio side

    @property
    def active(self) -> int:
        """Sequences waiting or decoding (what a client disconnect must bring back down)."""
        batch = self._batch  # read once: the worker thread may replace it meanwhile
        return len(self._waiting) + (len(batch.rows) if batch else 0)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def submit(self, prompt_ids: list[int], sampling: Sampling, record: dict | None = None) -> Decoding:
        if self._closing:
            raise RuntimeError("this engine is stopping (the model is being replaced or the service stops)")
        seq = Decoding(list(prompt_ids), sampling, record or {})
        seed = sampling.seed if sampling.seed is not None else random.getrandbits(63)
        seq.generator = torch.Generator().manual_seed(seed)  # sampling runs on CPU
        self._waiting.append(seq)
        self._gauge()
        self._wake.set()
        return seq

    def cancel(self, seq: Decoding) -> None:
        """The client went away: the sequence leaves the batch at the next token boundary."""
        seq.cancelled = True
        if seq in self._waiting:
            self._waiting.remove(seq)
            self._gauge()

    async def stop(self) -> None:
        """Finish every submitted sequence, then end the loop (a replaced model drains this way)."""
        self._closing = True
        self._wake.set()
        if self._task:
            await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            if not self._waiting and self._batch is None:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            room = self.max_batch_size - (len(self._batch.rows) if self._batch else 0)
            admitted, self._waiting = self._waiting[:room], self._waiting[room:]
            try:
                events = await asyncio.to_thread(self._step, admitted)
            except Exception as e:  # a failed forward pass fails the sequences in it; the engine keeps serving
                log.exception("generation step failed")
                events = [(s, Event(error=e)) for s in admitted + (self._batch.rows if self._batch else [])]
                self._batch = None
            self._gauge()
            for seq, event in events:
                seq.queue.put_nowait(event)

    def _gauge(self) -> None:
        if self.metrics:
            self.metrics.gen_queue_depth.set(len(self._waiting))
            self.metrics.gen_active.set(self.active)

    # ------------------------------------------------------------------ worker thread

    def _step(self, admitted: list[Decoding]) -> list[tuple[Decoding, Event]]:
        """Admit (prefill) new sequences, then one decoding step for the whole batch; returns events to deliver."""
        events: list[tuple[Decoding, Event]] = []
        if self._batch is not None:
            self._batch = _keep(self._batch, [i for i, s in enumerate(self._batch.rows) if not s.cancelled])
        admitted = [s for s in admitted if not s.cancelled]
        if admitted:
            kv, logits = self.runtime.prefill([s.prompt_ids for s in admitted])
            self._join(self._advance(_Batch(admitted, kv), logits, events))
        if self._batch is not None:
            b = self._batch
            logits = b.kv.decode(b.pending)
            if self.metrics:
                self.metrics.gen_batch_size.observe(len(b.rows))
            self._batch = self._advance(b, logits, events)
        return events

    def _join(self, joined: _Batch | None) -> None:
        """The newly prefilled rows join the running batch (after its rows)."""
        if joined is None or self._batch is None:
            self._batch = self._batch or joined
            return
        self._batch.kv.extend(joined.kv)
        self._batch.rows += joined.rows
        self._batch.pending += joined.pending

    def _advance(self, batch: _Batch, logits: torch.Tensor, events: list) -> _Batch | None:
        """Sample one token per row, deliver text, and drop the rows that finished; None when none are left."""
        logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
        greedy = logprobs.argmax(dim=-1).tolist()  # one call for the batch: most requests are greedy
        tokens = [
            greedy[i] if seq.sampling.temperature <= 0 else _sample(logprobs[i], seq.sampling, seq.generator)
            for i, seq in enumerate(batch.rows)
        ]
        batch.pending = tokens
        chosen = logprobs.gather(1, torch.tensor(tokens)[:, None]).squeeze(1).tolist()
        now, finished = time.perf_counter(), []
        if self.metrics:
            self.metrics.gen_tokens.inc(len(tokens))
        for seq, token, logprob in zip(batch.rows, tokens, chosen, strict=True):
            seq.generated.append(token)
            seq.logprob_sum += logprob
            self._observe_token(seq, now)
            if self._finish_reason(seq, token):
                finished.append(seq)
            else:
                delta = self._safe_delta(seq)
                if delta:
                    events.append((seq, Event(text=delta)))
        if finished:
            self.on_finished(finished)  # the journal commit, before any of them gets its last event
            for seq in finished:
                events.append((seq, Event(text=seq.text[seq.sent :], finish_reason=seq.finish_reason)))  # may be ''
                seq.sent = len(seq.text)
        return _keep(batch, [i for i, s in enumerate(batch.rows) if s.finish_reason is None])

    def _finish_reason(self, seq: Decoding, token: int) -> str | None:
        if token in self.eos:
            seq.generated.pop()  # the end-of-sequence token is not part of the answer
            seq.finish_reason = "stop"
            seq.text = self._answer(seq)
            return seq.finish_reason
        seq.text = self._answer(seq)
        if seq.sampling.stop:
            cuts = [i for i in (seq.text.find(s) for s in seq.sampling.stop) if i >= 0]
            if cuts:
                seq.text, seq.finish_reason = seq.text[: min(cuts)], "stop"
                return seq.finish_reason
        if len(seq.generated) >= seq.sampling.max_tokens:
            seq.finish_reason = "length"
        return seq.finish_reason

    def _answer(self, seq: Decoding) -> str:
        return self._decode(seq.generated, skip_special_tokens=True)

    @staticmethod
    def _safe_delta(seq: Decoding) -> str:
        """New text that can be sent: held back while it ends in half a character or could begin a stop string."""
        text = seq.text.rstrip("\ufffd")  # a byte-level token may end inside a multi-byte character
        hold = max((k for s in seq.sampling.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        end = len(text) - hold
        if end <= seq.sent:
            return ""
        delta, seq.sent = text[seq.sent : end], end
        return delta

    def _observe_token(self, seq: Decoding, now: float) -> None:
        if self.metrics:
            if seq.first_token_at is None:
                self.metrics.gen_ttft.observe(now - seq.submitted)
            else:
                self.metrics.gen_inter_token.observe(now - seq.last_token_at)
        seq.first_token_at = seq.first_token_at or now
        seq.last_token_at = now


def _keep(batch: _Batch, rows: list[int]) -> _Batch | None:
    """The batch with only `rows` (None when that is none)."""
    if not rows:
        return None
    if len(rows) < len(batch.rows):
        batch.kv.keep(rows)
        batch.rows = [batch.rows[i] for i in rows]
        batch.pending = [batch.pending[i] for i in rows]
    return batch


def _sample(logprobs: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> int:
    """softmax(logits / T) cut to the smallest set with mass >= top_p (temperature > 0; greedy is done batched)."""
    probs = torch.softmax(logprobs / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        outside = sorted_probs.cumsum(0) - sorted_probs >= sampling.top_p  # keeps the token that crosses top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))
