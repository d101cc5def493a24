"""Micro-batching: concurrent requests share one forward pass.

A transformer's cost per text falls steeply with batch size, so the service collects the texts of
concurrent requests for up to `max_wait_ms` (or until `max_batch_size` texts are waiting), runs
them together in a worker thread, and hands each request its own slice. Written here because the
serving libraries that do this (Triton, TorchServe, Ray Serve) each bring a whole server with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

BatchFn = Callable[[list], Awaitable[list]]
_STOP = object()  # queued by `stop`: the loop ends when it reaches it


@dataclass
class _Pending:
    items: list
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class MicroBatcher:
    """`await batcher.submit(items)` -> one result per item (a text), computed in shared batches by `run_batch`.

    No batch holds more than `max_batch_size` items: a bigger request is split into several batches
    (and answered when all are done). With `max_wait_ms=0` a batch is whatever is waiting when the
    model becomes free: no request waits for company when the service is idle, and under load the
    batches grow by themselves.
    """

    def __init__(self, run_batch: BatchFn, max_batch_size: int, max_wait_ms: float, on_batch=None):
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.on_batch = on_batch or (lambda size: None)
        self._queue: asyncio.Queue = asyncio.Queue()
        self._held: _Pending | object | None = None  # taken from the queue but did not fit in the last batch
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Finish what was submitted before, then end the loop.

        Not a cancel: cancelling would drop a batch whose forward pass and journal commit are still
        running in their thread, and whose answers would then never be delivered.
        """
        if self._task:
            self._queue.put_nowait(_STOP)
            await self._task
            self._task = None

    async def submit(self, items: list) -> list:
        parts = [_Pending(items[i : i + self.max_batch_size]) for i in range(0, len(items), self.max_batch_size)]
        for part in parts:
            self._queue.put_nowait(part)
        results = await asyncio.gather(*(p.future for p in parts), return_exceptions=True)
        if errors := [r for r in results if isinstance(r, BaseException)]:
            raise errors[0]
        return [item for part in results for item in part]

    async def _next(self, timeout: float) -> _Pending | object:
        """The next part from the queue, waiting up to `timeout` (<= 0: only what is there now)."""
        if timeout <= 0:
            return self._queue.get_nowait()
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def _collect(self) -> list[_Pending] | None:
        """One part, plus whatever else arrives before the batch is full or the wait is over; None: stop."""
        first = self._held if self._held is not None else await self._queue.get()
        self._held = None
        if first is _STOP:
            return None
        batch, size = [first], len(first.items)
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while size < self.max_batch_size:
            try:
                nxt = await self._next(deadline - asyncio.get_running_loop().time())
            except (TimeoutError, asyncio.QueueEmpty):
                break
            if nxt is _STOP or size + len(nxt.items) > self.max_batch_size:
                self._held = nxt  # starts the next batch (or stops the loop after this one)
                break
            batch.append(nxt)
            size += len(nxt.items)
        return batch

    async def _loop(self) -> None:
        while (batch := await self._collect()) is not None:
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
        while not self._queue.empty():  # submitted after `stop`: refused, not left waiting forever
            if (p := self._queue.get_nowait()) is not _STOP and not p.future.done():
                p.future.set_exception(RuntimeError("the service is stopping"))
