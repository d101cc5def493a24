"""Runs whose process died (`kill -9`, OOM, a lost machine) are marked as such, not left running forever.

Neither MLflow nor Prefect notices when the process behind a run dies without a word: the MLflow run stays
RUNNING and the Prefect flow and task runs stay Running. Every run we open is tagged with the process that owns
it (host, pid and the process's start time, so a reused pid does not count as alive); the next pipeline run in
the workspace marks the runs whose process is gone: MLflow `KILLED` with a tag saying why, Prefect `Crashed`.
Runs owned by another host are left alone: from here nobody can tell whether that process is alive.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timezone

import psutil
from mlflow import MlflowClient

HOST, PID, STARTED = "zero2one.host", "zero2one.pid", "zero2one.pid_started"
ORPHANED = "zero2one.orphaned"


def process_tags() -> dict[str, str]:
    """Who owns a run: this host, this process, and when the process started."""
    pid = os.getpid()
    return {HOST: socket.gethostname(), PID: str(pid), STARTED: f"{psutil.Process(pid).create_time():.2f}"}


def _alive(pid: int, started: float) -> bool:
    try:
        return abs(psutil.Process(pid).create_time() - started) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def _owner_gone(tags: dict[str, str]) -> bool:
    if tags.get(HOST) != socket.gethostname() or PID not in tags:
        return False
    try:
        return not _alive(int(tags[PID]), float(tags.get(STARTED, "0")))
    except ValueError:
        return False


def mark_orphans(client: MlflowClient, experiment_id: str, logger: Callable[[], logging.Logger]) -> list[str]:
    """Mark RUNNING MLflow runs of dead processes KILLED, and their Prefect flow runs Crashed. Returns the run ids.

    `logger` gives the logger to warn on (`core.reporting.logger`): passed in, so this module stands on no other."""
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000)
    orphans = [run for run in running if _owner_gone(run.data.tags)]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    flow_runs = set()
    for run in orphans:
        tags = run.data.tags
        why = f"process {tags[PID]} on {tags[HOST]} ended without closing this run; marked at {when}"
        client.set_tag(run.info.run_id, ORPHANED, why)
        client.set_terminated(run.info.run_id, status="KILLED")
        if flow_run := tags.get("prefect.flow_run_id"):
            flow_runs.add(flow_run)
    if flow_runs:
        try:
            crash_flow_runs(sorted(flow_runs), "its process ended without reporting (killed?); found by a later run")
        except Exception as e:  # housekeeping must never fail the run that found the orphans
            logger().warning("could not mark Prefect flow runs %s crashed: %s", sorted(flow_runs), e)
    if orphans:
        logger().warning(
            "marked %d run(s) of ended processes as killed: %s",
            len(orphans),
            ", ".join(f"{r.info.run_name} ({r.info.run_id[:8]})" for r in orphans),
        )
    return [run.info.run_id for run in orphans]


def crash_flow_runs(flow_run_ids: list[str], message: str) -> None:
    """Prefect flow runs (and their task runs) still Running or Pending: Crashed, with `message`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    open_states = [StateType.RUNNING, StateType.PENDING]
    with get_client(sync_client=True) as prefect:
        flows = prefect.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)))
        for flow_run in flows:
            if flow_run.state_type not in open_states:
                continue
            tasks = prefect.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
                task_run_filter=TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=open_states))),
            )
            for task_run in tasks:
                prefect.set_task_run_state(task_run.id, Crashed(message=message), force=True)
            prefect.set_flow_run_state(flow_run.id, Crashed(message=message), force=True)
