"""The `promote` and `rollback` flows: move the `champion` alias from the Prefect UI or the CLI.

Typed parameters render as a form in the Prefect UI. Each flow runs one task from
`tasks/registry/promotion.py`, which serializes moves per model, records the history and emits the
`zero2one.model.promoted` event.
"""

from __future__ import annotations

from prefect import flow

from core.orchestration import stage_task
from core.registry_names import DEFAULT_MODEL_NAME
from core.retry import RetryPolicy
from core.tracking import Tracking, TrackingConfig
from core.workspace import DEFAULT_ROOT, Workspace
from tasks.registry import approval, promotion
from tasks.results import Promotion

# A user error (unknown version, force without reason) fails at once; a flaky registry gets one more try.
_POLICY = RetryPolicy(retries=1, delay_seconds=2)


def _tracking(workspace: str, tracking_uri: str | None) -> Tracking:
    return Tracking.resolve(TrackingConfig(uri=tracking_uri), Workspace(root=workspace).resolved())


@flow(name="promote", log_prints=True)
def promote_flow(
    model: str = DEFAULT_MODEL_NAME,
    version: str = "challenger",
    force: bool = False,
    reason: str | None = None,
    workspace: str = DEFAULT_ROOT,
    tracking_uri: str | None = None,
) -> Promotion:
    """Make `version` (a number or an alias) the champion; `force` skips the gate and needs a `reason`."""
    task = stage_task(promotion.promote, "promote", _POLICY, cache=False)
    return task(model, version, _tracking(workspace, tracking_uri), force=force, reason=reason)


@flow(name="rollback", log_prints=True)
def rollback_flow(
    model: str = DEFAULT_MODEL_NAME,
    reason: str | None = None,
    workspace: str = DEFAULT_ROOT,
    tracking_uri: str | None = None,
) -> Promotion:
    """Give `champion` back to the `previous-champion` (the two aliases swap)."""
    task = stage_task(promotion.rollback, "rollback", _POLICY, cache=False)
    return task(model, _tracking(workspace, tracking_uri), reason=reason)


@flow(name="approval", log_prints=True)
def decide_flow(
    model: str,
    version: str,
    approve: bool,
    reason: str,
    by: str,
    workspace: str = DEFAULT_ROOT,
    tracking_uri: str | None = None,
) -> Promotion | None:
    """Approve (promote, the history says who and why) or reject a version that waits for approval and that no
    suspended flow run waits for (`zero2one approve/reject` resumes one that does)."""
    task = stage_task(approval.decide, "approve" if approve else "reject", _POLICY, cache=False)
    return task(model, version, _tracking(workspace, tracking_uri), approve, reason, by)
