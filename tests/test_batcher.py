"""The micro-batcher on its own (no model, no server): batch sizes and a stop that loses no work."""

from __future__ import annotations

import asyncio

from serving.batcher import MicroBatcher


def _batcher(sizes: list[int], max_batch_size: int, delay: float = 0.0) -> MicroBatcher:
    async def run_batch(items: list) -> list:
        sizes.append(len(items))
        await asyncio.sleep(delay)
        return [item * 10 for item in items]

    return MicroBatcher(run_batch, max_batch_size=max_batch_size, max_wait_ms=20)


def test_no_forward_pass_is_bigger_than_max_batch_size():
    """Issue 12, item 13: one request of 256 texts made one forward pass of 256 with a maximum of 32."""

    async def scenario() -> tuple[list, list[list]]:
        sizes: list[int] = []
        batcher = _batcher(sizes, max_batch_size=32)
        batcher.start()
        requests = [list(range(256)), list(range(1000, 1005)), list(range(2000, 2040))]
        answers = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.stop()
        return sizes, answers

    sizes, answers = asyncio.run(scenario())
    assert max(sizes) <= 32 and sum(sizes) == 256 + 5 + 40
    assert answers[0] == [i * 10 for i in range(256)]  # each request gets its own results, in order
    assert answers[1] == [i * 10 for i in range(1000, 1005)] and answers[2] == [i * 10 for i in range(2000, 2040)]


def test_stop_lets_the_batch_in_flight_deliver_its_answers():
    async def scenario() -> list:
        batcher = _batcher([], max_batch_size=8, delay=0.3)
        batcher.start()
        answer = asyncio.create_task(batcher.submit([1, 2]))
        await asyncio.sleep(0.05)  # the batch is now running
        await batcher.stop()
        return await asyncio.wait_for(answer, 10)  # before the fix: cancelled with the loop, never answered

    assert asyncio.run(scenario()) == [10, 20]
