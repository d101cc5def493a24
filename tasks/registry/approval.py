"""Approval before promotion: what waits, who decided, and why, kept on the model version in MLflow.

With `gate.approval: required` a version that passed the gate is not promoted at once: it is tagged
`zero2one.approval=pending` (with the flow run that waits for the answer, if one does, and a deadline). A person
approves or rejects it - in the Prefect form of the suspended flow run (`flows/approval.py`) or with
`zero2one approve/reject` - and `decide` applies the answer: approve -> the same serialised promotion as any
other (`tasks/registry/promotion.py`, the history says who and why); reject -> the version is tagged rejected with the
reason. A pending version past its deadline is rejected as timed out by the next look at it (`expire`): the
Prefect server fails a suspended run whose timeout passed, and no code of ours runs at that moment.

The tags live on the version, not on the flow run, so the registry alone says what is waiting.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pydantic import BaseModel

from core import reporting
from core.errors import PipelineInputError
from core.tracking import Tracking
from tasks.registry.promotion import APPROVAL, APPROVAL_BY, APPROVAL_REASON, promote
from tasks.results.registry import Promotion

APPROVAL_FLOW_RUN = "zero2one.approval.flow_run_id"  # the suspended flow run waiting for the answer ("" if none)
APPROVAL_DEADLINE = "zero2one.approval.deadline"  # ISO time; no answer by then: rejected as timed out
APPROVAL_WHY = "zero2one.approval.candidate"  # why this version is the candidate (what a promotion would say)


class Pending(BaseModel):
    """A version waiting for approval, as its tags say."""

    model: str
    version: str
    flow_run_id: str | None
    deadline: str
    why: str

    @property
    def expired(self) -> bool:
        return datetime.fromisoformat(self.deadline) < datetime.now(timezone.utc)


def mark_pending(
    model: str, version: str, tracking: Tracking, flow_run_id: str | None, timeout_seconds: int, why: str
) -> Pending:
    """Tag `version` as waiting for approval. One already waiting keeps its deadline (a resumed run asks again; a
    retrain's run takes over from the pipeline inside it): only a new waiting flow run is recorded."""
    client = tracking.client()
    tags = client.get_model_version(model, version).tags
    if tags.get(APPROVAL) == "pending" and not expire(model, version, tracking):  # an expired one is asked anew
        if flow_run_id and tags.get(APPROVAL_FLOW_RUN) != flow_run_id:
            client.set_model_version_tag(model, version, APPROVAL_FLOW_RUN, flow_run_id)
        return pending(model, version, tracking)
    deadline = datetime.now(timezone.utc) + timedelta(seconds=timeout_seconds)
    values = {
        APPROVAL: "pending",
        APPROVAL_FLOW_RUN: flow_run_id or "",
        APPROVAL_DEADLINE: deadline.isoformat(timespec="seconds"),
        APPROVAL_WHY: why,
    }
    for key, value in values.items():
        client.set_model_version_tag(model, version, key, value)
    reporting.logger().info(
        "%s v%s waits for approval until %s: zero2one approve --model %s --version %s --reason TEXT (or reject)",
        model,
        version,
        values[APPROVAL_DEADLINE],
        model,
        version,
    )
    return pending(model, version, tracking)


def pending(model: str, version: str, tracking: Tracking) -> Pending:
    """The version's pending approval; a clear error when it is not waiting for one."""
    tags = tracking.client().get_model_version(model, version).tags
    state = tags.get(APPROVAL)
    if state != "pending":
        said = f"{state}: {tags.get(APPROVAL_REASON, '')}" if state else "it never waited for one (gate.approval=none)"
        raise PipelineInputError(f"{model} v{version} is not waiting for approval ({APPROVAL}={said})")
    return Pending(
        model=model,
        version=version,
        flow_run_id=tags.get(APPROVAL_FLOW_RUN) or None,
        deadline=tags[APPROVAL_DEADLINE],
        why=tags.get(APPROVAL_WHY, "passed the gate"),
    )


def expire(model: str, version: str, tracking: Tracking) -> bool:
    """Reject a pending version whose deadline passed ("timed out"); True when it did."""
    waiting = pending(model, version, tracking)
    if not waiting.expired:
        return False
    _close(model, version, tracking, "rejected", f"timed out: no answer by {waiting.deadline}", "zero2one")
    return True


def decide(model: str, version: str, tracking: Tracking, approve: bool, reason: str, by: str) -> Promotion | None:
    """Apply a person's answer: approve -> promote (history: who and why); reject -> tag it rejected."""
    reason, by = (reason or "").strip(), (by or "").strip() or "unknown"
    if not reason:
        raise PipelineInputError(f"{'approving' if approve else 'rejecting'} {model} v{version} needs a reason")
    waiting = pending(model, version, tracking)
    if expire(model, version, tracking):
        raise PipelineInputError(f"{model} v{version} was not answered by {waiting.deadline}: rejected as timed out")
    if not approve:
        _close(model, version, tracking, "rejected", reason, by)
        return None
    why = f"approved by {by}: {reason} ({waiting.why})"
    promotion = promote(model, version, tracking, reason=why, approved=True)
    _close(model, version, tracking, "approved", reason, by)
    return promotion


def _close(model: str, version: str, tracking: Tracking, state: str, reason: str, by: str) -> None:
    client = tracking.client()
    for key, value in {APPROVAL: state, APPROVAL_REASON: reason, APPROVAL_BY: by}.items():
        client.set_model_version_tag(model, version, key, value)
    reporting.logger().info("%s v%s %s by %s: %s", model, version, state, by, reason)
