"""Continuous batching for a causal LM: concurrent requests share every forward pass, each streams its own tokens.

A decoding loop written by hand because transformers' `generate()` cannot do this: it decodes a batch that is fixed
when it starts and returns (or streams, with `TextIteratorStreamer`, only batch size 1) to a single caller. Here the
running batch changes at every token boundary:

- a waiting request is prefilled (its prompt through the model once, its own KV cache), then its cache is left-padded
  and concatenated to the running batch's `DynamicCache`: from the next step on it decodes with the others;
- a sequence that ends (end-of-sequence token, `max_tokens`, a stop string, or its client went away) is removed from
  the batch (`batch_select_indices`) at once, and columns that only padding uses any more are cut off.

Positions come from the attention mask (`cumsum - 1`), so RoPE sees each sequence as if it were alone. Forward passes
run in a worker thread; the asyncio side only admits requests and delivers each sequence's text to its own queue.
Sampling (temperature, nucleus `top_p`) uses a `torch.Generator` per sequence, so a seed gives the same answer
whatever else shares the batch (up to float rounding across batch shapes).
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
from transformers import DynamicCache

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
class Sequence:
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

    rows: list[Sequence]
    cache: DynamicCache
    mask: torch.Tensor  # [rows, cached length] 1 for real tokens, 0 for left padding
    pending: torch.Tensor  # [rows] the next input token of each row


class GenerationEngine:
    """`seq = engine.submit(prompt_ids, sampling)`, then read `seq.queue` until an event with `finish_reason`.

    `on_finished(seqs)` runs in the worker thread for every step's finished sequences *before* their last event is
    delivered: the service commits them to its journal there, so no answer is sent before it is logged.
    """

    def __init__(
        self,
        model,
        tokenizer,
        max_batch_size: int,
        on_finished: Callable[[list[Sequence]], None] = lambda seqs: None,
        metrics=None,
    ):
        self.model, self.tokenizer, self.max_batch_size = model, tokenizer, max_batch_size
        self.on_finished, self.metrics = on_finished, metrics
        eos = model.generation_config.eos_token_id
        self.eos = (set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}) - {None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.device = model.device
        self._waiting: list[Sequence] = []
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

    def submit(self, prompt_ids: list[int], sampling: Sampling, record: dict | None = None) -> Sequence:
        if self._closing:
            raise RuntimeError("this engine is stopping (the model is being replaced or the service stops)")
        seq = Sequence(list(prompt_ids), sampling, record or {})
        seed = sampling.seed if sampling.seed is not None else random.getrandbits(63)
        seq.generator = torch.Generator(device=self.device).manual_seed(seed)
        self._waiting.append(seq)
        self._gauge()
        self._wake.set()
        return seq

    def cancel(self, seq: Sequence) -> None:
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

    @torch.inference_mode()
    def _step(self, admitted: list[Sequence]) -> list[tuple[Sequence, Event]]:
        """Admit (prefill) new sequences, then one decoding step for the whole batch; returns events to deliver."""
        events: list[tuple[Sequence, Event]] = []
        self._drop([s for s in (self._batch.rows if self._batch else []) if s.cancelled])
        admitted = [s for s in admitted if not s.cancelled]
        if admitted:
            joined = self._prefill(admitted, events)
            self._merge(joined)
        if self._batch is not None:
            self._decode(events)
        return events

    def _prefill(self, seqs: list[Sequence], events: list) -> _Batch | None:
        """The prompts through the model once (left-padded together); each samples its first token."""
        width = max(len(s.prompt_ids) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s.prompt_ids) :] = torch.tensor(s.prompt_ids)
            mask[i, width - len(s.prompt_ids) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        cache = DynamicCache()
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask), cache=cache, use_cache=True)
        batch = _Batch(list(seqs), cache, mask, torch.zeros(len(seqs), dtype=torch.long, device=self.device))
        return self._advance(batch, out.logits[:, -1, :], events)

    def _decode(self, events: list) -> None:
        b = self._batch
        mask = torch.cat([b.mask, torch.ones((len(b.rows), 1), dtype=b.mask.dtype, device=self.device)], dim=1)
        positions = (mask.sum(dim=1, keepdim=True) - 1).long()
        out = self.model(
            input_ids=b.pending[:, None],
            attention_mask=mask,
            position_ids=positions,
            cache=b.cache,
            use_cache=True,
        )
        b.mask = mask
        if self.metrics:
            self.metrics.gen_batch_size.observe(len(b.rows))
        self._batch = self._advance(b, out.logits[:, -1, :], events)

    def _advance(self, batch: _Batch, logits: torch.Tensor, events: list) -> _Batch | None:
        """Sample one token per row, deliver text, and drop the rows that finished; None when none are left."""
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        greedy = logprobs.argmax(dim=-1).tolist()  # one call for the batch: most requests are greedy
        tokens = [
            greedy[i] if seq.sampling.temperature <= 0 else _sample(logprobs[i], seq.sampling, seq.generator)
            for i, seq in enumerate(batch.rows)
        ]
        batch.pending = torch.tensor(tokens, dtype=torch.long, device=self.device)
        chosen = logprobs.gather(1, batch.pending[:, None]).squeeze(1).tolist()
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
        return _select(batch, [i for i, s in enumerate(batch.rows) if s.finish_reason is None])

    def _finish_reason(self, seq: Sequence, token: int) -> str | None:
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

    def _answer(self, seq: Sequence) -> str:
        return self.tokenizer.decode(seq.generated, skip_special_tokens=True)

    @staticmethod
    def _safe_delta(seq: Sequence) -> str:
        """New text that can be sent: held back while it ends in half a character or could begin a stop string."""
        text = seq.text.rstrip("\ufffd")  # a byte-level token may end inside a multi-byte character
        hold = max((k for s in seq.sampling.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        end = len(text) - hold
        if end <= seq.sent:
            return ""
        delta, seq.sent = text[seq.sent : end], end
        return delta

    def _observe_token(self, seq: Sequence, now: float) -> None:
        if self.metrics:
            if seq.first_token_at is None:
                self.metrics.gen_ttft.observe(now - seq.submitted)
            else:
                self.metrics.gen_inter_token.observe(now - seq.last_token_at)
        seq.first_token_at = seq.first_token_at or now
        seq.last_token_at = now

    def _merge(self, joined: _Batch | None) -> None:
        """Append the newly prefilled rows to the running batch: left-pad the shorter cache, concatenate rows."""
        if joined is None:
            return
        if self._batch is None:
            self._batch = joined
            return
        a, b = self._batch, joined
        width = max(a.mask.shape[1], b.mask.shape[1])
        layers = [
            (_cat_left_padded(ka, kb, width), _cat_left_padded(va, vb, width))
            for (ka, va, *_), (kb, vb, *_) in zip(a.cache, b.cache, strict=True)
        ]
        mask = _cat_left_padded(a.mask, b.mask, width, dim=1)
        cache = DynamicCache(ddp_cache_data=layers)
        self._batch = _Batch(a.rows + b.rows, cache, mask, torch.cat([a.pending, b.pending]))

    def _drop(self, seqs: list[Sequence]) -> None:
        if seqs and self._batch is not None:
            keep = [i for i, s in enumerate(self._batch.rows) if s not in seqs]
            self._batch = _select(self._batch, keep)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding, as `generate()` computes them."""
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


def _pad_left(t: torch.Tensor, width: int, dim: int = -2) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def _cat_left_padded(a: torch.Tensor, b: torch.Tensor, width: int, dim: int = -2) -> torch.Tensor:
    return torch.cat([_pad_left(a, width, dim), _pad_left(b, width, dim)])


def _select(batch: _Batch, keep: list[int]) -> _Batch | None:
    """The batch with only rows `keep`, and without the leading columns that are padding in every row left."""
    if not keep:
        return None
    if len(keep) < len(batch.rows):
        index = torch.tensor(keep, device=batch.mask.device)
        batch.cache.batch_select_indices(index)
        batch.rows = [batch.rows[i] for i in keep]
        batch.mask, batch.pending = batch.mask[index], batch.pending[index]
    used = batch.mask.any(dim=0).nonzero()
    start = int(used[0]) if len(used) else 0
    if start > 0:
        batch.mask = batch.mask[:, start:]
        for layer in batch.cache.layers:
            layer.keys, layer.values = layer.keys[..., start:, :], layer.values[..., start:, :]
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
