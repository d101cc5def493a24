"""Stage placement: run a stage as its own flow run on another work pool (a GPU pool for training), and wait for it.

Route: one generic `stage` flow (flows/stage.py) deployed once per pool (`stage/<pool>` in deployments/prefect.yaml),
started from the pipeline with `prefect.deployments.run_deployment`, which links the child flow run to the calling
task in the UI and waits for it. Prefect 3.9's other route, infrastructure-bound flows (`Flow.submit_to_work_pool`),
refuses a pool without bundle storage (`prefect work-pool storage configure`, an S3/GCS/Azure upload step from a
provider package) and ships a pickled bundle of the flow; a deployment runs the checkout or image the pool already
has, works on process pools as they are, and shows up in the UI like every other deployment.

Inputs travel as the stage's pydantic inputs in JSON and are rebuilt from the stage function's type hints in the child;
the result comes back as a small JSON file under the workspace (every worker of a placed pipeline shares the workspace
anyway: stages hand each other URIs in it). Retries wrap the dispatch here, so a crashed child (its worker killed) is
started again, maybe on another worker; the child runs the stage as the same cached task as in-process, so a re-run
reuses it when Prefect's results live on shared storage (PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK).
"""

from __future__ import annotations

import inspect
import json
import typing
import uuid
from collections.abc import Callable
from typing import Any

import fsspec
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from core.errors import PipelineInputError
from core.retry import RetryPolicy
from core.workspace import Workspace

FLOW_NAME = "stage"


# The names `_Stages` knows stages by (their functions' names), so that a typo in the config fails early.


class StagePlacement(BaseModel):
    """One work pool for one stage."""

    model_config = ConfigDict(extra="forbid")

    pool: str = Field(description="Work pool; its deployment `stage/<pool>` (deployments/prefect.yaml) runs the stage.")
    job_variables: dict[str, Any] = Field(
        default_factory=dict, description="Per-run overrides of the pool's job template, e.g. {gpu_limit: 2}."
    )

    @property
    def deployment(self) -> str:
        return f"{FLOW_NAME}/{self.pool}"


class PlacementConfig(BaseModel):
    """Where each stage runs. Nothing set: every stage in the pipeline's own process."""

    model_config = ConfigDict(extra="forbid")

    default: StagePlacement | None = Field(
        None, description="Where stages not listed under `stages` run; null: in the pipeline's own process."
    )
    stages: dict[str, StagePlacement] = Field(
        default_factory=dict,
        description="Per stage (prepare_data, pretrain, finetune, ...): its work pool. The names are checked against "
        "the model kinds' stages by PipelineConfig.",
    )

    def where(self, stage: str) -> StagePlacement | None:
        return self.stages.get(stage, self.default)


class PlacedStageError(RuntimeError):
    """The child flow run of a placed stage did not complete (crashed, failed, cancelled or timed out)."""


def stage_path(fn: Callable) -> str:
    return f"{fn.__module__}:{fn.__name__}"


def resolve_stage(path: str) -> Callable:
    """`tasks.training.pretrain:pretrain` -> the function; only stage modules (tasks.*) may be named."""
    import importlib

    module, _, name = path.partition(":")
    if not module.startswith("tasks.") or not name:
        raise PipelineInputError(f"stage '{path}' is not a stage function (expected 'tasks.<module>:<function>')")
    return getattr(importlib.import_module(module), name)


def dump_arguments(fn: Callable, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by name, as JSON (pydantic models through their own serializers)."""
    hints = typing.get_type_hints(fn)
    bound = inspect.signature(fn).bind(*args, **kwargs)
    return {k: TypeAdapter(hints.get(k, Any)).dump_python(v, mode="json") for k, v in bound.arguments.items()}


def load_arguments(fn: Callable, arguments: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `dump_arguments`, in the child: each value validated into its annotated type."""
    hints = typing.get_type_hints(fn)
    return {k: TypeAdapter(hints.get(k, Any)).validate_python(v) for k, v in arguments.items()}


def dump_result(fn: Callable, value: Any) -> Any:
    return TypeAdapter(typing.get_type_hints(fn).get("return", Any)).dump_python(value, mode="json")


def load_result(fn: Callable, value: Any) -> Any:
    return TypeAdapter(typing.get_type_hints(fn).get("return", Any)).validate_python(value)


class Outcome(BaseModel):
    """What the child writes for the parent: the result, whether it came from the cache, or the user's error."""

    result: Any = None
    cached: bool = False
    user_error: str | None = None


def write_outcome(uri: str, outcome: Outcome) -> None:
    with fsspec.open(uri, "w") as f:
        f.write(outcome.model_dump_json())


def _read_outcome(uri: str) -> Outcome | None:
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        return None
    outcome = Outcome.model_validate(json.loads(fs.cat_file(path)))
    fs.rm(path)
    return outcome


def _dispatch(fn: Callable, policy: RetryPolicy, where: StagePlacement, ws: Workspace, cache: bool, arguments: dict):
    """One attempt: start the stage's flow run on its pool, wait, read the outcome."""
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    outcome_uri = ws.uri("placement", f"{fn.__name__}-{uuid.uuid4().hex}.json")
    parameters = {
        "stage": stage_path(fn),
        "arguments": arguments,
        "cache": cache,
        "policy": policy.model_dump(mode="json"),
        "outcome_uri": outcome_uri,
    }
    child = run_deployment(
        where.deployment,
        parameters=parameters,
        job_variables=where.job_variables or None,
        flow_run_name=f"{fn.__name__}-on-{where.pool}",
        timeout=policy.timeout_seconds,
        poll_interval=2,
    )
    if not child.state.is_final():  # run_deployment gave up waiting after the stage's timeout
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(child.id, Cancelling(message="the stage's timeout passed"), force=True)
        raise PlacedStageError(f"{fn.__name__} on pool '{where.pool}' took longer than {policy.timeout_seconds} s")
    outcome = _read_outcome(outcome_uri)
    if outcome and outcome.user_error:
        raise PipelineInputError(outcome.user_error)
    if not child.state.is_completed() or outcome is None:
        raise PlacedStageError(
            f"{fn.__name__} on pool '{where.pool}': flow run '{child.name}' ended {child.state.name}: "
            f"{child.state.message or 'no message'}"
        )
    return load_result(fn, outcome.result), outcome.cached


def run_placed(
    fn: Callable, policy: RetryPolicy, where: StagePlacement, ws: Workspace, cache: bool, *args, **kwargs
) -> tuple[Any, bool]:
    """Run stage `fn` on `where.pool` with the stage's retry policy around the dispatch; (result, reused)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    from core.orchestration import retry_unless_user_error

    dispatch = task(
        _dispatch,
        name=fn.__name__,
        task_run_name=f"{fn.__name__} on {where.pool}",
        retries=policy.retries,
        retry_delay_seconds=policy.delays(),
        retry_jitter_factor=policy.jitter_factor,
        retry_condition_fn=retry_unless_user_error,
        cache_policy=NO_CACHE,  # the child's stage task is the cached one; this only starts it
        persist_result=False,
    )
    return dispatch(fn, policy, where, ws, cache, dump_arguments(fn, args, kwargs))
