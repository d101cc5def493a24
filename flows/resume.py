"""A flow run resumed after approval answers for what the person saw, not for what changed while it waited.

On resume Prefect runs the flow again from its start in the same flow run. Stages cached on their inputs come back
from the cache; the stages that read the world afresh in every run (the data, the gate against the champion, the
model card) are cached for this flow run only (`THIS_RUN`): a resumed run gets what it read, judged and wrote
before it suspended - the same data, so the same version and verdict - while a new run still reads the world anew.
The parent MLflow run is the one this flow run opened before (`pipeline_run`): one flow run, one parent run.
A retrain suspends its own run, the pipeline inside it being a finished subflow: the `pipeline` flow persists its
result, so on resume Prefect hands the finished subflow's result back instead of running it again, and the retrain
reuses the data it wrote for it (`THIS_RUN`).

A code change deployed while a run waits still misses the caches keyed on the code (core/orchestration.py); the
resumed run then trains and registers again and asks about the new version.
"""

from __future__ import annotations

from typing import Literal

from core.orchestration import stage_task
from core.retry import RetryPolicy
from core.run_context import flow_run_id
from core.tracking import Tracking, open_pipeline_run

THIS_RUN: Literal["run"] = "run"  # `_Stages(cache=THIS_RUN)`: cached for this flow run only


def this_run_only():
    """The stage's inputs (less its parent MLflow run, which says nothing about the work) in this flow run."""
    from prefect.cache_policies import INPUTS, RUN_ID, TASK_SOURCE

    return (INPUTS - "parent_run_id") + TASK_SOURCE + RUN_ID


def stage_task_for(fn, policy: RetryPolicy, cache: bool | str):
    """`stage_task` of `fn` cached on its inputs (True), not at all (False) or for this flow run only (THIS_RUN)."""
    task = stage_task(fn, fn.__name__, policy, cache=cache is True)
    return task.with_options(cache_policy=this_run_only()) if cache == THIS_RUN else task


def pipeline_run(tracking: Tracking, name: str, params: dict, tags: dict[str, str]) -> tuple[str, bool]:
    """The flow run's parent MLflow run and whether it is resumed: the finished one this flow run opened before it
    suspended, else a new one."""
    if (run := flow_run_id()) is not None:
        client = tracking.client()
        found = client.search_runs(
            [tracking.activate()],
            filter_string=f"tags.`prefect.flow_run_id` = '{run}' and tags.`zero2one.stage` = 'pipeline'",
            max_results=1,
            order_by=["start_time DESC"],
        )
        if found and found[0].info.status == "FINISHED":
            return found[0].info.run_id, True
    return open_pipeline_run(tracking, name, params, tags), False
