"""The approval step (`gate.approval: required`): the flow run waits for a person, the Prefect UI shows the form.

A top-level flow run of a deployment suspends with Prefect's typed run input (`suspend_flow_run(wait_for_input=
ApprovalInput)`): it holds no worker while it waits, the UI renders approve / reason / by as a form beside links to
the gate verdict, the model card and the MLflow version, and `zero2one approve/reject` resumes it with the same
input through the API. On resume Prefect runs the flow again from its start (every stage comes back from a cache:
the same data, version, verdict and parent MLflow run, `flows/resume.py`) and the suspend call returns the answer;
`tasks/registry/approval.py` applies it. A suspended run holds no slot of its deployment's concurrency limit.

Prefect suspends only top-level runs of a deployment. Anywhere else (`zero2one run` on a laptop, the pipeline
inside a retrain) the version is tagged pending and the flow ends; a retrain's own run then suspends
(`flows/retrain.py`), and `zero2one approve/reject` decides a version no run waits for directly.
"""

from __future__ import annotations

from datetime import datetime, timezone

from prefect.input import RunInput

from core.orchestration import stage_task
from core.retry import RetryPolicy
from core.tracking import Tracking, prefect_run_url
from tasks.registry.approval import Pending, decide, mark_pending
from tasks.results import GateVerdict, Promotion

_POLICY = RetryPolicy(retries=1, delay_seconds=2)


class ApprovalInput(RunInput):
    """The form: approve or not, why, and who (the history records both)."""

    approve: bool = False
    reason: str = ""
    by: str = ""


def suspendable_run_id() -> str | None:
    """The current flow run, where Prefect can suspend it: a top-level run of a deployment."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    run = ctx.flow_run if ctx else None
    if run is None or run.deployment_id is None or run.parent_task_run_id is not None:
        return None
    return str(run.id)


def candidate(verdict: GateVerdict, baseline_passed: bool, baseline_as_champion: bool) -> tuple[str, str] | None:
    """The version this run would promote and why: the one that passed, or the baseline as first champion."""
    if verdict.passed:
        return verdict.version, "passed the gate"
    if baseline_as_champion and baseline_passed and verdict.champion_version is None and verdict.baseline_version:
        refused = f"the fine-tuned model v{verdict.version} was refused because {'; '.join(verdict.reasons)}"
        why = f"baseline promoted as first champion: {refused}"
        return verdict.baseline_version, why
    return None


def await_approval(
    model: str, version: str, why: str, tracking: Tracking, timeout_seconds: int
) -> tuple[str, Promotion | None]:
    """Wait for a person's answer to promoting `version`: ("approved", promotion), ("rejected", None) or
    ("pending", None) where this run cannot wait (the version is tagged; `zero2one approve/reject` decides)."""
    from prefect.flow_runs import suspend_flow_run

    run_id = suspendable_run_id()
    mark = stage_task(mark_pending, "await_approval", _POLICY, cache=False)
    waiting = mark(model, version, tracking, run_id, timeout_seconds, why)
    if run_id is None:
        return "pending", None
    left = datetime.fromisoformat(waiting.deadline) - datetime.now(timezone.utc)
    form = ApprovalInput.with_initial_data(description=_description(waiting, tracking, run_id), by="")
    answer = suspend_flow_run(wait_for_input=form, timeout=max(1, int(left.total_seconds())), key=f"approve-{version}")
    apply = stage_task(decide, "approve" if answer.approve else "reject", _POLICY, cache=False)
    promotion = apply(model, version, tracking, answer.approve, answer.reason, answer.by)
    return ("approved" if answer.approve else "rejected"), promotion


def _description(waiting: Pending, tracking: Tracking, run_id: str) -> str:
    """The markdown above the form: what is asked, and the evidence to read first."""
    model, version = waiting.model, waiting.version
    mlflow_version = f"{tracking.ui_url}/#/models/{model}/versions/{version}"
    return (
        f"# Promote {model} v{version} to `champion`?\n\n"
        f"Why it is the candidate: {waiting.why}.\n\n"
        f"- [Gate verdict and summary]({prefect_run_url(run_id)}) (this run's artifacts: `gate`, "
        "`pipeline-summary`)\n"
        f"- [Model card and version]({mlflow_version}) (MLflow; the card is `model_card.md` on its run)\n\n"
        f"No answer by {waiting.deadline}: rejected as timed out. From a terminal: "
        f'`zero2one approve --model {model} --version {version} --reason "..."` (or `reject`).'
    )
