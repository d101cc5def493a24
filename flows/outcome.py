"""What a flow run did, where people look first: its name, its tags and its final state's message.

Prefect names runs `brave-otter` and every run that did not crash is green; a refused challenger or a
drifted window must be visible in the runs list. So at the end a flow renames its run
(`pipeline · zero2one-classifier v2 · refused`), tags it with the outcome (`champion`, `refused`, `drift`)
and ends in a Completed state whose message says why.
"""

from __future__ import annotations

from typing import Any

from core import reporting


def mark_flow_run(name: str, tags: list[str]) -> None:
    """Rename the current flow run and add `tags` to it; a Prefect error here is a warning, never a failure."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(ctx.flow_run.id)
            client.update_flow_run(run.id, name=name, tags=sorted(set(run.tags) | set(tags)))
    except Exception as e:  # the run did its work; a label must not fail it
        reporting.logger().warning("could not rename flow run %s to %r: %s", ctx.flow_run.id, name, e)


def completed(result: Any, message: str) -> Any:
    """The flow's return value as a Completed state with `message` (the caller still gets `result`)."""
    from prefect.context import FlowRunContext
    from prefect.states import Completed

    if FlowRunContext.get() is None:  # called as a plain function (tests, benchmarks)
        return result
    return Completed(message=message, data=result)
