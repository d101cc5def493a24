"""Micro-batching: concurrent requests share one forward pass.

A transformer's cost per text falls steeply with batch size, so the service collects the texts of
concurrent requests for up to `max_wait_ms` (or until `max_batch_size` texts are waiting), runs
them together in a worker thread, and hands each request its own slice. Written here because the
serving libraries that do this (Triton, TorchServe, Ray Serve) each bring a whole server with them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

BatchFn = Callable[[list], Awaitable[list]]


@dataclass
class _Pending:
    items: list
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class MicroBatcher:
    """`await batcher.submit(items)` -> one result per item (a text), computed in shared batches by `run_batch`.

    With `max_wait_ms=0` a batch is whatever is waiting when the model becomes free: no request
    waits for company when the service is idle, and under load the batches grow by themselves.
    """

    def __init__(self, run_batch: BatchFn, max_batch_size: int, max_wait_ms: float, on_batch=None):
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.on_batch = on_batch or (lambda size: None)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, items: list) -> list:
        pending = _Pending(items)
        await self._queue.put(pending)
        return await pending.future

    async def _collect(self) -> list[_Pending]:
        """One request, plus whatever else arrives before the batch is full or the wait is over."""
        batch = [await self._queue.get()]
        size = len(batch[0].items)
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while size < self.max_batch_size:
            timeout = deadline - asyncio.get_running_loop().time()
            if timeout <= 0 and self._queue.empty():
                break
            try:
                nxt = self._queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self._queue.get(), timeout)
            except (TimeoutError, asyncio.QueueEmpty):
                break
            batch.append(nxt)
            size += len(nxt.items)
        return batch

    async def _loop(self) -> None:
        while True:
            batch = await self._collect()
            items = [item for p in batch for item in p.items]
            self.on_batch(len(items))
            try:
                results = await self.run_batch(items)
            except Exception as e:  # the service reports it per request; the loop keeps serving
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(e)
                continue
            start = 0
            for p in batch:
                if not p.future.done():
                    p.future.set_result(results[start : start + len(p.items)])
                start += len(p.items)
