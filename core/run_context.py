"""Which Prefect flow run the code runs in, if any: lineage tags, fault markers and MLflow runs are keyed by it.

Standard library only at import (Prefect is imported when asked), so the lowest modules (`core/faults.py`,
`core/tracking.py`) can use it.
"""

from __future__ import annotations


def flow_run_id() -> str | None:
    """The id of the Prefect flow run we are in, if any."""
    try:
        from prefect.context import FlowRunContext, TaskRunContext
    except ImportError:  # pragma: no cover - Prefect is a dependency
        return None
    task_ctx = TaskRunContext.get()
    if task_ctx is not None and task_ctx.task_run.flow_run_id:
        return str(task_ctx.task_run.flow_run_id)
    flow_ctx = FlowRunContext.get()
    return str(flow_ctx.flow_run.id) if flow_ctx and flow_ctx.flow_run else None
