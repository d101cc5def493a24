"""`zero2one approve` and `reject`: answer a version that waits for approval (`gate.approval: required`).

Where a suspended flow run waits for the answer (its id is on the version), the command resumes it with the
same typed input the Prefect form sends, and waits for it to finish: the run itself promotes or tags. Where none
waits (a run that could not suspend), the `approval` flow applies the answer. Either way the promotion is the
serialised one of `tasks/registry/promotion.py`, and the history says who approved and why.
"""

from __future__ import annotations

import getpass
import time
from typing import Annotated

import typer

from cli.common import fail
from cli.settings import ConfigOpt, ModelOpt, SetOpt, TrackingUriOpt, WorkspaceOpt, resolve

VersionOpt = Annotated[str, typer.Option(metavar="VERSION", help="The version waiting for approval (a number).")]
ReasonOpt = Annotated[str, typer.Option(metavar="TEXT", help="Why; kept in the history (approve) or on the version.")]
ByOpt = Annotated[str | None, typer.Option(metavar="NAME", help="Who decides [default: the login name].")]
WaitOpt = Annotated[
    int, typer.Option(metavar="SECONDS", min=0, help="How long to wait for the resumed flow run to finish.")
]


def approve(
    version: VersionOpt,
    reason: ReasonOpt,
    model: ModelOpt = None,
    by: ByOpt = None,
    wait: WaitOpt = 900,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Approve a version that passed the gate and waits for approval: it becomes the champion."""
    _answer(True, version, reason, model, by, wait, resolve(config, set_, workspace, tracking_uri))


def reject(
    version: VersionOpt,
    reason: ReasonOpt,
    model: ModelOpt = None,
    by: ByOpt = None,
    wait: WaitOpt = 900,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Reject a version that waits for approval: it is tagged rejected with the reason; the champion stays."""
    _answer(False, version, reason, model, by, wait, resolve(config, set_, workspace, tracking_uri))


def _answer(approve: bool, version: str, reason: str, model: str | None, by: str | None, wait: int, cfg) -> None:
    from core.errors import PipelineInputError
    from core.tracking import Tracking
    from tasks.registry.approval import APPROVAL, APPROVAL_REASON, expire, pending

    if not reason.strip():
        fail("--reason needs a text: the history says why")
    name, by = model or cfg.registry.model_name, by or getpass.getuser()
    tracking = Tracking.resolve(cfg.tracking, cfg.workspace.resolved())
    answer = {"approve": approve, "reason": reason, "by": by}
    try:
        waiting = pending(name, version, tracking)
        if expire(name, version, tracking):
            fail(f"{name} v{version} was not answered by {waiting.deadline}: rejected as timed out")
        if not (waiting.flow_run_id and _resume(waiting.flow_run_id, answer, wait)):
            from flows.promote import decide_flow

            decide_flow(name, version, approve, reason, by, cfg.workspace.root, cfg.tracking.uri)
    except PipelineInputError as e:
        fail(str(e))
    tags = tracking.client().get_model_version(name, version).tags
    champion = tracking.client().get_registered_model(name).aliases.get("champion")
    typer.echo(f"{name} v{version}: {tags.get(APPROVAL)} by {by} ({tags.get(APPROVAL_REASON)}); champion v{champion}")


def _resume(flow_run_id: str, answer: dict, wait: int) -> bool:
    """Resume the suspended flow run with `answer` and wait for it; False when it is not suspended (any more)."""
    from prefect import get_client
    from prefect.flow_runs import resume_flow_run

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        if not (run.state and run.state.is_paused()):
            return False
        resume_flow_run(run.id, run_input=answer)
        typer.echo(f"resumed flow run {run.name} ({run.id}); waiting for it to finish")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            run = client.read_flow_run(run.id)
            if run.state and run.state.is_final():
                if not run.state.is_completed():
                    fail(f"flow run {run.name} ended {run.state.name}: {run.state.message}")
                return True
            time.sleep(2)
    fail(f"flow run {flow_run_id} was resumed but did not finish within {wait} s (--wait)")
