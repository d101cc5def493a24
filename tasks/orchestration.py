"""How a stage function becomes a Prefect task: retries with jitter, a timeout, and caching.

The cache key is the stage's inputs (configs and the typed results of upstream stages, which
carry content fingerprints) plus a hash of the pipeline's source code. Results are persisted
in the workspace, so a new flow run after a failure reuses every stage that already completed
with the same inputs and code, and a retry of the same run picks up where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tasks.errors import PipelineInputError
from tasks.fingerprint import code_fingerprint

if TYPE_CHECKING:
    from prefect import Task

# Prefect is imported inside stage_task only: every stage config imports RetryPolicy from here, and the CLI
# validates the data source (tasks.data) before Prefect is imported, so that a typo fails in a second or two.


def _stage_cache():
    """`parent_run_id` changes with every flow run and says nothing about the work: keep it out of the key."""
    from prefect.cache_policies import INPUTS, TASK_SOURCE, CacheKeyFnPolicy

    return (
        (INPUTS - "parent_run_id") + TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=lambda ctx, params: code_fingerprint())
    )


class RetryPolicy(BaseModel):
    """Retries, delay with jitter, and a timeout for one stage."""

    model_config = ConfigDict(extra="forbid")

    retries: int = Field(2, ge=0, description="Attempts after the first failure.")
    delay_seconds: float = Field(5.0, ge=0, description="Wait before the first retry; doubles for each next one.")
    jitter_factor: float = Field(0.5, ge=0, description="Random spread of the delay (0.5 = up to +50%).")
    timeout_seconds: float | None = Field(None, gt=0, description="Fail the attempt after this long.")

    def delays(self) -> list[float]:
        return [self.delay_seconds * 2**i for i in range(max(self.retries, 1))]


def _retry_unless_user_error(task, task_run, state) -> bool:
    """Bad input stays bad on a retry: fail at once, with the message the user needs."""
    try:
        state.result()
    except PipelineInputError:
        return False
    except Exception:
        return True
    return True


def stage_task(fn: Callable, name: str, policy: RetryPolicy, cache: bool = True) -> Task:
    """Wrap the plain stage function `fn` as a retryable, cached Prefect task.

    Results persist to Prefect's default result storage: `<PREFECT_HOME>/storage`, which is in the
    workspace by default; on a cluster set PREFECT_DEFAULT_RESULT_STORAGE_BLOCK to shared storage.
    """
    from prefect import task

    return task(
        fn,
        name=name,
        retries=policy.retries,
        retry_delay_seconds=policy.delays(),
        retry_jitter_factor=policy.jitter_factor,
        retry_condition_fn=_retry_unless_user_error,
        timeout_seconds=policy.timeout_seconds,
        cache_policy=_stage_cache() if cache else None,
        persist_result=True,
        # Stages log sentences through the run logger; they never print. Captured prints were only library noise:
        # `datasets` hashes functions with dill, which disassembles them into a redirected stdout, and Prefect's
        # print patch sent that disassembly (~45 lines of bytecode per run) to the log instead.
        log_prints=False,
    )
