"""The `stage` flow: one pipeline stage as its own flow run, on whatever work pool its deployment names.

Deployed once per pool (`stage/<pool>`, deployments/prefect.yaml) and started by a pipeline whose config places
the stage there (flows/placement.py). It runs the stage function as the very task the pipeline would have run in
its own process - same retries-free attempt, same cache key - so a completed stage is reused from shared result
storage, whichever worker ran it. The parent retries the whole flow run, so a lost worker costs one attempt.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from core.errors import PipelineInputError
from core.orchestration import stage_task
from core.retry import RetryPolicy
from flows.placement import Outcome, dump_result, load_arguments, resolve_stage, write_outcome


@flow(name="stage", log_prints=True)
def run_stage(
    stage: str,
    arguments: dict[str, Any],
    outcome_uri: str,
    cache: bool = True,
    policy: RetryPolicy = RetryPolicy(),
) -> None:
    """Run `stage` ('tasks.<module>:<function>') on `arguments` and write its result to `outcome_uri` (JSON)."""
    fn = resolve_stage(stage)
    kwargs = load_arguments(fn, arguments)
    # One attempt here: the parent's retries start a new flow run, which may land on a healthier worker.
    once = policy.model_copy(update={"retries": 0})
    state = stage_task(fn, fn.__name__, once, cache=cache)(return_state=True, **kwargs)
    try:
        result = state.result()
    except PipelineInputError as e:  # the parent must not retry what the user has to fix
        write_outcome(outcome_uri, Outcome(user_error=str(e)))
        raise
    write_outcome(outcome_uri, Outcome(result=dump_result(fn, result), cached=state.name == "Cached"))
