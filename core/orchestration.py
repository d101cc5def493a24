"""How a stage function becomes a Prefect task: retries with jitter, a timeout, caching, and injected faults.

The cache key is the stage's inputs (configs and the typed results of upstream stages, which
carry content fingerprints) plus a hash of the pipeline's source code. Results are persisted
in the workspace, so a new flow run after a failure reuses every stage that already completed
with the same inputs and code, and a retry of the same run picks up where it stopped.

`ZERO2ONE_FAULTS="evaluate,register"` makes each named stage fail once per flow run when it starts, through
the same wrapper, so stage bodies hold only their stage. `stage@step=N` (fail after the training checkpoint at
step N) is a Trainer callback, `core/faults.py`; `register-aliases` is the one fault point inside a stage
(`tasks/registry/register.py`, between creating a version and aliasing it).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import PipelineInputError
from core.fingerprint import code_fingerprint
from core.retry import RetryPolicy
from core.run_context import flow_run_id
from core.workspace import Workspace

if TYPE_CHECKING:
    from prefect import Task

# Prefect is imported inside stage_task only: the CLI validates the data source (tasks.data.prepare) before Prefect
# is imported, so that a typo fails in a second or two. Stage configs import RetryPolicy from core/retry.py.


def _stage_cache():
    """`parent_run_id` changes with every flow run and says nothing about the work: keep it out of the key."""
    from prefect.cache_policies import INPUTS, TASK_SOURCE, CacheKeyFnPolicy

    return (
        (INPUTS - "parent_run_id") + TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=lambda ctx, params: code_fingerprint())
    )


def retry_unless_user_error(task, task_run, state) -> bool:
    """Bad input stays bad on a retry: fail at once, with the message the user needs."""
    try:
        state.result()
    except PipelineInputError:
        return False
    except Exception:
        return True
    return True


# ---------------------------------------------------------------- fault injection, for the retry tests

ENV_VAR = "ZERO2ONE_FAULTS"


class InjectedFault(RuntimeError):
    """A failure asked for through ZERO2ONE_FAULTS."""


def fault_spec(stage: str) -> dict[str, str] | None:
    """The arguments ZERO2ONE_FAULTS gives `stage` (`{}` for a plain `stage`), or None when it does not name it."""
    for item in filter(None, (s.strip() for s in os.environ.get(ENV_VAR, "").split(","))):
        name, _, args = item.partition("@")
        if name == stage:
            return dict(kv.split("=", 1) for kv in args.split(";") if kv)
    return None


def _marker(markers_dir: Path, stage: str) -> Path:
    return markers_dir / f"{stage}-{flow_run_id() or 'local'}.fired"


def fire_fault(markers_dir: Path, stage: str, why: str) -> None:
    """Raise InjectedFault, once per flow run: a marker file in the workspace lets the retry go through."""
    marker = _marker(markers_dir, stage)
    if marker.exists():
        return
    markers_dir.mkdir(parents=True, exist_ok=True)
    marker.touch()
    raise InjectedFault(f"injected fault in stage '{stage}' ({why}; set by {ENV_VAR})")


def maybe_fail(stage: str, markers_dir: Path) -> None:
    """Fail once at the start of `stage` if ZERO2ONE_FAULTS names it without a step."""
    spec = fault_spec(stage)
    if spec is not None and "step" not in spec:
        fire_fault(markers_dir, stage, "at stage start")


def with_faults(fn: Callable, name: str) -> Callable:
    """`fn` failing once at its start when ZERO2ONE_FAULTS names the stage (`core/faults.py`), for retry tests.

    The one place a stage-start fault is injected, so stage bodies hold only their stage. The marker that makes
    the fault fire once per flow run goes to the `faults` folder of the stage's workspace argument; a stage
    without one gets no fault. `functools.wraps` keeps the signature (Prefect's parameters) and the source
    (Prefect's TASK_SOURCE cache key reads the wrapped function's).
    """

    @functools.wraps(fn)
    def run(*args, **kwargs):
        ws = next((a for a in (*args, *kwargs.values()) if isinstance(a, Workspace)), None)
        if ws is not None:
            maybe_fail(name, ws.local_dir("faults"))
        return fn(*args, **kwargs)

    return run


def stage_task(fn: Callable, name: str, policy: RetryPolicy, cache: bool = True) -> Task:
    """Wrap the plain stage function `fn` as a retryable, cached Prefect task.

    Results persist to Prefect's default result storage: `<PREFECT_HOME>/storage`, which is in the
    workspace by default; on a cluster set PREFECT_DEFAULT_RESULT_STORAGE_BLOCK to shared storage.
    """
    from prefect import task

    return task(
        with_faults(fn, name),
        name=name,
        retries=policy.retries,
        retry_delay_seconds=policy.delays(),
        retry_jitter_factor=policy.jitter_factor,
        retry_condition_fn=retry_unless_user_error,
        timeout_seconds=policy.timeout_seconds,
        cache_policy=_stage_cache() if cache else None,
        persist_result=True,
        # Stages log sentences through the run logger; they never print. Captured prints were only library noise:
        # `datasets` hashes functions with dill, which disassembles them into a redirected stdout, and Prefect's
        # print patch sent that disassembly (~45 lines of bytecode per run) to the log instead.
        log_prints=False,
    )
